//! The daemon as a user runs it: the real binary on temp Greengrass roots.

mod common;

use common::*;

#[test]
fn version_prints_the_package_version() {
    let (status, out, _) = run_sprig(["--version"]);
    assert!(status.success());
    assert_eq!(out.trim(), format!("sprig {}", env!("CARGO_PKG_VERSION")));
}
