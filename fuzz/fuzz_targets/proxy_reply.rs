//! cargo-fuzz target `proxy_reply`: the check is tests/oracles/mod.rs `proxy_reply`, shared
//! with the regression test that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::proxy_reply(data));
