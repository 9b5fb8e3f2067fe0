//! cargo-fuzz target `jobs_message`: the check is tests/oracles/mod.rs `jobs_message`, shared
//! with the regression test that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::jobs_message(data));
