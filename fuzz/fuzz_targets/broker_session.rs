//! cargo-fuzz target `broker_session`: the device session state machine (src/broker/session.rs)
//! on arbitrary bytes; the check is tests/oracles/mod.rs `broker_session`, shared with the
//! regression test that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::broker_session(data));
