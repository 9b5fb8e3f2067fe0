//! cargo-fuzz target `stream_frame`: the check is tests/oracles/mod.rs `stream_frame`, shared
//! with the regression test that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::stream_frame(data));
