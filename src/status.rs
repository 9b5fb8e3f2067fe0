//! `sprig status`: what the running daemon reports about itself. Not built yet (the broker area
//! owns this).

/// Runs `sprig status [-r ROOT]`; returns the exit code.
pub fn run(args: &[std::ffi::OsString]) -> i32 {
    let _ = args;
    eprintln!("sprig status: not built yet");
    2
}
