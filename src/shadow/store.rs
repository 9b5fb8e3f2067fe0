//! Shadows on disk: one file per thing, `WRITE_DIR/ggc/var/state/shadows/<thing>.json`,
//! replaced atomically (write `<thing>.json.tmp`, fsync, rename over the old file) before the
//! request is answered. A `kill -9` at any instant leaves either the old or the new file, never
//! a torn one, and never an older version after a newer one was acknowledged (the answer is
//! published only after the rename). A file that does not read back is renamed `*.corrupt`
//! and logged; the core starts anyway.
//!
//! Format (sprig's own, JSON): `{"version":N,"deleted":false,"timestamp":T,
//! "state":{"desired":..,"reported":..},"metadata":{..},"sync":{..}}`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::json::{self, Value};
use crate::limits;

use super::{doc, sync::SyncMark, valid_thing_name, Shadow};

/// The shadow directory under the write directory.
pub fn shadow_dir(write_dir: &Path) -> PathBuf {
    write_dir
        .join("ggc")
        .join("var")
        .join("state")
        .join("shadows")
}

/// The stored form of a shadow.
pub fn encode(s: &Shadow) -> String {
    let mut f = vec![
        ("version".to_string(), doc::int(s.version)),
        ("deleted".to_string(), Value::Bool(s.deleted)),
        ("timestamp".to_string(), doc::int(s.timestamp)),
    ];
    if !s.deleted {
        f.push(("state".into(), s.state()));
        f.push(("metadata".into(), s.metadata()));
    }
    f.push(("sync".into(), s.sync.encode()));
    json::to_string(&Value::Object(f))
}

fn u64_of(v: Option<&Value>) -> Option<u64> {
    v?.as_i64().and_then(|i| u64::try_from(i).ok())
}

fn obj(v: Option<&Value>) -> Result<Option<Value>, String> {
    match v {
        None => Ok(None),
        Some(x @ Value::Object(_)) => Ok(Some(x.clone())),
        Some(x) => Err(format!("expected an object, found {}", x.kind_name())),
    }
}

/// Reads a stored shadow back.
pub fn decode(bytes: &[u8]) -> Result<Shadow, String> {
    let v = json::parse(bytes, limits::SHADOW_MAX_FILE_BYTES, limits::MAX_JSON_DEPTH)
        .map_err(|e| e.to_string())?;
    let version = u64_of(v.get("version")).ok_or("no version")?;
    let deleted = v
        .get("deleted")
        .and_then(Value::as_bool)
        .ok_or("no deleted flag")?;
    let timestamp = u64_of(v.get("timestamp")).unwrap_or(0);
    let state = v.get("state");
    let meta = v.get("metadata");
    let shadow = Shadow {
        version,
        deleted,
        timestamp,
        desired: obj(state.and_then(|s| s.get("desired")))?,
        reported: obj(state.and_then(|s| s.get("reported")))?,
        meta_desired: obj(meta.and_then(|s| s.get("desired")))?,
        meta_reported: obj(meta.and_then(|s| s.get("reported")))?,
        sync: SyncMark::decode(v.get("sync")),
    };
    if !deleted && version == 0 {
        return Err("a live shadow with version 0".into());
    }
    Ok(shadow)
}

/// The directory of shadow files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(write_dir: &Path) -> Store {
        Store {
            dir: shadow_dir(write_dir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, thing: &str) -> PathBuf {
        self.dir.join(format!("{thing}.json"))
    }

    /// Every readable shadow file whose name is a thing name: (thing, shadow, bytes). Leftover
    /// temporary files are removed; unreadable files are renamed `*.corrupt` and logged.
    pub fn load_all(&self) -> Vec<(String, Shadow, usize)> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return out;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json.tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(thing) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_thing_name(thing) {
                continue;
            }
            if out.len() > limits::MAX_GROUP_DEVICES {
                log::warn!(
                    "shadows: more than {} shadow files in {}; the rest are not read",
                    limits::MAX_GROUP_DEVICES + 1,
                    self.dir.display()
                );
                break;
            }
            let read = match fs::metadata(&path) {
                Ok(m) if m.len() > limits::SHADOW_MAX_FILE_BYTES as u64 => {
                    Err(format!("{} bytes, more than a shadow can be", m.len()))
                }
                Ok(_) => fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| decode(&b).map(|s| (s, b.len()))),
                Err(e) => Err(e.to_string()),
            };
            match read {
                Ok((s, n)) => out.push((thing.to_string(), s, n)),
                Err(why) => {
                    let mut aside = path.as_os_str().to_owned();
                    aside.push(".corrupt");
                    let _ = fs::rename(&path, &aside);
                    log::error!(
                        "shadows: {} is damaged ({why}); set aside as {} and the shadow starts empty",
                        path.display(),
                        Path::new(&aside).display()
                    );
                }
            }
        }
        out
    }

    /// Replaces `thing`'s file with `bytes`: temporary file, fsync, rename.
    pub fn write(&self, thing: &str, bytes: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path(thing);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shadow::{ShadowOp, Shadows};

    #[test]
    fn encode_decode_round_trip_and_corrupt_files_are_set_aside() {
        let dir = std::env::temp_dir().join(format!("sprig-shadow-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::new(&dir);
        let mut shadows = Shadows::new(&[("a".into(), false)], 1 << 20);
        let mut plan = shadows.plan(
            "a",
            ShadowOp::Update,
            br#"{"state":{"desired":{"x":{"y":1}},"reported":{"x":{"y":2}}}}"#,
            7,
        );
        let s = plan.new.clone().unwrap();
        let bytes = encode(&s);
        store.write("a", bytes.as_bytes()).unwrap();
        shadows.apply(&mut plan, bytes.len());
        assert_eq!(decode(bytes.as_bytes()).unwrap(), s);
        fs::write(store.dir().join("b.json"), b"{\"version\":").unwrap();
        fs::write(store.dir().join("c.json.tmp"), b"half").unwrap();
        let loaded = store.load_all();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].1, s);
        assert!(store.dir().join("b.json.corrupt").exists());
        assert!(!store.dir().join("c.json.tmp").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
