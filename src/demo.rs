//! `sprig demo [DIR] [--port PORT]`: a self-contained playground root, then the daemon on it.
//!
//! DIR (default `./sprig-demo`) gets a group CA, a core certificate, two devices
//! ([`SENSOR`] and [`DISPLAY`]) with certificates and keys, a config.json with the cloud link off
//! and a group.json with both devices and subscriptions between them. A second run reuses what is
//! there (same CA, same device certificates). Then it prints the `mosquitto_sub`/`mosquitto_pub`
//! commands that talk through the core and starts the daemon in the foreground, insecure mode.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::limits::DEFAULT_GG_MQTT_PORT;
use crate::pki::{self, write_file_atomic, FileMode, GroupCa, PkiError};

/// The device that publishes.
pub const SENSOR: &str = "sprig-demo-sensor";
/// The device that subscribes.
pub const DISPLAY: &str = "sprig-demo-display";
/// The core's thing name.
pub const CORE: &str = "sprig-demo-core";
/// The subject routed between the two devices (both ways).
pub const SUBJECT: &str = "sprig/demo/#";
/// A topic the demo publishes on that no subscription routes.
pub const UNROUTED_TOPIC: &str = "sprig/private/hello";
/// Account and region in the demo's ARNs (no AWS account is involved).
const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:000000000000";

/// Runs `sprig demo`; returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let (dir, port) = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("sprig demo: {msg}\nusage: sprig demo [DIR] [--port PORT]");
            return 2;
        }
    };
    let demo = match prepare(&dir, port) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("sprig demo: {e}");
            return 2;
        }
    };
    print!("{}", demo.instructions());
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    start_daemon(&demo.root)
}

fn start_daemon(root: &Path) -> i32 {
    crate::daemon::start(crate::daemon::StartOptions {
        root: root.to_path_buf(),
        foreground: true,
        insecure: true,
    })
}

fn parse_args(args: &[OsString]) -> Result<(PathBuf, Option<u16>), String> {
    let mut dir = None;
    let mut port = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--port") => {
                let value = it.next().and_then(|v| v.to_str()).unwrap_or("");
                match value.parse::<u16>() {
                    Ok(p) if p > 0 => port = Some(p),
                    _ => return Err(format!("--port needs a port 1-65535, found {value:?}")),
                }
            }
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {}", arg.to_string_lossy())),
        }
    }
    Ok((dir.unwrap_or_else(|| PathBuf::from("sprig-demo")), port))
}

/// A problem while setting up the demo root.
#[derive(Debug)]
pub enum DemoError {
    Pki(PkiError),
    /// DIR exists but config.json in it does not load; every problem is listed.
    Config(Vec<crate::config::ConfigError>),
    /// Only one of group-ca.pem / group-ca.key exists.
    HalfCa {
        present: PathBuf,
        missing: PathBuf,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// DIR has a config.json or group.json but no demo CA: a real root, not touched.
    NotADemoRoot {
        existing: PathBuf,
    },
}

impl std::fmt::Display for DemoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DemoError::Pki(e) => write!(f, "{e}"),
            DemoError::Config(errors) => {
                write!(f, "the existing demo config does not load (fix it, or delete it to regenerate it):")?;
                errors.iter().try_for_each(|e| write!(f, "\n  {e}"))
            }
            DemoError::HalfCa { present, missing } => write!(
                f,
                "{} exists but {} does not; restore it, or delete both to make a new CA (and new device certificates)",
                present.display(),
                missing.display()
            ),
            DemoError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            DemoError::NotADemoRoot { existing } => write!(
                f,
                "{} exists but there is no certs/group-ca.pem next to it: this is not a sprig demo root, \
                 and the demo does not overwrite it; pick another DIR",
                existing.display()
            ),
        }
    }
}

impl From<PkiError> for DemoError {
    fn from(e: PkiError) -> Self {
        DemoError::Pki(e)
    }
}

/// A ready demo root and what to tell the user about it.
#[derive(Debug)]
pub struct Demo {
    /// Absolute path of DIR.
    pub root: PathBuf,
    /// `true` when this run made the CA (a new root); `false` when it reused one.
    pub created: bool,
    pub port: u16,
    /// Said when the port is not the one the user may expect.
    pub port_note: Option<String>,
}

/// Paths of one device's certificate and key.
fn device_paths(root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let dir = root.join("devices").join(name);
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn ca_paths(root: &Path) -> (PathBuf, PathBuf) {
    let certs = root.join("certs");
    (certs.join("group-ca.pem"), certs.join("group-ca.key"))
}

/// Creates what is missing in `dir` and returns the demo. `port` forces `ggMqttPort`.
pub fn prepare(dir: &Path, port: Option<u16>) -> Result<Demo, DemoError> {
    let root = std::path::absolute(dir).map_err(|error| DemoError::Io {
        path: dir.to_path_buf(),
        error,
    })?;
    let (ca_cert, ca_key) = ca_paths(&root);
    let (ca, created) = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) => (GroupCa::load(&ca_cert, &ca_key)?, false),
        (false, false) => {
            for existing in [
                crate::config::config_path(&root),
                crate::config::group_path(&root),
            ] {
                if existing.exists() {
                    return Err(DemoError::NotADemoRoot { existing });
                }
            }
            let ca = GroupCa::create("sprig demo group CA")?;
            ca.save(&ca_cert, &ca_key)?;
            (ca, true)
        }
        (true, false) => {
            return Err(DemoError::HalfCa {
                present: ca_cert,
                missing: ca_key,
            })
        }
        (false, true) => {
            return Err(DemoError::HalfCa {
                present: ca_key,
                missing: ca_cert,
            })
        }
    };

    let certs = root.join("certs");
    let core = (certs.join("core.cert.pem"), certs.join("core.private.key"));
    let mut ids = Vec::new();
    let mut any_issued = false;
    for (name, (cert, key)) in [
        (CORE, core.clone()),
        (SENSOR, device_paths(&root, SENSOR)),
        (DISPLAY, device_paths(&root, DISPLAY)),
    ] {
        let (id, issued) = ensure_client_cert(&ca, name, &cert, &key)?;
        any_issued |= issued;
        ids.push(id);
    }

    let config_path = crate::config::config_path(&root);
    let (port, port_note) = if config_path.exists() && port.is_none() {
        let (config, _warnings) = Config::load(&root).map_err(DemoError::Config)?;
        let port = config.core_thing.gg_mqtt_port;
        let note = (!port_free(port)).then(|| {
            format!("port {port} is busy (another sprig demo running?); stop it, or run `sprig demo {} --port PORT`", root.display())
        });
        (port, note)
    } else {
        let (port, note) = match port {
            Some(p) => (p, None),
            None => pick_port(),
        };
        let json = config_json(&root, &core.0, &core.1, port);
        write_file_atomic(&config_path, json.as_bytes(), FileMode::Public)?;
        (port, note)
    };

    let group_path = crate::config::group_path(&root);
    if any_issued || !group_path.exists() {
        let json = group_json(&ids[0], &ids[1], &ids[2]);
        write_file_atomic(&group_path, json.as_bytes(), FileMode::Public)?;
    }
    Ok(Demo {
        root,
        created,
        port,
        port_note,
    })
}

/// Reuses `cert`/`key` when both exist and `ca` signed the certificate; issues them otherwise.
/// Returns the certificate id and whether it was issued now.
fn ensure_client_cert(
    ca: &GroupCa,
    name: &str,
    cert: &Path,
    key: &Path,
) -> Result<(String, bool), PkiError> {
    if key.exists() {
        if let Ok(chain) = pki::load_cert_chain(cert) {
            if ca.signed(&chain[0]) {
                return Ok((pki::certificate_id(&chain[0]), false));
            }
        }
    }
    let issued = ca.issue_client(name)?;
    write_file_atomic(key, issued.key_pem.as_bytes(), FileMode::Secret)?;
    write_file_atomic(cert, issued.cert_pem.as_bytes(), FileMode::Public)?;
    Ok((pki::certificate_id(&issued.cert_der), true))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// 8883 when free, else a port the kernel hands out, with a note saying so.
fn pick_port() -> (u16, Option<String>) {
    if port_free(DEFAULT_GG_MQTT_PORT) {
        return (DEFAULT_GG_MQTT_PORT, None);
    }
    let port = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|l| l.local_addr())
        .map_or(DEFAULT_GG_MQTT_PORT, |a| a.port());
    let note = format!("port {DEFAULT_GG_MQTT_PORT} is busy; the demo uses port {port} instead");
    (port, Some(note))
}

fn config_json(root: &Path, core_cert: &Path, core_key: &Path, port: u16) -> String {
    let (ca_cert, _) = ca_paths(root);
    let file_uri = |p: &Path| json_str(&format!("file://{}", p.display()));
    format!(
        r#"{{
  "coreThing": {{
    "thingArn": {thing},
    "iotHost": "none",
    "ggHost": "none",
    "ggMqttPort": {port},
    "keepAlive": 600
  }},
  "runtime": {{
    "maxWorkItemCount": 1024,
    "cgroup": {{ "useSystemd": "no" }}
  }},
  "managedRespawn": false,
  "crypto": {{
    "caPath": {ca},
    "principals": {{
      "IoTCertificate": {{
        "privateKeyPath": {key},
        "certificatePath": {cert}
      }}
    }}
  }},
  "pidFileDirectory": {pid}
}}
"#,
        thing = json_str(&format!("{ARN_PREFIX}:thing/{CORE}")),
        ca = file_uri(&ca_cert),
        key = file_uri(core_key),
        cert = file_uri(core_cert),
        pid = json_str(&root.join("run").display().to_string()),
    )
}

fn group_json(core_id: &str, sensor_id: &str, display_id: &str) -> String {
    let thing = |name: &str| format!("{ARN_PREFIX}:thing/{name}");
    let cert = |id: &str| format!("{ARN_PREFIX}:cert/{id}");
    format!(
        r#"{{
  "GroupId": "sprig-demo",
  "CoreDefinitionVersion": {{
    "Cores": [
      {{ "Id": "{CORE}", "ThingArn": "{core_thing}", "CertificateArn": "{core_cert}", "SyncShadow": false }}
    ]
  }},
  "DeviceDefinitionVersion": {{
    "Devices": [
      {{ "Id": "{SENSOR}", "ThingArn": "{sensor_thing}", "CertificateArn": "{sensor_cert}", "SyncShadow": false }},
      {{ "Id": "{DISPLAY}", "ThingArn": "{display_thing}", "CertificateArn": "{display_cert}", "SyncShadow": false }}
    ]
  }},
  "SubscriptionDefinitionVersion": {{
    "Subscriptions": [
      {{ "Id": "sensor-to-display", "Source": "{sensor_thing}", "Subject": "{SUBJECT}", "Target": "{display_thing}" }},
      {{ "Id": "display-to-sensor", "Source": "{display_thing}", "Subject": "{SUBJECT}", "Target": "{sensor_thing}" }}
    ]
  }}
}}
"#,
        core_thing = thing(CORE),
        core_cert = cert(core_id),
        sensor_thing = thing(SENSOR),
        sensor_cert = cert(sensor_id),
        display_thing = thing(DISPLAY),
        display_cert = cert(display_id),
    )
}

impl Demo {
    /// The text printed before the daemon starts: what was made, the commands, the warning.
    pub fn instructions(&self) -> String {
        let (ca, _) = ca_paths(&self.root);
        let client = |name: &str| {
            let (cert, key) = device_paths(&self.root, name);
            format!(
                "-h localhost -p {} --cafile {} --cert {} --key {} -i {name}",
                self.port,
                sh_quote(&ca),
                sh_quote(&cert),
                sh_quote(&key)
            )
        };
        let mut out = String::new();
        let what = if self.created { "created" } else { "reused" };
        let _ = writeln!(out, "sprig demo root {what}: {}", self.root.display());
        let _ = writeln!(
            out,
            "  group CA certs/group-ca.pem, devices {SENSOR} and {DISPLAY} (devices/<name>/), \
             subscriptions {SENSOR} <-> {DISPLAY} on {SUBJECT}, local MQTT port {}",
            self.port
        );
        if let Some(note) = &self.port_note {
            let _ = writeln!(out, "  note: {note}");
        }
        let sub = client(DISPLAY);
        let pubs = client(SENSOR);
        let _ = writeln!(out, "\nIn a second terminal, subscribe as the display:");
        let _ = writeln!(out, "  mosquitto_sub {sub} -t '{SUBJECT}' -v");
        let _ = writeln!(
            out,
            "In a third, publish as the sensor; the display prints it:"
        );
        let _ = writeln!(
            out,
            "  mosquitto_pub {pubs} -t sprig/demo/hello -m 'hello from the sensor'"
        );
        let _ = writeln!(
            out,
            "Not routed (no subscription covers {UNROUTED_TOPIC}); the core drops it:"
        );
        let _ = writeln!(
            out,
            "  mosquitto_pub {pubs} -t {UNROUTED_TOPIC} -m 'nobody gets this'"
        );
        let _ = writeln!(
            out,
            "\nwarning: the demo runs in insecure mode (-i): it skips the fs.protected_hardlinks/protected_symlinks checks."
        );
        let _ = writeln!(out, "Starting sprig in the foreground (Ctrl-C stops it).");
        out
    }
}

/// A path as one shell word: as is when it is plain, else in single quotes.
fn sh_quote(path: &Path) -> String {
    let s = path.display().to_string();
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b));
    if plain {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            sh_quote(Path::new("/tmp/sprig-demo/a.pem")),
            "/tmp/sprig-demo/a.pem"
        );
        assert_eq!(
            sh_quote(Path::new("/tmp/my demo/a.pem")),
            "'/tmp/my demo/a.pem'"
        );
        assert_eq!(sh_quote(Path::new("/tmp/it's")), r"'/tmp/it'\''s'");
        assert_eq!(sh_quote(Path::new("/tmp/$HOME")), "'/tmp/$HOME'");
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(json_str("a\nb"), r#""a\u000ab""#);
        assert_eq!(json_str("/tmp/ü"), "\"/tmp/ü\"");
    }

    #[test]
    fn arguments_are_a_directory_and_an_optional_port() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&args(&[])).unwrap(),
            (PathBuf::from("sprig-demo"), None)
        );
        assert_eq!(
            parse_args(&args(&["d", "--port", "1884"])).unwrap(),
            (PathBuf::from("d"), Some(1884))
        );
        for bad in [
            &["--port"][..],
            &["--port", "0"],
            &["--port", "x"],
            &["a", "b"],
            &["--nope"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
