//! Command line: `sprig start|stop|restart|check|demo|status|--version`, parsed by hand.

use std::ffi::OsString;

/// Runs one command and returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match args.first().and_then(|a| a.to_str()) {
        Some("--version") => {
            println!("sprig {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("check") => crate::check::run(&args[1..]),
        Some("demo") => crate::demo::run(&args[1..]),
        _ => {
            eprintln!("usage: sprig start|stop|restart|check|demo|status|--version");
            2
        }
    }
}
