//! The `sprig` binary: argv in, exit code out. Everything else is in the library.

#![deny(unsafe_code)]

fn main() {
    std::process::exit(sprig::cli::main(std::env::args_os().skip(1).collect()));
}
