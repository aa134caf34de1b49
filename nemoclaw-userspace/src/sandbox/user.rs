//! The user a sandboxed command runs as.

use std::{ffi::CString, path::PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("no such user: {0}")]
    Unknown(String),
    #[error("looking up user {name}: {source}")]
    Lookup { name: String, source: nix::Error },
}

/// A resolved account: ids, supplementary groups and home.
#[derive(Clone, Debug)]
pub struct SandboxUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
    pub home: PathBuf,
}

impl SandboxUser {
    /// The user a command runs as when asked for `name`: `name`, else `$SUDO_USER`, else
    /// `nobody` (not looked up).
    #[must_use]
    pub fn requested(name: Option<&str>) -> String {
        name.map(str::to_owned)
            .or_else(|| std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "nobody".to_owned())
    }

    /// Looks up [`Self::requested`]`(name)`.
    pub fn resolve(name: Option<&str>) -> Result<Self, UserError> {
        let name = Self::requested(name);
        let lookup = |source| UserError::Lookup {
            name: name.clone(),
            source,
        };
        let user = User::from_name(&name)
            .map_err(lookup)?
            .ok_or_else(|| UserError::Unknown(name.clone()))?;
        let cname = CString::new(name.clone()).map_err(|_| UserError::Unknown(name.clone()))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid).map_err(lookup)?;
        Ok(Self {
            name,
            uid: user.uid,
            gid: user.gid,
            groups,
            home: user.dir,
        })
    }

    /// Group name for messages.
    #[must_use]
    pub fn group_name(&self) -> String {
        Group::from_gid(self.gid)
            .ok()
            .flatten()
            .map_or_else(|| self.gid.to_string(), |g| g.name)
    }
}
