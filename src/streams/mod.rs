//! Stream manager (feature `stream-manager`): the Greengrass 1.10+ local stream service, served
//! to the stock `StreamManagerClient` on 127.0.0.1:`STREAM_MANAGER_SERVER_PORT`.
//!
//! * [`wire`] frames and CBOR requests/responses (sans-IO),
//! * [`store`] streams in segments of checksummed records, File or Memory, bounded,
//! * [`session`] one connection's protocol state machine (sans-IO),
//! * [`server`] the thin async shell: listener, connections, TTL timer, status section,
//! * [`export`] HTTP export (sans-IO batching/backoff plus its async task).
//!
//! Enabled when the group deploys the `GGStreamManager` system function; its environment
//! variables are the settings (seed-D §2.5).

pub mod export;
pub mod server;
pub mod session;
pub mod store;
pub mod wire;

use std::path::{Path, PathBuf};

use crate::config::Group;
use crate::limits;

pub use server::{start, StreamManager, TokenCheck};

/// The system function that turns the stream manager on.
pub const SYSTEM_FUNCTION: &str = "GGStreamManager";

/// Settings from `GGStreamManager`'s environment and config.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub port: u16,
    pub root: PathBuf,
    pub authenticate: bool,
    pub max_bytes: u64,
    /// `STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH`, kilobits per second of export bodies (None:
    /// unlimited).
    pub export_kbps: Option<u64>,
}

impl Settings {
    /// `Ok(None)` when the group does not deploy `GGStreamManager`; `Err` lists every bad
    /// variable (`sprig check` prints them).
    pub fn from_group(
        group: &Group,
        write_dir: &Path,
        max_bytes: u64,
    ) -> Result<Option<Settings>, Vec<String>> {
        let Some(f) = group.system_function(SYSTEM_FUNCTION) else {
            return Ok(None);
        };
        let mut s = Settings {
            port: limits::DEFAULT_STREAM_MANAGER_PORT,
            root: write_dir.join("ggc/var/state/streams"),
            authenticate: true,
            max_bytes,
            export_kbps: None,
        };
        let mut errors = Vec::new();
        for (k, v) in &f.environment {
            let v = v.trim();
            match k.as_str() {
                "STREAM_MANAGER_SERVER_PORT" => match v.parse::<u16>() {
                    Ok(p) if p > 0 => s.port = p,
                    _ => errors.push(format!("{k}: found {v:?}; expected a TCP port, 1-65535")),
                },
                "STREAM_MANAGER_STORE_ROOT_DIR" => {
                    if v.starts_with('/') {
                        s.root = PathBuf::from(v);
                    } else {
                        errors.push(format!(
                            "{k}: found {v:?}; expected an absolute path (starting with /)"
                        ));
                    }
                }
                "STREAM_MANAGER_AUTHENTICATE_CLIENT" => match v {
                    "true" => s.authenticate = true,
                    "false" => s.authenticate = false,
                    _ => errors.push(format!("{k}: found {v:?}; expected true or false")),
                },
                "STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH" => match v.parse::<u64>() {
                    Ok(n) if n > 0 => s.export_kbps = Some(n),
                    _ => errors.push(format!(
                        "{k}: found {v:?}; expected kilobits per second, a whole number above 0"
                    )),
                },
                "STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE" | "JVM_ARGS" => {
                    log::info!(target: "GGStreamManager",
                        "stream manager: {k} is accepted and not used by sprig (one thread, no JVM; exports run one POST at a time)"
                    )
                }
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(Some(s))
        } else {
            Err(errors
                .into_iter()
                .map(|e| format!("FunctionDefinitionVersion: {SYSTEM_FUNCTION} environment: {e}"))
                .collect())
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
