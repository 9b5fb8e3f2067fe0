//! cargo-fuzz target `shadow_request`: the check is tests/oracles/mod.rs `shadow_requests`,
//! shared with the regression test that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::shadow_requests(data));
