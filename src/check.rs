//! `sprig check`: validate config.json and group.json, print every problem, exit 0 or 2. Not built yet.

/// Runs `sprig check [-r ROOT]`; returns the exit code.
pub fn run(args: &[std::ffi::OsString]) -> i32 {
    let _ = args;
    eprintln!("sprig check: not built yet");
    2
}
