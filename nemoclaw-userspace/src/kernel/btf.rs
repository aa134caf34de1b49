//! A minimal reader for the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find
//! the byte offset of a struct member, through anonymous unions and structs. The eBPF side
//! has no CO-RE, so these offsets are written into its read-only globals at load time.

use std::{collections::HashMap, path::Path};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF has no struct {0}")]
    NoStruct(String),
    #[error("BTF struct {strukt} has no member {member}")]
    NoMember { strukt: String, member: String },
    #[error("BTF struct {strukt} member {member} is a bitfield")]
    Bitfield { strukt: String, member: String },
    #[error("BTF struct {strukt} member {member} is not a one-bit bitfield")]
    NotOneBit { strukt: String, member: String },
    #[error("BTF has no function {0}")]
    NoFunc(String),
    #[error("BTF function {func} has no `struct {strukt} *` parameter")]
    NoParam { func: String, strukt: String },
}

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    type_id: u32,
    /// Bit offset (already decoded from the bitfield encoding).
    bit_offset: u32,
    bitfield_size: u32,
}

#[derive(Clone, Debug)]
struct Type {
    name: u32,
    kind: u32,
    /// Referenced type for typedef, pointers and modifiers; a function's prototype.
    referenced: u32,
    /// A struct's or union's members; a function prototype's parameters (name and type).
    members: Vec<Member>,
}

/// Parsed BTF types and strings.
pub struct Btf {
    strings: Vec<u8>,
    /// Index = type id; id 0 is `void`.
    types: Vec<Type>,
    structs_by_name: HashMap<String, u32>,
    funcs_by_name: HashMap<String, u32>,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, BtfError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, BtfError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX_BTF))
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses raw little-endian BTF (header, type section, string section).
    pub fn parse(b: &[u8]) -> Result<Self, BtfError> {
        if u16_at(b, 0)? != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF)"));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let type_off = u32_at(b, 8)? as usize;
        let type_len = u32_at(b, 12)? as usize;
        let str_off = u32_at(b, 16)? as usize;
        let str_len = u32_at(b, 20)? as usize;
        let types_sec = b
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section out of bounds"))?;
        let strings = b
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section out of bounds"))?
            .to_vec();

        let mut types = vec![Type {
            name: 0,
            kind: 0,
            referenced: 0,
            members: Vec::new(),
        }];
        let mut pos = 0;
        while pos < types_sec.len() {
            let name = u32_at(types_sec, pos)?;
            let info = u32_at(types_sec, pos + 4)?;
            let size_or_type = u32_at(types_sec, pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let raw = u32_at(types_sec, m + 8)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (raw & 0xff_ffff, raw >> 24)
                        } else {
                            (raw, 0)
                        };
                        members.push(Member {
                            name: u32_at(types_sec, m)?,
                            type_id: u32_at(types_sec, m + 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    vlen * 12
                }
                KIND_FUNC_PROTO => {
                    for i in 0..vlen {
                        let m = pos + i * 8;
                        members.push(Member {
                            name: u32_at(types_sec, m)?,
                            type_id: u32_at(types_sec, m + 4)?,
                            bit_offset: 0,
                            bitfield_size: 0,
                        });
                    }
                    vlen * 8
                }
                KIND_ENUM => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                0..=19 => 0,
                _ => return Err(BtfError::Malformed("unknown BTF kind")),
            };
            pos += extra;
            types.push(Type {
                name,
                kind,
                referenced: size_or_type,
                members,
            });
        }
        let mut btf = Self {
            strings,
            types,
            structs_by_name: HashMap::new(),
            funcs_by_name: HashMap::new(),
        };
        for (id, t) in btf.types.iter().enumerate() {
            if t.kind == KIND_STRUCT && !t.members.is_empty() {
                let name = btf.string(t.name).to_owned();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            } else if t.kind == KIND_FUNC {
                let name = btf.string(t.name).to_owned();
                btf.funcs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn string(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.referenced;
                }
                _ => break,
            }
        }
        id
    }

    /// Bit offset of `member` inside type `id`, searching anonymous struct/union members.
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<(u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        for m in &t.members {
            let name = self.string(m.name);
            if name == member {
                return Some((m.bit_offset, m.bitfield_size));
            }
            if name.is_empty() && depth < 8 {
                let inner = self.types.get(self.resolve(m.type_id) as usize)?;
                if matches!(inner.kind, KIND_STRUCT | KIND_UNION)
                    && let Some((off, size)) = self.find_member(m.type_id, member, depth + 1)
                {
                    return Some((m.bit_offset + off, size));
                }
            }
        }
        None
    }

    /// Byte offset of `strukt.member`.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u64, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let (bits, bitfield) =
            self.find_member(id, member, 0)
                .ok_or_else(|| BtfError::NoMember {
                    strukt: strukt.to_owned(),
                    member: member.to_owned(),
                })?;
        if bitfield != 0 || bits % 8 != 0 {
            return Err(BtfError::Bitfield {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            });
        }
        Ok(u64::from(bits / 8))
    }

    /// Whether the kernel has function `name` (e.g. `bpf_lsm_inode_set_acl`: the LSM hook
    /// exists and BPF LSM programs can attach to it).
    #[must_use]
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs_by_name.contains_key(name)
    }

    /// The type id of function `name`, if the kernel has it (an LSM program's
    /// `attach_btf_id` is that of `bpf_lsm_<hook>`).
    #[must_use]
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.funcs_by_name.get(name).copied()
    }

    /// Of function `func`'s parameters: the position of the first `struct strukt *` one,
    /// and how many there are.
    pub fn func_param_pointing_to(&self, func: &str, strukt: &str) -> Result<(u64, u64), BtfError> {
        let proto = self
            .funcs_by_name
            .get(func)
            .and_then(|&id| self.types.get(id as usize))
            .and_then(|f| self.types.get(self.resolve(f.referenced) as usize))
            .filter(|p| p.kind == KIND_FUNC_PROTO)
            .ok_or_else(|| BtfError::NoFunc(func.to_owned()))?;
        let points_to_strukt = |type_id: u32| {
            self.types
                .get(self.resolve(type_id) as usize)
                .filter(|t| t.kind == KIND_PTR)
                .and_then(|ptr| self.types.get(self.resolve(ptr.referenced) as usize))
                .is_some_and(|t| t.kind == KIND_STRUCT && self.string(t.name) == strukt)
        };
        let at = proto
            .members
            .iter()
            .position(|p| points_to_strukt(p.type_id))
            .ok_or_else(|| BtfError::NoParam {
                func: func.to_owned(),
                strukt: strukt.to_owned(),
            })?;
        Ok((at as u64, proto.members.len() as u64))
    }

    /// A one-bit bitfield `strukt.member`, as (byte offset, mask within that byte).
    pub fn member_bit(&self, strukt: &str, member: &str) -> Result<(u64, u8), BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let (bits, bitfield) =
            self.find_member(id, member, 0)
                .ok_or_else(|| BtfError::NoMember {
                    strukt: strukt.to_owned(),
                    member: member.to_owned(),
                })?;
        if bitfield != 1 {
            return Err(BtfError::NotOneBit {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            });
        }
        Ok((u64::from(bits / 8), 1 << (bits % 8)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF for: struct inner { int x; int y; }; struct outer { int a; union { int b;
    /// struct inner in; }; int c; }, with an anonymous union.
    /// A BTF file: the header, then `types` and `strings`.
    fn blob(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(types);
        b.extend_from_slice(strings);
        b
    }

    fn sample() -> Vec<u8> {
        let strings = b"\0int\0x\0y\0inner\0outer\0a\0b\0in\0c\0".to_vec();
        let off = |s: &str| {
            let needle = [s.as_bytes(), b"\0"].concat();
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .unwrap() as u32
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                t.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int
        push(&[off("int"), KIND_INT << 24, 4, 0x20]);
        // 2: struct inner { x @0, y @32 }
        push(&[off("inner"), (KIND_STRUCT << 24) | 2, 8]);
        push(&[off("x"), 1, 0, off("y"), 1, 32]);
        // 3: anonymous union { b, in }
        push(&[0, (KIND_UNION << 24) | 2, 8]);
        push(&[off("b"), 1, 0, off("in"), 2, 0]);
        // 4: struct outer { a @0, <anon> @64, c @128 }
        push(&[off("outer"), (KIND_STRUCT << 24) | 3, 20]);
        push(&[off("a"), 1, 0, 0, 3, 64, off("c"), 1, 128]);
        blob(&t, &strings)
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "b").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "in").unwrap(), 8);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 16);
        assert_eq!(btf.member_offset("inner", "y").unwrap(), 4);
    }

    #[test]
    fn missing_struct_and_member_are_errors() {
        let btf = Btf::parse(&sample()).unwrap();
        assert!(matches!(
            btf.member_offset("nope", "a"),
            Err(BtfError::NoStruct(_))
        ));
        assert!(matches!(
            btf.member_offset("outer", "zz"),
            Err(BtfError::NoMember { .. })
        ));
    }

    /// `struct flags { int a; unsigned x:1; }`, `x` at bit 35 (`kind_flag` set: the bitfield
    /// encoding of member offsets).
    #[test]
    fn finds_one_bit_bitfields() {
        let strings = b"\0int\0flags\0a\0x\0".to_vec();
        let mut t = Vec::new();
        for w in [
            1u32,
            KIND_INT << 24,
            4,
            0x20,
            5,
            (1 << 31) | (KIND_STRUCT << 24) | 2,
            8,
            11,
            1,
            0,
            13,
            1,
            (1 << 24) | 0x23,
        ] {
            t.extend_from_slice(&w.to_le_bytes());
        }
        let b = blob(&t, &strings);
        let btf = Btf::parse(&b).unwrap();
        assert_eq!(btf.member_bit("flags", "x").unwrap(), (4, 1 << 3));
        assert!(matches!(
            btf.member_bit("flags", "a"),
            Err(BtfError::NotOneBit { .. })
        ));
        assert!(matches!(
            btf.member_offset("flags", "x"),
            Err(BtfError::Bitfield { .. })
        ));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, clearly").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0]).is_err());
    }

    /// The running kernel's BTF, where present, has the members the eBPF side needs.
    #[test]
    fn running_kernel_has_needed_members() {
        let Ok(btf) = Btf::from_sys_fs() else {
            println!("skipped: {VMLINUX_BTF} not readable");
            return;
        };
        for (s, m) in [
            ("file", "f_path"),
            ("file", "f_inode"),
            ("linux_binprm", "file"),
        ] {
            btf.member_offset(s, m).unwrap();
        }
    }
}
