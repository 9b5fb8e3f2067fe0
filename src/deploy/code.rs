//! Function code for `sprig deploy --lambda ID=PATH`: a zip (stored or deflated entries, read
//! with the `zip` crate) or a directory, checked and then unpacked into the staging area.
//!
//! Rules (each refusal names the function Id, the zip or directory, and the entry): every
//! entry stays inside its directory (no absolute paths, no `..`, no backslashes), no links
//! (a link could point out) and no device or fifo nodes, at most
//! [`limits::DEPLOY_MAX_CODE_ENTRIES`] entries with paths of at most
//! [`limits::DEPLOY_MAX_CODE_PATH_BYTES`], at most [`limits::DEPLOY_MAX_CODE_BYTES`] in all.
//! The byte limit is checked twice: on the sizes the zip declares (before anything is
//! written) and on the bytes actually unpacked (a zip that lies about its sizes is stopped
//! at the limit, so a zip bomb never fills the disk).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;

use crate::limits;

/// Why a function's code was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeProblem {
    pub function: String,
    pub source: PathBuf,
    pub entry: Option<String>,
    pub message: String,
}

impl std::fmt::Display for CodeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "function {}: {}", self.function, self.source.display())?;
        if let Some(e) = &self.entry {
            write!(f, ": entry {e:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why staging failed: the code is refused (exit 2) or the system failed (exit 1).
#[derive(Debug)]
pub enum StageError {
    Refused(CodeProblem),
    Io(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Link,
    Other,
}

/// One entry as listed (a zip's central directory, or a directory walk).
struct Listed {
    rel: String,
    kind: Kind,
    size: u64,
    mode: Option<u32>,
    /// Zip: the method is not stored/deflated, or the entry is encrypted.
    unsupported: Option<String>,
}

struct Ctx<'a> {
    function: &'a str,
    source: &'a Path,
}

impl Ctx<'_> {
    fn problem(&self, entry: Option<&str>, message: impl Into<String>) -> CodeProblem {
        CodeProblem {
            function: self.function.to_string(),
            source: self.source.to_path_buf(),
            entry: entry.map(str::to_string),
            message: message.into(),
        }
    }
}

/// Checks `source` (a zip file or a directory) without writing anything; every problem found.
pub fn check(function: &str, source: &Path) -> Vec<CodeProblem> {
    let cx = Ctx { function, source };
    match list(&cx) {
        Ok(entries) => rules(&cx, &entries),
        Err(p) => vec![p],
    }
}

/// Unpacks or copies `source` into `dest` (which must not exist), holding exactly its files.
pub fn install(function: &str, source: &Path, dest: &Path) -> Result<(), StageError> {
    let cx = Ctx { function, source };
    let entries = list(&cx).map_err(StageError::Refused)?;
    if let Some(p) = rules(&cx, &entries).into_iter().next() {
        return Err(StageError::Refused(p));
    }
    let io_err = |e: io::Error, what: &Path| {
        StageError::Io(format!(
            "function {function}: writing {}: {e}",
            what.display()
        ))
    };
    fs::create_dir_all(dest).map_err(|e| io_err(e, dest))?;
    let mut budget = limits::DEPLOY_MAX_CODE_BYTES;
    let mut dirs = vec![dest.to_path_buf()];
    let is_zip = !source.is_dir();
    let mut archive = if is_zip {
        let f =
            File::open(source).map_err(|e| StageError::Io(format!("{}: {e}", source.display())))?;
        Some(zip::ZipArchive::new(f).map_err(|e| {
            StageError::Refused(cx.problem(None, format!("not a readable zip: {e}")))
        })?)
    } else {
        None
    };
    for (index, e) in entries.iter().enumerate() {
        let target = dest.join(normalized(&e.rel));
        if e.kind == Kind::Dir {
            fs::create_dir_all(&target).map_err(|err| {
                StageError::Refused(cx.problem(Some(&e.rel), format!("cannot create it: {err}")))
            })?;
            dirs.push(target);
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|err| {
                StageError::Refused(
                    cx.problem(Some(&e.rel), format!("cannot create its directory: {err}")),
                )
            })?;
            dirs.push(parent.to_path_buf());
        }
        let mode = e.mode.map(|m| m & 0o755 | 0o600).unwrap_or(0o644);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(|err| {
                StageError::Refused(cx.problem(Some(&e.rel), format!("cannot create it: {err}")))
            })?;
        let copied = match archive.as_mut() {
            Some(a) => {
                let mut zf = a.by_index(index).map_err(|err| {
                    StageError::Refused(cx.problem(Some(&e.rel), format!("cannot read it: {err}")))
                })?;
                copy_capped(&mut zf, &mut out, budget)
            }
            None => {
                let mut f = File::open(source.join(normalized(&e.rel)))
                    .map_err(|err| io_err(err, &source.join(&e.rel)))?;
                copy_capped(&mut f, &mut out, budget)
            }
        };
        let n = copied.map_err(|err| {
            StageError::Refused(cx.problem(Some(&e.rel), format!("cannot unpack it: {err}")))
        })?;
        if n > budget {
            return Err(StageError::Refused(cx.problem(
                Some(&e.rel),
                format!(
                    "unpacks to more than {} bytes in all (the limit; the sizes the zip declares are wrong)",
                    limits::DEPLOY_MAX_CODE_BYTES
                ),
            )));
        }
        budget -= n;
        out.sync_all().map_err(|err| io_err(err, &target))?;
        // Modes must not depend on the umask: set them again.
        let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode));
    }
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        super::sync_dir(&d).map_err(|err| io_err(err, &d))?;
    }
    Ok(())
}

/// Copies at most `budget + 1` bytes, so the caller sees an overflow without reading on.
fn copy_capped(from: &mut dyn Read, to: &mut File, budget: u64) -> io::Result<u64> {
    let mut limited = from.take(budget.saturating_add(1));
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        let n = limited.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// The relative path without `.` components and trailing slashes.
fn normalized(rel: &str) -> PathBuf {
    rel.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

fn list(cx: &Ctx) -> Result<Vec<Listed>, CodeProblem> {
    let meta =
        fs::metadata(cx.source).map_err(|e| cx.problem(None, format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        let mut out = Vec::new();
        walk(cx, cx.source, "", &mut out)?;
        return Ok(out);
    }
    if meta.len() > limits::DEPLOY_MAX_CODE_BYTES {
        return Err(cx.problem(
            None,
            format!(
                "the zip is {} bytes; at most {} are accepted",
                meta.len(),
                limits::DEPLOY_MAX_CODE_BYTES
            ),
        ));
    }
    let f = File::open(cx.source).map_err(|e| cx.problem(None, format!("cannot open it: {e}")))?;
    let mut a = zip::ZipArchive::new(f)
        .map_err(|e| cx.problem(None, format!("not a readable zip: {e}")))?;
    if a.len() > limits::DEPLOY_MAX_CODE_ENTRIES {
        return Err(cx.problem(
            None,
            format!(
                "{} entries; at most {} are accepted",
                a.len(),
                limits::DEPLOY_MAX_CODE_ENTRIES
            ),
        ));
    }
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let zf = a
            .by_index_raw(i)
            .map_err(|e| cx.problem(None, format!("entry {i} is unreadable: {e}")))?;
        let rel = String::from_utf8_lossy(zf.name_raw()).into_owned();
        let mode = zf.unix_mode();
        let is_link = zf.is_symlink();
        let kind = if is_link {
            Kind::Link
        } else if zf.is_dir() {
            Kind::Dir
        } else if mode.is_some_and(|m| m & 0o170000 != 0 && m & 0o170000 != 0o100000) {
            Kind::Other
        } else {
            Kind::File
        };
        let unsupported = if zf.encrypted() {
            Some("is encrypted; encrypted zips are not supported".to_string())
        } else {
            match zf.compression() {
                CompressionMethod::Stored | CompressionMethod::Deflated => None,
                m => Some(format!(
                    "uses compression {m:?}; only stored and deflated entries are supported"
                )),
            }
        };
        out.push(Listed {
            rel,
            kind,
            size: zf.size(),
            mode,
            unsupported,
        });
    }
    Ok(out)
}

/// Lists a directory without following links; stops at the entry limit.
fn walk(cx: &Ctx, dir: &Path, prefix: &str, out: &mut Vec<Listed>) -> Result<(), CodeProblem> {
    let rd =
        fs::read_dir(dir).map_err(|e| cx.problem(Some(prefix), format!("cannot list it: {e}")))?;
    let mut names: Vec<fs::DirEntry> = Vec::new();
    for e in rd {
        let e = e.map_err(|e| cx.problem(Some(prefix), format!("cannot list it: {e}")))?;
        names.push(e);
        if out.len() + names.len() > limits::DEPLOY_MAX_CODE_ENTRIES {
            return Err(cx.problem(
                None,
                format!("more than {} entries", limits::DEPLOY_MAX_CODE_ENTRIES),
            ));
        }
    }
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let m = e
            .metadata()
            .map_err(|err| cx.problem(Some(&rel), format!("cannot read it: {err}")))?;
        let t = m.file_type();
        let kind = if t.is_symlink() {
            Kind::Link
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        };
        out.push(Listed {
            rel: rel.clone(),
            kind,
            size: if kind == Kind::File { m.len() } else { 0 },
            mode: Some(m.permissions().mode()),
            unsupported: None,
        });
        if kind == Kind::Dir && rel.len() <= limits::DEPLOY_MAX_CODE_PATH_BYTES {
            walk(cx, &e.path(), &rel, out)?;
        }
    }
    Ok(())
}

/// Every rule over the listed entries.
fn rules(cx: &Ctx, entries: &[Listed]) -> Vec<CodeProblem> {
    let mut problems = Vec::new();
    let mut total: u64 = 0;
    for e in entries {
        if let Err(why) = confined(&e.rel) {
            problems.push(cx.problem(Some(&e.rel), why));
            continue;
        }
        match e.kind {
            Kind::Link => problems.push(cx.problem(
                Some(&e.rel),
                "is a symbolic link; links are not accepted in function code (one could point outside its directory)",
            )),
            Kind::Other => problems.push(cx.problem(
                Some(&e.rel),
                "is not a regular file or directory (device, fifo or socket)",
            )),
            _ => {}
        }
        if let Some(u) = &e.unsupported {
            problems.push(cx.problem(Some(&e.rel), u.clone()));
        }
        total = total.saturating_add(e.size);
    }
    if total > limits::DEPLOY_MAX_CODE_BYTES {
        problems.push(cx.problem(
            None,
            format!(
                "unpacks to {total} bytes; at most {} are accepted",
                limits::DEPLOY_MAX_CODE_BYTES
            ),
        ));
    }
    problems
}

/// A relative path that stays inside its directory.
fn confined(rel: &str) -> Result<(), String> {
    if rel.is_empty() {
        return Err("has an empty name".into());
    }
    if rel.len() > limits::DEPLOY_MAX_CODE_PATH_BYTES {
        return Err(format!(
            "the path is {} bytes; at most {} are accepted",
            rel.len(),
            limits::DEPLOY_MAX_CODE_PATH_BYTES
        ));
    }
    if rel.starts_with('/') {
        return Err(
            "is an absolute path; entries must stay inside the function's directory".into(),
        );
    }
    if rel.contains('\\') || rel.contains('\0') {
        return Err("contains a backslash or NUL; entries must use '/' only".into());
    }
    if rel.split('/').any(|c| c == "..") {
        return Err(
            "has a \"..\" component; entries must stay inside the function's directory".into(),
        );
    }
    if normalized(rel).as_os_str().is_empty() {
        return Err("names the directory itself".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confinement() {
        for ok in ["a.py", "lib/x.py", "./a", "dir/"] {
            assert!(confined(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\\b", ".", "./"] {
            assert!(confined(bad).is_err(), "{bad:?}");
        }
        assert!(confined(&"a".repeat(limits::DEPLOY_MAX_CODE_PATH_BYTES + 1)).is_err());
    }
}
