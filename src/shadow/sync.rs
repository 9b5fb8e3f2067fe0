//! Cloud sync bookkeeping kept with each shadow of a `SyncShadow: true` thing.
//!
//! Local and cloud versions are tracked separately: `cloud_version` is the last version the
//! cloud's shadow service reported for this thing and never appears in local documents;
//! `dirty` says the local document changed since the cloud last acknowledged it (so after a
//! restart or an outage the latest state, not a replay, is sent).

use crate::json::Value;

use super::doc;

/// Per-shadow sync state, stored in the shadow's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncMark {
    pub cloud_version: u64,
    pub dirty: bool,
}

impl SyncMark {
    pub fn encode(&self) -> Value {
        Value::Object(vec![
            ("cloudVersion".into(), doc::int(self.cloud_version)),
            ("dirty".into(), Value::Bool(self.dirty)),
        ])
    }

    /// Reads what [`SyncMark::encode`] wrote; anything missing reads as "never synced".
    pub fn decode(v: Option<&Value>) -> SyncMark {
        let Some(v) = v else {
            return SyncMark::default();
        };
        SyncMark {
            cloud_version: v
                .get("cloudVersion")
                .and_then(Value::as_i64)
                .and_then(|i| u64::try_from(i).ok())
                .unwrap_or(0),
            dirty: v.get("dirty").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}
