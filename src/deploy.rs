//! Deployments on the box: `sprig deploy GROUP.json [--lambda ID=PATH]...`, `sprig deploy
//! --status`, `sprig reset`, and the running daemon's hot apply.
//!
//! * [`code`]: function code (zip or directory) checked and unpacked, confined and bounded.
//! * [`txn`]: staging beside the live group, the commit (one journal rename), roll-forward and
//!   recovery of a killed deployment, the deployment lock.
//! * [`history`]: statuses Building / InProgress / Success / Failure, bounded history.
//! * [`apply`]: the daemon's side: notices a new deployment (SIGHUP from `sprig deploy`, or a
//!   poll every [`limits::DEPLOY_POLL_MS`]) and swaps the group in the running process.
//! * [`reset`]: `sprig reset` (the guide's ResetDeployments on the core).
//!
//! Exit codes: 0 success; 2 when the group or its code is refused (every problem on stderr,
//! one per line); 1 for other failures (I/O, the lock held, config.json unreadable).

pub mod adopt;
pub mod apply;
pub mod code;
pub mod fetch;
pub mod history;
pub mod jobs;
pub mod jobs_task;
pub mod reset;
pub mod txn;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, Group};
use crate::json::{self, Value};
use crate::limits;
use history::{Entry, Status};
use txn::{Layout, Plan};

const USAGE: &str = "usage: sprig deploy GROUP.json [--lambda FUNCTION_ID=PATH]... [-r ROOT]
       sprig deploy --status [--json] [-r ROOT]";

/// Test hook: milliseconds to sleep between the steps of staging and rolling forward, so
/// tests/deploy.rs can kill a deployment half-way. Unset (the default) means no pause.
pub const PAUSE_ENV: &str = "SPRIG_TEST_DEPLOY_PAUSE_MS";

pub(crate) fn test_pause() {
    if let Some(ms) = std::env::var_os(PAUSE_ENV).and_then(|v| v.to_str()?.parse::<u64>().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// `sprig deploy ...`: returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sprig deploy: {e}\n{USAGE}");
            return 2;
        }
    };
    let config = match Config::load(&opts.root) {
        Ok((c, _)) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("sprig deploy: {e}");
            }
            return 1;
        }
    };
    match opts.group {
        None => print_status(&config.write_dir, opts.json),
        Some(group) => deploy(&config, &group, &opts.lambdas, opts.id),
    }
}

#[derive(Debug)]
struct Args {
    root: PathBuf,
    /// `--id`: the deployment id to use (the Jobs runner names its deployments).
    id: Option<String>,
    group: Option<PathBuf>,
    lambdas: BTreeMap<String, PathBuf>,
    json: bool,
}

fn parse_args(args: &[OsString]) -> Result<Args, String> {
    let mut a = Args {
        root: PathBuf::from("/greengrass"),
        id: None,
        group: None,
        lambdas: BTreeMap::new(),
        json: false,
    };
    let mut status = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-r" | "--root") => {
                a.root = it.next().ok_or("-r needs a directory")?.into();
            }
            Some("--status") => status = true,
            Some("--id") => {
                let id = it
                    .next()
                    .and_then(|v| v.to_str())
                    .ok_or("--id needs an id")?;
                safe_id(id).map_err(|_| format!("--id {id:?}: use A-Z a-z 0-9 . _ : -"))?;
                a.id = Some(id.to_string());
            }
            Some("--json") => a.json = true,
            Some("--lambda") => {
                let v = it.next().ok_or("--lambda needs FUNCTION_ID=PATH")?;
                let v = v.to_str().ok_or("--lambda: not UTF-8")?;
                let (id, path) = v
                    .split_once('=')
                    .filter(|(i, p)| !i.is_empty() && !p.is_empty())
                    .ok_or_else(|| format!("--lambda {v:?}: expected FUNCTION_ID=PATH"))?;
                if a.lambdas.len() >= limits::DEPLOY_MAX_LAMBDA_ARGS {
                    return Err(format!(
                        "at most {} --lambda options",
                        limits::DEPLOY_MAX_LAMBDA_ARGS
                    ));
                }
                if a.lambdas.insert(id.to_string(), path.into()).is_some() {
                    return Err(format!("--lambda {id} is given twice"));
                }
            }
            Some(s) if !s.starts_with('-') && a.group.is_none() => a.group = Some(s.into()),
            _ => return Err(format!("unknown argument '{}'", arg.to_string_lossy())),
        }
    }
    match (status, &a.group) {
        (true, Some(_)) => Err("--status takes no GROUP.json".into()),
        (true, None) if a.lambdas.is_empty() => Ok(a),
        (true, None) => Err("--status takes no --lambda".into()),
        (false, None) => Err("no GROUP.json given".into()),
        (false, Some(_)) if a.json => Err("--json goes with --status".into()),
        (false, Some(_)) => Ok(a),
    }
}

fn print_status(write_dir: &Path, as_json: bool) -> i32 {
    let (all, warning) = history::load(write_dir);
    if let Some(w) = warning {
        eprintln!("sprig deploy: warning: {w}");
    }
    if as_json {
        let v = Value::Object(vec![(
            "deployments".into(),
            Value::Array(all.iter().map(Entry::to_json).collect()),
        )]);
        println!("{}", json::to_string(&v));
    } else if all.is_empty() {
        println!("no deployments yet");
    } else {
        for e in &all {
            println!("{}", e.line());
        }
    }
    0
}

/// A function Id usable as a directory name: 1 to [`limits::DEPLOY_MAX_FUNCTION_ID_BYTES`]
/// bytes of `[A-Za-z0-9._:-]`, not `.` or `..`, not starting with `.`.
pub fn safe_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= limits::DEPLOY_MAX_FUNCTION_ID_BYTES
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "function Id {id:?} cannot name its code directory: use 1 to {} characters of \
             A-Z a-z 0-9 . _ : - (not starting with '.')",
            limits::DEPLOY_MAX_FUNCTION_ID_BYTES
        ))
    }
}

/// A new deployment id (random UUID v4 form).
fn new_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = (t ^ u128::from(std::process::id())).to_be_bytes();
    }
    b[6] = b[6] & 0x0f | 0x40;
    b[8] = b[8] & 0x3f | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// One refusal or failure as the user sees it.
enum Failed {
    Refused(Vec<String>),
    Other(String),
}

fn deploy(
    config: &Config,
    group_file: &Path,
    lambdas: &BTreeMap<String, PathBuf>,
    id: Option<String>,
) -> i32 {
    let layout = Layout::new(&config.write_dir);
    let Some(lock) = lock_and_recover(&layout, "deploy") else {
        return 1;
    };
    let id = id.unwrap_or_else(new_id);
    let record = |status: Status, reason: Option<String>| {
        if let Err(e) = history::record(
            &config.write_dir,
            Entry::new(&id, "NewDeployment", status, reason),
        ) {
            eprintln!("sprig deploy: warning: cannot record the deployment status: {e}");
        }
    };
    record(Status::Building, None);
    let result = validate(config, group_file, lambdas, &layout).and_then(|(bytes, plan)| {
        record(Status::InProgress, None);
        stage_and_commit(&layout, &lock, &id, &bytes, plan, lambdas)
    });
    match result {
        Ok(()) => {
            record(Status::Success, None);
            drop(lock);
            match notify_daemon(config) {
                Some(pid) => {
                    println!("deployment {id} Success: installed; the running core (pid {pid}) applies it now");
                }
                None => println!(
                    "deployment {id} Success: installed; the core applies it when it starts"
                ),
            }
            0
        }
        Err(f) => {
            txn::abort(&layout, &lock);
            let (code, lines) = match f {
                Failed::Refused(l) => (2, l),
                Failed::Other(m) => (1, vec![m]),
            };
            for l in &lines {
                eprintln!("sprig deploy: {l}");
            }
            let mut reason = lines.first().cloned().unwrap_or_default();
            if lines.len() > 1 {
                reason.push_str(&format!(" (and {} more problems)", lines.len() - 1));
            }
            record(
                Status::Failure,
                Some(format!("{reason}; the previous group stays in force")),
            );
            eprintln!("sprig deploy: deployment {id} Failure: the previous group stays in force");
            code
        }
    }
}

/// Takes the deployment lock and finishes or removes an interrupted deployment's leftovers;
/// `None` (after saying why on stderr) when another one runs or the disk fails.
fn lock_and_recover(layout: &Layout, command: &str) -> Option<txn::Lock> {
    let lock = match txn::try_lock(layout) {
        Ok(Some(l)) => l,
        Ok(None) => {
            eprintln!(
                "sprig {command}: another deployment or reset is running (its lock {} is held; \
                 a reset cannot start while a deployment is Building or InProgress); try again when it ends",
                layout.deployment.join(".lock").display()
            );
            return None;
        }
        Err(e) => {
            eprintln!(
                "sprig {command}: cannot lock {}: {e}",
                layout.deployment.display()
            );
            return None;
        }
    };
    match txn::recover(layout, &lock) {
        Ok(txn::Recovered::Nothing) => Some(lock),
        Ok(r) => {
            eprintln!("sprig {command}: leftovers of an interrupted deployment: {r:?}");
            Some(lock)
        }
        Err(e) => {
            eprintln!("sprig {command}: cannot clean up an interrupted deployment: {e}");
            None
        }
    }
}

/// Everything checked before anything is written: the group (the guide's rules, the config's
/// RunAs rule), function Ids, code present for every function, every code source.
fn validate(
    config: &Config,
    group_file: &Path,
    lambdas: &BTreeMap<String, PathBuf>,
    layout: &Layout,
) -> Result<(Vec<u8>, Plan), Failed> {
    let bytes = match read_capped(group_file, limits::MAX_GROUP_JSON_BYTES as u64) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(Failed::Refused(vec![format!(
                "{}: no such file",
                group_file.display()
            )]))
        }
        Err(e) => {
            return Err(Failed::Refused(vec![format!(
                "{}: {e}",
                group_file.display()
            )]))
        }
    };
    let group = match Group::parse(&bytes, group_file) {
        Ok((g, _warnings)) => g,
        Err(errors) => {
            return Err(Failed::Refused(
                errors.iter().map(ToString::to_string).collect(),
            ))
        }
    };
    let mut problems: Vec<String> = group
        .validate_against(config)
        .iter()
        .map(|e| {
            // validate_against names the live group.json; name the file being deployed.
            crate::config::ConfigError {
                file: group_file.to_path_buf(),
                ..e.clone()
            }
            .to_string()
        })
        .collect();
    let installed = layout.installed();
    let user: Vec<&crate::config::Function> = group
        .functions
        .iter()
        .filter(|f| f.system.is_none())
        .collect();
    for f in &user {
        if let Err(why) = safe_id(&f.id) {
            problems.push(format!("{}: {why}", group_file.display()));
            continue;
        }
        if !lambdas.contains_key(&f.id) && !installed.contains(&f.id) {
            problems.push(format!(
                "function {} ({}): no code: give --lambda {}=PATH (a .zip or a directory); none is installed",
                f.id, f.arn, f.id
            ));
        }
    }
    for (id, path) in lambdas {
        if !user.iter().any(|f| &f.id == id) {
            problems.push(format!(
                "--lambda {id}: the group has no function with Id {id:?}{}",
                if group.functions.iter().any(|f| &f.id == id) {
                    " other than a system function, which has no code"
                } else {
                    ""
                }
            ));
            continue;
        }
        problems.extend(code::check(id, path).iter().map(ToString::to_string));
    }
    if !problems.is_empty() {
        return Err(Failed::Refused(problems));
    }
    let keep: Vec<&str> = user.iter().map(|f| f.id.as_str()).collect();
    let plan = Plan {
        id: String::new(),
        group: true,
        install: lambdas.keys().cloned().collect(),
        remove: installed
            .into_iter()
            .filter(|i| !keep.contains(&i.as_str()))
            .collect(),
    };
    Ok((bytes, plan))
}

fn stage_and_commit(
    layout: &Layout,
    lock: &txn::Lock,
    id: &str,
    group_bytes: &[u8],
    mut plan: Plan,
    lambdas: &BTreeMap<String, PathBuf>,
) -> Result<(), Failed> {
    let io = |what: &str, e: io::Error| Failed::Other(format!("{what}: {e}"));
    txn::begin(layout, lock).map_err(|e| io("cannot create the staging directory", e))?;
    txn::stage_group(layout, lock, group_bytes).map_err(|e| io("cannot stage group.json", e))?;
    for (fid, src) in lambdas {
        test_pause();
        code::install(fid, src, &layout.staged_lambda(fid)).map_err(|e| match e {
            code::StageError::Refused(p) => Failed::Refused(vec![p.to_string()]),
            code::StageError::Io(m) => Failed::Other(m),
        })?;
    }
    plan.id = id.to_string();
    txn::commit(layout, lock, &plan).map_err(|e| io("cannot install the deployment", e))
}

/// The running core, when it should learn of a new deployment.
pub fn notify_daemon(config: &Config) -> Option<i32> {
    let pid = crate::daemon::running_pid(config)?;
    crate::sys::kill(pid, libc::SIGHUP).ok()?;
    Some(pid)
}

/// `sprig start`: finishes or removes what a killed deployment left, before the group is
/// loaded. Waits up to [`limits::DEPLOY_LOCK_WAIT_MS`] for a running `sprig deploy`.
pub fn recover_at_start(write_dir: &Path) -> Result<(), String> {
    let layout = Layout::new(write_dir);
    let wait = Duration::from_millis(limits::DEPLOY_LOCK_WAIT_MS);
    let lock = match txn::lock_waiting(&layout, wait) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err(format!(
                "a deployment holds {} for over {} s; starting without checking for leftovers",
                layout.deployment.join(".lock").display(),
                wait.as_secs()
            ))
        }
        // A read-only or missing write directory: nothing can have been deployed there.
        Err(_) => return Ok(()),
    };
    match txn::recover(&layout, &lock) {
        Ok(txn::Recovered::Nothing) => Ok(()),
        Ok(txn::Recovered::RolledForward(id)) => {
            eprintln!("sprig: deployment {id} was interrupted after its commit; completed it");
            Ok(())
        }
        Ok(txn::Recovered::RolledBack) => {
            eprintln!(
                "sprig: an interrupted deployment was removed; the previous group stays in force"
            );
            Ok(())
        }
        Err(e) => Err(format!("cannot recover an interrupted deployment: {e}")),
    }
}

/// The latest deployment, one line, for `sprig status`.
pub fn latest_line(write_dir: &Path) -> Option<String> {
    history::latest(write_dir).map(|e| e.line())
}

/// Reads a file of at most `max` bytes; `Ok(None)` when it does not exist.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Option<Vec<u8>>, String> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes; refused"));
    }
    Ok(Some(bytes))
}

/// Writes a new file and fsyncs it (creating the parent directory).
pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces `path` atomically and durably: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    write_file_synced(Path::new(&tmp), bytes)?;
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// fsync of a directory, so renames in it survive a power cut.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(&v.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        let a = args(&["g.json", "--lambda", "f1=/x.zip", "-r", "/r"]).unwrap();
        assert_eq!(a.group, Some(PathBuf::from("g.json")));
        assert_eq!(a.lambdas["f1"], PathBuf::from("/x.zip"));
        assert!(args(&["--status", "--json"]).unwrap().json);
        assert!(args(&[]).unwrap_err().contains("no GROUP.json"));
        assert!(args(&["g", "--lambda", "f1"])
            .unwrap_err()
            .contains("FUNCTION_ID=PATH"));
        assert!(args(&["g", "--lambda", "a=1", "--lambda", "a=2"])
            .unwrap_err()
            .contains("twice"));
        assert!(args(&["--status", "g"]).is_err());
    }

    #[test]
    fn ids() {
        assert!(safe_id("TestLambda1").is_ok());
        assert!(safe_id("arn:aws:lambda:us-east-1:1:function:f:1").is_ok());
        for bad in ["", "..", ".hidden", "a/b", "a b"] {
            assert!(safe_id(bad).is_err(), "{bad:?}");
        }
        let id = new_id();
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }
}
