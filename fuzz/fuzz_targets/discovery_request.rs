//! cargo-fuzz target `discovery_request`: the check is tests/oracles/mod.rs
//! `discovery_request`, shared with the regression test that replays saved reproducers
//! (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::discovery_request(data));
