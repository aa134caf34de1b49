//! The object's maps by name, owned apart from its programs: taken out of a freshly loaded
//! object, or opened from their pins under the daemon's bpffs directory (adoption).

use std::{collections::BTreeMap, fs, path::Path};

use aya::{
    Ebpf,
    maps::{Map, MapData, MapError},
};

use super::KernelError;

/// Every map of the object, keyed by its name in `nemoclaw-ebpf/src/maps.rs`.
#[derive(Debug, Default)]
pub struct MapSet(BTreeMap<String, Map>);

impl MapSet {
    /// Takes every map out of a loaded object. The programs keep the map file descriptors
    /// they were relocated with, so they load and run against these maps.
    pub fn take_from(ebpf: &mut Ebpf) -> Self {
        let names: Vec<String> = ebpf.maps().map(|(name, _)| name.to_owned()).collect();
        Self(
            names
                .into_iter()
                .filter_map(|name| ebpf.take_map(&name).map(|map| (name, map)))
                .collect(),
        )
    }

    /// Opens every map pinned in `dir` (one bpffs file per map, named like the map).
    pub fn from_pins(dir: &Path) -> Result<Self, KernelError> {
        let entries = fs::read_dir(dir).map_err(|e| KernelError::Pin {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut maps = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| KernelError::Pin {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
            let path = entry.path();
            let pin_err = |reason: String| KernelError::Pin {
                path: path.display().to_string(),
                reason,
            };
            let data = MapData::from_pin(&path).map_err(|e| pin_err(super::loader::chain(&e)))?;
            let map = Map::from_map_data(data).map_err(|e| pin_err(super::loader::chain(&e)))?;
            maps.insert(entry.file_name().to_string_lossy().into_owned(), map);
        }
        Ok(Self(maps))
    }

    /// Pins every map into `dir` (which must exist on a bpffs). The object's data sections
    /// (`.rodata` with the struct offsets) are not pinned: frozen, and held by the programs.
    pub fn pin(&self, dir: &Path) -> Result<(), KernelError> {
        for (name, map) in self.0.iter().filter(|(name, _)| !name.starts_with('.')) {
            let path = dir.join(name);
            map.pin(&path).map_err(|e| KernelError::Pin {
                path: path.display().to_string(),
                reason: super::loader::chain(&e),
            })?;
        }
        Ok(())
    }

    /// The map names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// A typed view of map `name`.
    pub fn typed<'a, T>(&'a mut self, name: &'static str) -> Result<T, KernelError>
    where
        T: TryFrom<&'a mut Map, Error = MapError>,
    {
        let map = self.0.get_mut(name).ok_or(KernelError::Missing(name))?;
        T::try_from(map).map_err(|source| KernelError::Map { map: name, source })
    }

    /// A typed read-only view of map `name`.
    pub fn typed_ref<'a, T>(&'a self, name: &'static str) -> Result<T, KernelError>
    where
        T: TryFrom<&'a Map, Error = MapError>,
    {
        let map = self.0.get(name).ok_or(KernelError::Missing(name))?;
        T::try_from(map).map_err(|source| KernelError::Map { map: name, source })
    }

    /// The maps' kernel handles, for code that works on raw keys (see `kernel::slots`).
    pub fn raw(&self) -> impl Iterator<Item = (&str, &MapData)> {
        self.0.iter().filter_map(|(name, map)| {
            let (Map::HashMap(data)
            | Map::LruHashMap(data)
            | Map::LpmTrie(data)
            | Map::Array(data)
            | Map::PerCpuArray(data)) = map
            else {
                return None;
            };
            Some((name.as_str(), data))
        })
    }

    /// Removes map `name` from the set (e.g. the ring buffer, owned by its reader).
    pub fn take(&mut self, name: &'static str) -> Result<Map, KernelError> {
        self.0.remove(name).ok_or(KernelError::Missing(name))
    }
}
