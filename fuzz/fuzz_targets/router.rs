//! cargo-fuzz target `router`: the check is tests/oracles/mod.rs `router` (the frozen routing
//! table against linear matching), shared with tests/fuzz_regressions.rs.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::router(data));
