//! config.json as the daemon and `sprig check` read it: errors, never a panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sprig::config::Config;

fuzz_target!(|data: &[u8]| {
    let _ = Config::parse(data, Path::new("/greengrass"), Path::new("/greengrass/config/config.json"));
});
