//! `sprig check [-r ROOT]`: validate config.json, group.json and the certificate files they
//! name; print every problem on one line (`error: FILE: KEY: MESSAGE` / `warning: ...`), then a
//! one-line summary when nothing is wrong. Exit code 0 without errors, 2 with any.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{self, Config, ConfigError, Group};
use crate::pki;

/// Exit code when any error was found.
const EXIT_INVALID: i32 = 2;

/// Runs `sprig check [-r ROOT]`; returns the exit code.
pub fn run(args: &[OsString]) -> i32 {
    let root = match parse_args(args) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!(
                "sprig check: {msg}\nusage: sprig check [-r ROOT]   (ROOT defaults to /greengrass)"
            );
            return EXIT_INVALID;
        }
    };
    let report = check(&root);
    // What will run is said after the verdict, so `ok:` stays the first line.
    let plan = || {
        for line in &report.plan {
            println!("{line}");
        }
    };
    for w in &report.warnings {
        println!("warning: {w}");
    }
    for e in &report.errors {
        println!("error: {e}");
    }
    if !report.errors.is_empty() {
        eprintln!(
            "sprig check: {} error(s) in {}",
            report.errors.len(),
            root.display()
        );
        plan();
        return EXIT_INVALID;
    }
    println!("ok: {}", report.summary);
    plan();
    0
}

fn parse_args(args: &[OsString]) -> Result<PathBuf, String> {
    let mut root = PathBuf::from("/greengrass");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("-r" | "--root") => match it.next() {
                Some(r) => root = PathBuf::from(r),
                None => return Err("-r needs a directory".into()),
            },
            _ => return Err(format!("unknown argument {}", a.to_string_lossy())),
        }
    }
    Ok(root)
}

/// Everything `sprig check` found for one root.
pub struct Report {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
    /// One line describing a valid setup (meaningful only without errors).
    pub summary: String,
    /// `will run: ...` / `will not run: ... (why)` for the deployed group (issue 10).
    pub plan: Vec<String>,
}

/// Checks the root: config.json, then (with its write directory) group.json, then the files.
pub fn check(root: &Path) -> Report {
    let mut report = Report {
        errors: Vec::new(),
        warnings: Vec::new(),
        summary: String::new(),
        plan: Vec::new(),
    };
    let config = match Config::load(root) {
        Ok((c, w)) => {
            report.warnings.extend(w);
            c
        }
        Err(e) => {
            report.errors.extend(e);
            return report; // without a valid config the write directory is unknown
        }
    };
    check_files(&config, &mut report.errors);
    let group_file = config::group_path(&config.write_dir);
    let group = match Group::load(&config.write_dir) {
        Ok((g, w)) => {
            report.warnings.extend(w);
            report.errors.extend(g.validate_against(&config));
            let (errors, warnings) =
                crate::lambda::runtime::check_group(&g, &group_file, &config.write_dir);
            report.errors.extend(errors);
            report.warnings.extend(warnings);
            check_features(&config, &g, &mut report.errors);
            g
        }
        Err(e) => {
            report.errors.extend(e);
            Group::default()
        }
    };
    report.plan = crate::deploy::adopt::plan_lines(&group, &config.write_dir);
    let group_state = if group_file.exists() {
        group_file.display().to_string()
    } else {
        "no group.json (empty group)".into()
    };
    report.summary = format!(
        "{} and {group_state}: {} device(s), {} subscription(s), {} function(s); cloud link {}",
        config::config_path(root).display(),
        group.devices.len(),
        group.subscriptions.len(),
        group.functions.len(),
        if config.cloud_enabled() {
            "on"
        } else {
            "off (iotHost is empty or \"none\")"
        }
    );
    report
}

/// System functions that need an optional part of sprig: present in this build, and set up
/// right (the stream manager's environment).
fn check_features(c: &Config, g: &Group, errors: &mut Vec<ConfigError>) {
    let file = config::group_path(&c.write_dir);
    let mut push = |message: String| {
        errors.push(ConfigError {
            file: file.clone(),
            key: "FunctionDefinitionVersion".into(),
            message,
        })
    };
    #[cfg(feature = "stream-manager")]
    if let Err(e) =
        crate::streams::Settings::from_group(g, &c.write_dir, c.sprig.stream_store_max_bytes)
    {
        e.into_iter().for_each(&mut push);
    }
    #[cfg(not(feature = "stream-manager"))]
    if g.system_function("GGStreamManager").is_some() {
        push("the group deploys GGStreamManager (stream manager) but this sprig build lacks the stream-manager feature; use the full build or remove the function".into());
    }
}

/// Every certificate and key config.json names must exist and hold PEM of the right kind.
fn check_files(c: &Config, errors: &mut Vec<ConfigError>) {
    let config_file = config::config_path(&c.root);
    let (ca_key, cert_key, key_key) = if c.crypto.is_some() {
        (
            "crypto.caPath",
            "crypto.principals.IoTCertificate.certificatePath",
            "crypto.principals.IoTCertificate.privateKeyPath",
        )
    } else {
        (
            "coreThing.caPath",
            "coreThing.certPath",
            "coreThing.keyPath",
        )
    };
    let mut files: Vec<(&str, &Path, PemKind)> = Vec::new();
    if let Some(p) = c.ca_file() {
        files.push((ca_key, p, PemKind::Ca));
    }
    if let Some(p) = c.cert_file() {
        files.push((cert_key, p, PemKind::Cert));
    }
    if let Some(p) = c.key_file() {
        files.push((key_key, p, PemKind::Key));
    }
    if let Some(crypto) = &c.crypto {
        if let Some(p) = &crypto.mqtt_server_certificate {
            files.push((
                "crypto.principals.MQTTServerCertificate.privateKeyPath",
                &p.private_key_path,
                PemKind::Key,
            ));
        }
        if let Some(p) = &crypto.secrets_manager {
            files.push((
                "crypto.principals.SecretsManager.privateKeyPath",
                &p.private_key_path,
                PemKind::Key,
            ));
        }
    }
    for (key, path, kind) in files {
        if let Err(message) = check_pem(path, kind) {
            errors.push(ConfigError {
                file: config_file.clone(),
                key: key.into(),
                message,
            });
        }
    }
}

/// The same loaders (and size limits) the daemon uses, so `check` passes exactly what starts.
fn check_pem(path: &Path, kind: PemKind) -> Result<(), String> {
    let loaded = match kind {
        PemKind::Ca => pki::load_ca_certs(path).map(drop),
        PemKind::Cert => pki::load_cert_chain(path).map(drop),
        PemKind::Key => pki::load_private_key(path).map(drop),
    };
    loaded.map_err(|e| e.to_string())
}

#[derive(Clone, Copy)]
enum PemKind {
    Ca,
    Cert,
    Key,
}
