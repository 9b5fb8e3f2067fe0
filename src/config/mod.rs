//! config.json and group.json: read, validated, turned into plain typed values.
//!
//! Read first: ../shared/spec/seed-A §3 (config.json), seed-C §3 and §16, seed-G §2.11 (group
//! rules). Parsing never panics: every problem becomes a [`ConfigError`] that names the file,
//! the key, what was found and what is allowed, and [`check`] reports all of them, not the first.
//!
//! Two roots (guide "Write directory"): `root` is read-only (config/, certs/) and `write_dir`
//! (defaults to `root`) holds ggc/deployment, ggc/var/log and ggc/var/state.

use std::path::{Path, PathBuf};

pub mod core;
pub mod group;
mod validate;

pub use self::core::{
    Config, CoreThing, Crypto, NetworkProxy, Principal, Runtime, SprigExtensions,
};
pub use self::group::{
    Connector, Core, Device, Endpoint, Function, Group, Logger, LoggerComponent, LoggerType,
    Resource, SpoolStorage, Spooler, Subscription,
};

/// One problem found in a config file, printed by `sprig check` as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The JSON path of the offending key (`coreThing.keepAlive`), or empty for the whole file.
    pub key: String,
    /// What is wrong, what was found and what is allowed; the guide's text where it has one.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Path of config.json under the (read-only) Greengrass root.
pub fn config_path(root: &Path) -> PathBuf {
    root.join("config").join("config.json")
}

/// Path of the deployed group under the write directory.
pub fn group_path(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("deployment")
        .join("group")
        .join("group.json")
}
