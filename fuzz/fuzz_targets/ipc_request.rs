//! cargo-fuzz target `ipc_request`: the Lambda IPC server's request path (httparse + routing +
//! bounds). The check is tests/oracles/mod.rs `ipc_request`, shared with the regression test
//! that replays saved reproducers (tests/fuzz_regressions.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/oracles/mod.rs"]
mod oracles;

fuzz_target!(|data: &[u8]| oracles::ipc_request(data));
