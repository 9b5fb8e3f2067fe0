//! How one worker process is launched: program and arguments per runtime (`executable`,
//! `python3.x`, `python2.7`), its environment (the names the Core SDKs read, protocols/ipc.md),
//! its identity (RunAs) and its code directory. Pure functions over the config plus small
//! local file reads (/etc/passwd, /etc/group, PATH lookups); the shell turns a [`Launch`]
//! into a process.

use std::path::{Path, PathBuf};

use crate::config::{Config, Function, Group};

/// The ARNs the SDKs read for the core's system functions (ipc.md).
pub const ROUTER_ARN: &str = "arn:aws:lambda:::function:GGRouter";
pub const SHADOW_ARN: &str = "arn:aws:lambda:::function:GGShadowService";
pub const SECRETS_ARN: &str = "arn:aws:lambda:::function:GGSecretManager";

/// The interface version sprig's IPC speaks (the PyPI SDK 1.6.1 says 1.5).
const MAX_INTERFACE_VERSION: &str = "1.5";

/// The Python bootstrap's file name inside the runtime directory.
pub const PYTHON_BOOTSTRAP: &str = "sprig_lambda_runtime.py";

/// What the worker environment needs from the core's configuration.
#[derive(Debug, Clone)]
pub struct CoreCtx {
    pub write_dir: PathBuf,
    pub daemon_port: u16,
    pub thing_name: String,
    pub thing_arn: String,
    pub region: String,
    pub account: String,
    pub group_id: String,
    pub iot_host: String,
    pub gg_host: String,
    pub iot_http_port: u16,
    pub iot_mqtt_port: u16,
    pub gg_http_port: u16,
    pub keep_alive: u16,
    /// `STREAM_MANAGER_SERVER_PORT` from the group's GGStreamManager (default 8088), so the
    /// stream manager client's no-argument constructor finds the server.
    pub stream_manager_port: u16,
    /// (http_proxy/https_proxy value, no_proxy value).
    pub proxy: Option<(String, String)>,
    /// The directory with the Python bootstrap and the modules the SDK imports.
    pub python_runtime: Option<PathBuf>,
    /// The daemon's PATH (workers get it, and python3 is looked up on it).
    pub path: String,
    /// The daemon runs as root and may switch identities.
    pub root: bool,
}

impl CoreCtx {
    pub fn new(config: &Config, group: &Group, exe: Option<&Path>, root: bool) -> CoreCtx {
        let ct = &config.core_thing;
        let parts: Vec<&str> = ct.thing_arn.split(':').collect();
        let proxy = ct.network_proxy.as_ref().map(|p| {
            let mut no = p.no_proxy_addresses.clone();
            no.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
            (p.url.clone(), no.join(","))
        });
        CoreCtx {
            write_dir: config.write_dir.clone(),
            daemon_port: ct.gg_daemon_port,
            thing_name: ct.thing_name.clone(),
            thing_arn: ct.thing_arn.clone(),
            region: parts.get(3).unwrap_or(&"").to_string(),
            account: parts.get(4).unwrap_or(&"").to_string(),
            group_id: group.group_id.clone().unwrap_or_default(),
            iot_host: ct.iot_host.clone(),
            gg_host: ct.gg_host.clone(),
            iot_http_port: ct.iot_http_port,
            iot_mqtt_port: ct.iot_mqtt_port,
            gg_http_port: ct.gg_http_port,
            keep_alive: ct.keep_alive,
            stream_manager_port: group
                .system_function("GGStreamManager")
                .and_then(|f| {
                    f.environment
                        .iter()
                        .find(|(k, _)| k == "STREAM_MANAGER_SERVER_PORT")
                })
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(crate::limits::DEFAULT_STREAM_MANAGER_PORT),
            proxy,
            python_runtime: python_runtime_dir(exe),
            path: std::env::var("PATH").unwrap_or_else(|_| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            }),
            root,
        }
    }
}

/// Where sprig's Python runtime files are, first found of:
/// `$SPRIG_PYTHON_RUNTIME`; `<binary dir>/../runtime/python` (the packages' layout:
/// `ggc/packages/<version>/bin/sprig` + `ggc/packages/<version>/runtime/python`, and
/// `/usr/bin/sprig` + `/usr/share/sprig/runtime/python` via `<binary dir>/../share/sprig/...`);
/// `<binary dir>/runtime/python` (an unpacked release tarball);
/// the source tree's `runtime/python` (a development build run from its checkout).
pub fn python_runtime_dir(exe: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("SPRIG_PYTHON_RUNTIME") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(bin) = exe.and_then(Path::parent) {
        candidates.push(bin.join("../runtime/python"));
        candidates.push(bin.join("runtime/python"));
        candidates.push(bin.join("../share/sprig/runtime/python"));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime/python"));
    candidates
        .into_iter()
        .find(|d| d.join(PYTHON_BOOTSTRAP).is_file())
}

/// Everything needed to start one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Switch to this uid/gid (None: keep the daemon's; it is not root).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The code directory of a function: `WRITE_DIR/ggc/deployment/lambda/<function Id>/`.
pub fn code_dir(write_dir: &Path, f: &Function) -> PathBuf {
    write_dir
        .join("ggc/deployment/lambda")
        .join(f.id.replace(['/', '\0'], "_"))
}

/// Why a function cannot run on this core, if it cannot.
pub fn refusal(f: &Function) -> Option<String> {
    if !f.no_container {
        return Some(
            "IsolationMode GreengrassContainer needs the `containers` feature, which is not built yet; set IsolationMode NoContainer for this function or the group default".into(),
        );
    }
    runtime_of(f).err()
}

/// `sprig check`: the group's functions sprig cannot run, as (errors, warnings): a
/// containerized function or an unsupported Runtime is an error; a function without any
/// Runtime to go by is a warning (the deployment may still name it).
pub fn check_group(
    group: &crate::config::Group,
    file: &Path,
    write_dir: &Path,
) -> (
    Vec<crate::config::ConfigError>,
    Vec<crate::config::ConfigError>,
) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for (i, f) in group.functions.iter().enumerate() {
        if f.system.is_some() {
            continue;
        }
        let dir = code_dir(write_dir, f);
        if !dir.is_dir() {
            warnings.push(crate::config::ConfigError {
                file: file.to_path_buf(),
                key: format!("FunctionDefinitionVersion.Functions[{i}]"),
                message: format!(
                    "the code of function {} is not in {} (a deployment writes it there; until then the function cannot start)",
                    f.arn,
                    dir.display()
                ),
            });
        }
        let Some(why) = refusal(f) else { continue };
        let e = crate::config::ConfigError {
            file: file.to_path_buf(),
            key: format!("FunctionDefinitionVersion.Functions[{i}]"),
            message: format!("function {} cannot run: {why}", f.arn),
        };
        if f.runtime.is_none() && f.no_container {
            warnings.push(e);
        } else {
            errors.push(e);
        }
    }
    (errors, warnings)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Executable,
    Python3,
    Python2,
}

fn runtime_of(f: &Function) -> Result<Kind, String> {
    match f.runtime.as_deref() {
        Some("executable") => Ok(Kind::Executable),
        Some(rt) if rt.starts_with("python3.") => Ok(Kind::Python3),
        Some("python2.7") => Ok(Kind::Python2),
        None if f.executable.is_some() => Ok(Kind::Executable),
        // The API's FunctionDefinitionVersion has no Runtime (it lives on the Lambda side):
        // a `module.function` Handler is taken as Python 3, the common case in v1 groups.
        None if f.handler.as_deref().is_some_and(|h| h.contains('.')) => Ok(Kind::Python3),
        None => Err(
            "no Runtime in the Function or its FunctionConfiguration (python3.x, python2.7 or executable), and no module.function Handler to go by".into(),
        ),
        Some(rt) => Err(format!(
            "runtime {rt} is not supported by sprig (python3.x, python2.7 and executable are)"
        )),
    }
}

/// The uid/gid a function runs as: its RunAs, else the group default (both already merged
/// into `f`), else ggc_user/ggc_group when they exist, else nobody/nogroup.
pub fn run_as(f: &Function, passwd: &str, group: &str) -> (u32, u32) {
    let user = |name: &str| id_of(passwd, name);
    let grp = |name: &str| id_of(group, name);
    let uid = f
        .run_as_uid
        .or_else(|| user("ggc_user"))
        .or_else(|| user("nobody"))
        .unwrap_or(65534);
    let gid = f
        .run_as_gid
        .or_else(|| grp("ggc_group"))
        .or_else(|| grp("nogroup"))
        .or_else(|| grp("nobody"))
        .unwrap_or(65534);
    (uid, gid)
}

/// The numeric id (third field) of `name` in a passwd- or group-format text.
fn id_of(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|l| {
        let mut it = l.split(':');
        (it.next()? == name).then_some(())?;
        it.next()?;
        it.next()?.parse().ok()
    })
}

/// The home directory of `uid` in a passwd text.
fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// Splits `ExecArgs` like a POSIX shell splits words: blanks separate, single quotes keep
/// everything, double quotes keep all but `\"` and `\\`, a backslash escapes one character.
/// No expansion of any kind.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("ExecArgs: unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("ExecArgs: unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("ExecArgs: unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match it.next() {
                    Some(c) => cur.push(c),
                    None => return Err("ExecArgs: a backslash at the end".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// True when `uid`/`gid` may execute the file with this mode and owner.
fn can_execute(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    if uid == 0 {
        return mode & 0o111 != 0;
    }
    if owner == uid {
        mode & 0o100 != 0
    } else if group == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The first `name` on `path` that `uid`/`gid` can execute.
pub fn find_on_path(name: &str, path: &str, uid: u32, gid: u32) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let p = Path::new(d).join(name);
        let m = std::fs::metadata(&p).ok()?;
        let ok = m.is_file() && can_execute(m.mode(), m.uid(), m.gid(), uid, gid);
        // Every directory above it must be searchable by that user too (e.g. not /root/...).
        let reachable = p.ancestors().skip(1).all(|d| {
            std::fs::metadata(d).is_ok_and(|m| can_execute(m.mode(), m.uid(), m.gid(), uid, gid))
        });
        (ok && reachable).then_some(p)
    })
}

/// The launch of one worker of `f` holding `token`.
pub fn launch(ctx: &CoreCtx, f: &Function, token: &str) -> Result<Launch, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (uid, gid) = if ctx.root {
        run_as(f, &passwd, &groups)
    } else {
        // Not root: no identity switch is possible; the worker runs as the daemon's user.
        (crate::sys::euid(), crate::sys::egid())
    };
    let dir = code_dir(&ctx.write_dir, f);
    if !dir.is_dir() {
        return Err(format!(
            "the code directory {} does not exist (deploy the function's code there)",
            dir.display()
        ));
    }
    let kind = runtime_of(f)?;
    let (program, args) = match kind {
        Kind::Executable => {
            let name = f
                .executable
                .as_deref()
                .or(f.handler.as_deref())
                .ok_or("an executable function needs Executable (or Handler)")?;
            let program = dir.join(name);
            let args = match &f.exec_args {
                Some(a) => split_words(a)?,
                None => Vec::new(),
            };
            (program, args)
        }
        Kind::Python3 | Kind::Python2 => {
            let name = if kind == Kind::Python3 {
                "python3"
            } else {
                "python2"
            };
            let py = find_on_path(name, &ctx.path, uid, gid).ok_or_else(|| {
                format!(
                    "no {name} on the PATH ({}) that uid {uid} gid {gid} can execute",
                    ctx.path
                )
            })?;
            let rt = ctx.python_runtime.as_ref().ok_or_else(|| {
                format!("sprig's Python runtime ({PYTHON_BOOTSTRAP}) was not found; see ARCHITECTURE.md \"Lambda runtime files\"")
            })?;
            let handler = f
                .handler
                .clone()
                .ok_or("a Python function needs a Handler (module.function)")?;
            let args = vec![
                "-u".into(),
                rt.join(PYTHON_BOOTSTRAP).display().to_string(),
                handler,
                f.timeout.to_string(),
            ];
            (py, args)
        }
    };
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some((url, no)) = &ctx.proxy {
        for k in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            env.push((k.into(), url.clone()));
        }
        env.push(("no_proxy".into(), no.clone()));
        env.push(("NO_PROXY".into(), no.clone()));
    }
    // The function's own variables override the proxy ones, and are overridden by the core's.
    for (k, v) in &f.environment {
        set(&mut env, k, v);
    }
    let home = home_of(&passwd, uid).unwrap_or_else(|| "/".into());
    let core: Vec<(&str, String)> = vec![
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN", token.into()),
        ("MY_FUNCTION_ARN", f.arn.clone()),
        ("ROUTER_FUNCTION_ARN", ROUTER_ARN.into()),
        ("SHADOW_FUNCTION_ARN", SHADOW_ARN.into()),
        ("SECRETS_MANAGER_FUNCTION_ARN", SECRETS_ARN.into()),
        ("GG_DAEMON_PORT", ctx.daemon_port.to_string()),
        ("GGC_MAX_INTERFACE_VERSION", MAX_INTERFACE_VERSION.into()),
        ("AWS_IOT_THING_NAME", ctx.thing_name.clone()),
        ("AWS_IOT_THING_ARN", ctx.thing_arn.clone()),
        ("AWS_GREENGRASS_GROUP_NAME", ctx.group_id.clone()),
        ("GROUP_ID", ctx.group_id.clone()),
        (
            "ENCODING_TYPE",
            if f.binary_encoding { "binary" } else { "json" }.into(),
        ),
        ("AWS_REGION", ctx.region.clone()),
        (
            "AWS_GG_HTTP_ENDPOINT",
            format!("https://{}:{}", ctx.gg_host, ctx.gg_http_port),
        ),
        (
            "AWS_IOT_HTTP_ENDPOINT",
            format!("https://{}:{}", ctx.iot_host, ctx.iot_http_port),
        ),
        ("AWS_GG_MQTT_ENDPOINT", ctx.gg_host.clone()),
        (
            "AWS_IOT_MQTT_ENDPOINT",
            format!("{}:{}", ctx.iot_host, ctx.iot_mqtt_port),
        ),
        ("GG_MQTT_KEEP_ALIVE", ctx.keep_alive.to_string()),
        (
            "STREAM_MANAGER_SERVER_PORT",
            ctx.stream_manager_port.to_string(),
        ),
        ("HOME", home),
        ("PATH", ctx.path.clone()),
    ];
    for (k, v) in core {
        set(&mut env, k, &v);
    }
    Ok(Launch {
        program,
        args,
        cwd: dir,
        env,
        uid: ctx.root.then_some(uid),
        gid: ctx.root.then_some(gid),
    })
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    env.retain(|(x, _)| x != k);
    env.push((k.into(), v.into()));
}

/// (region, account, name) of a function ARN, for its log file
/// `user/<region>/<account>/<name>.log`.
pub fn log_parts(arn: &str) -> (String, String, String) {
    let p: Vec<&str> = arn.split(':').collect();
    let get = |i: usize| p.get(i).copied().unwrap_or("").to_string();
    (get(3), get(4), get(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell_without_expansion() {
        assert_eq!(
            split_words(r#"a  'b c' "d \"e\" $X" f\ g"#).unwrap(),
            vec!["a", "b c", r#"d "e" $X"#, "f g"]
        );
        assert_eq!(split_words("").unwrap(), Vec::<String>::new());
        assert_eq!(split_words("''").unwrap(), vec![""]);
        assert!(split_words("'open").is_err());
    }

    #[test]
    fn run_as_falls_back_to_ggc_user_then_nobody() {
        let mut f = Function {
            id: "f".into(),
            arn: "arn:aws:lambda:r:1:function:f:1".into(),
            system: None,
            pinned: false,
            timeout: 3,
            memory_size: None,
            binary_encoding: false,
            executable: None,
            exec_args: None,
            runtime: None,
            handler: None,
            environment: vec![],
            no_container: true,
            run_as_uid: None,
            run_as_gid: None,
            access_sysfs: false,
            resource_access: vec![],
        };
        let passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
        let group = "root:x:0:\nnogroup:x:65534:\n";
        assert_eq!(run_as(&f, passwd, group), (65534, 65534));
        let passwd2 = format!("{passwd}ggc_user:x:998:997::/home/ggc:/bin/false\n");
        let group2 = format!("{group}ggc_group:x:997:\n");
        assert_eq!(run_as(&f, &passwd2, &group2), (998, 997));
        f.run_as_uid = Some(1234);
        f.run_as_gid = Some(99);
        assert_eq!(run_as(&f, &passwd2, &group2), (1234, 99));
        assert_eq!(home_of(&passwd2, 998).as_deref(), Some("/home/ggc"));
    }

    #[test]
    fn execute_permission_by_identity() {
        assert!(can_execute(0o755, 0, 0, 1000, 1000));
        assert!(!can_execute(0o750, 0, 0, 1000, 1000));
        assert!(can_execute(0o750, 0, 1000, 1000, 1000));
        assert!(can_execute(0o100, 0, 0, 0, 0));
    }

    #[test]
    fn arn_parts_for_logs() {
        assert_eq!(
            log_parts("arn:aws:lambda:us-east-1:123456789012:function:hello:3"),
            ("us-east-1".into(), "123456789012".into(), "hello".into())
        );
    }
}
