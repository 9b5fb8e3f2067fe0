//! Command line: `sprig start|stop|restart|check|demo|status|--version`, parsed by hand.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::daemon;

const USAGE: &str = "usage:
  sprig start [-r ROOT] [--foreground] [-i]   start the core (ROOT default /greengrass)
  sprig stop [-r ROOT]                        stop the running core
  sprig restart [-r ROOT] [--foreground] [-i]
  sprig status [-r ROOT]                      what the running core reports
  sprig check [-r ROOT]                       validate config.json and group.json
  sprig deploy GROUP.json [--lambda ID=PATH]... [-r ROOT]
                                              install a group (applied at once if running)
  sprig deploy --status [--json] [-r ROOT]    deployment history, newest first
  sprig reset [--force] [-r ROOT]             remove the deployed group, code, user logs
  sprig demo [DIR]                            create and start a playground root
  sprig --version";

/// Runs one command and returns the process exit code (2 for a usage error).
pub fn main(args: Vec<OsString>) -> i32 {
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().and_then(|a| a.to_str()) {
        Some("--version" | "-V" | "version") => {
            println!("sprig {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            0
        }
        Some("start") => match daemon::parse_start_args(rest) {
            Ok(opts) => daemon::start(opts),
            Err(e) => usage_error("start", &e),
        },
        Some("restart") => match daemon::parse_start_args(rest) {
            Ok(opts) => daemon::restart(opts),
            Err(e) => usage_error("restart", &e),
        },
        Some("stop") => match parse_root_only(rest) {
            Ok(root) => daemon::stop(&root),
            Err(e) => usage_error("stop", &e),
        },
        Some("check") => crate::check::run(rest),
        Some("demo") => crate::demo::run(rest),
        Some("deploy") => crate::deploy::run(rest),
        Some("reset") => crate::deploy::reset::run(rest),
        Some("status") => crate::status::run(rest),
        Some(other) => usage_error("sprig", &format!("unknown command '{other}'")),
        None => usage_error("sprig", "no command given"),
    }
}

fn usage_error(command: &str, message: &str) -> i32 {
    eprintln!("sprig {command}: {message}\n{USAGE}");
    2
}

/// `[-r ROOT]` and nothing else.
fn parse_root_only(args: &[OsString]) -> Result<PathBuf, String> {
    let opts = daemon::parse_start_args(args)?;
    if opts.foreground || opts.insecure {
        return Err("only -r ROOT is accepted".into());
    }
    Ok(opts.root)
}
