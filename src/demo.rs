//! `sprig demo`: a self-contained playground root. Not built yet (the pki area owns this).

/// Runs `sprig demo [DIR]`; returns the exit code.
pub fn run(args: &[std::ffi::OsString]) -> i32 {
    let _ = args;
    eprintln!("sprig demo: not built yet");
    2
}
