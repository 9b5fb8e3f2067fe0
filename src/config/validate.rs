//! Shared plumbing for reading config.json and group.json out of a [`json::Doc`] tree: collects
//! every error and warning with its file and key path, and reports keys nobody asked for.

use std::path::Path;

use super::ConfigError;
use crate::json::{self, Doc, Node};

/// Errors and warnings found so far in one file.
pub(crate) struct Report<'f> {
    pub file: &'f Path,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl<'f> Report<'f> {
    pub fn new(file: &'f Path) -> Self {
        Report {
            file,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let e = ConfigError {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        };
        self.errors.push(e);
    }

    pub fn warn(&mut self, key: &str, message: impl Into<String>) {
        let e = ConfigError {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            message: message.into(),
        };
        self.warnings.push(e);
    }

    /// Reads the file's bytes as a JSON tree (borrowing them), or records why not
    /// (`Failed to parse <path>.` plus detail).
    pub fn parse_json<'b>(&mut self, bytes: &'b [u8], max_bytes: usize) -> Option<Doc<'b>> {
        if bytes.len() > max_bytes {
            self.error("", too_large(bytes.len() as u64, max_bytes));
            return None;
        }
        match Doc::parse(bytes, max_bytes, crate::limits::MAX_JSON_DEPTH) {
            Ok(v) => Some(v),
            Err(e) => {
                let detail = format!("line {}, column {}: {}", e.line, e.column, e.kind);
                self.error(
                    &e.path,
                    format!("Failed to parse {}. {detail}", self.file.display()),
                );
                None
            }
        }
    }
}

/// The message for a document over its size limit.
pub(crate) fn too_large(found: u64, max: usize) -> String {
    format!("file is {found} bytes; allowed at most {max} bytes (refused without parsing)")
}

/// Joins a key path: `a` + `b` → `a.b`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Reads a file of at most `max` bytes; `Ok(None)` when it does not exist.
pub(crate) fn read_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, ConfigError> {
    use std::io::Read;
    let err = |message: String| ConfigError {
        file: path.to_path_buf(),
        key: String::new(),
        message,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(format!("cannot read: {e}"))),
    };
    let size = f.metadata().map_or(0, |m| m.len());
    if size > max as u64 {
        return Err(err(too_large(size, max)));
    }
    // The size can change between stat and read: never read more than max + 1 bytes. Sized
    // from the stat so a large group is read into one block, not doubled (and copied) up to it.
    let mut bytes = Vec::with_capacity(size as usize + 1);
    f.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() > max {
        return Err(err(too_large(bytes.len() as u64, max)));
    }
    Ok(Some(bytes))
}

/// One JSON object being read: remembers which keys were taken so the rest can be
/// reported as unknown.
pub(crate) struct Obj<'v> {
    pub path: String,
    members: json::Members<'v>,
    used: Vec<bool>,
}

impl<'v> Obj<'v> {
    /// `value` as an object; records an error (and returns `None`) when it is something else.
    pub fn new(r: &mut Report, path: &str, value: Node<'v>) -> Option<Obj<'v>> {
        match value.as_object() {
            Some(members) => Some(Obj {
                path: path.to_string(),
                used: vec![false; members.len()],
                members,
            }),
            None => {
                r.error(
                    path,
                    format!("expected an object, found {}", value.describe()),
                );
                None
            }
        }
    }

    /// The member `key`, marked as known.
    pub fn take(&mut self, key: &str) -> Option<Node<'v>> {
        let (i, (_, v)) = self
            .members
            .clone()
            .enumerate()
            .find(|(_, (k, _))| *k == key)?;
        if let Some(u) = self.used.get_mut(i) {
            *u = true;
        }
        Some(v)
    }

    /// Key path of a member of this object.
    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Warns about every member that was not taken: unknown keys never fail.
    pub fn finish(self, r: &mut Report) {
        for ((k, _), used) in self.members.zip(self.used) {
            if !used {
                r.warn(&join(&self.path, k), "unknown key, ignored");
            }
        }
    }

    /// A required member; records "missing" when absent.
    pub fn require(&mut self, r: &mut Report, key: &str) -> Option<Node<'v>> {
        let v = self.take(key);
        if v.is_none() {
            r.error(&self.key(key), "missing; this key is required");
        }
        v
    }

    /// An optional string member.
    pub fn string(&mut self, r: &mut Report, key: &str) -> Option<String> {
        let v = self.take(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                r.error(
                    &self.key(key),
                    format!("expected a string, found {}", v.describe()),
                );
                None
            }
        }
    }

    /// An optional integer member in `min..=max`; `strings` also accepts a decimal string
    /// (CloudFormation writes every value as a string). Out of range is an error.
    pub fn int(
        &mut self,
        r: &mut Report,
        key: &str,
        min: i64,
        max: i64,
        unit: &str,
        strings: bool,
    ) -> Option<i64> {
        let v = self.take(key)?;
        let n = match v.as_str() {
            Some(s) if strings => s.trim().parse::<i64>().ok(),
            _ => v.as_i64(),
        };
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                r.error(
                    &self.key(key),
                    format!("found {}; allowed {min}–{max}{unit}", v.describe()),
                );
                None
            }
            None => {
                r.error(
                    &self.key(key),
                    format!(
                        "found {}; allowed an integer {min}–{max}{unit}",
                        v.describe()
                    ),
                );
                None
            }
        }
    }

    /// An optional boolean member; with `strings`, also `"true"`/`"false"` (any case).
    pub fn bool(&mut self, r: &mut Report, key: &str, strings: bool) -> Option<bool> {
        let v = self.take(key)?;
        match (v.as_bool(), v.as_str()) {
            (Some(b), _) => Some(b),
            (_, Some(s)) if strings && s.eq_ignore_ascii_case("true") => Some(true),
            (_, Some(s)) if strings && s.eq_ignore_ascii_case("false") => Some(false),
            _ => {
                let allowed = if strings {
                    "true or false (or the strings \"true\"/\"false\")"
                } else {
                    "true or false"
                };
                r.error(
                    &self.key(key),
                    format!("found {}; allowed {allowed}", v.describe()),
                );
                None
            }
        }
    }

    /// An optional `"yes"`/`"no"` member (Greengrass writes these flags as strings).
    pub fn yes_no(&mut self, r: &mut Report, key: &str) -> Option<bool> {
        let v = self.take(key)?;
        match v.as_str() {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => {
                r.error(
                    &self.key(key),
                    format!("found {}; allowed \"yes\" or \"no\"", v.describe()),
                );
                None
            }
        }
    }

    /// An optional member that must be one of `allowed`.
    pub fn one_of(
        &mut self,
        r: &mut Report,
        key: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let v = self.take(key)?;
        if let Some(a) = v.as_str().and_then(|s| allowed.iter().find(|a| **a == s)) {
            return Some(a);
        }
        r.error(
            &self.key(key),
            format!("found {}; allowed {}", v.describe(), allowed.join(", ")),
        );
        None
    }

    /// An optional absolute path member.
    pub fn abs_path(&mut self, r: &mut Report, key: &str) -> Option<std::path::PathBuf> {
        let s = self.string(r, key)?;
        if s.starts_with('/') {
            Some(s.into())
        } else {
            r.error(
                &self.key(key),
                format!("found \"{s}\"; allowed an absolute path (starting with /)"),
            );
            None
        }
    }
}

/// Test helpers shared by the config.json and group.json tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::ConfigError;

    /// The (key, message) pairs of a parse that must fail.
    pub fn errors<T>(
        input: &str,
        result: Result<(T, Vec<ConfigError>), Vec<ConfigError>>,
    ) -> Vec<(String, String)> {
        match result {
            Ok(_) => panic!("{input} parsed"),
            Err(e) => e.into_iter().map(|e| (e.key, e.message)).collect(),
        }
    }

    /// The single (key, message) of a parse that must fail with exactly one error.
    pub fn one_error(e: Vec<(String, String)>) -> (String, String) {
        assert_eq!(e.len(), 1, "{e:#?}");
        e.into_iter().next().unwrap_or_default()
    }
}
