//! group.json as a deployment writes it: errors, never a panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sprig::config::Group;

fuzz_target!(|data: &[u8]| {
    let _ = Group::parse(data, Path::new("group.json"));
});
