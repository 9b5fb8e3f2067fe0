//! User Lambda functions for the tests that deploy them (tests/lambda.rs, tests/streams.rs): the
//! group.json entry of a function and its code directory (a file from tests/py/lambda/ plus
//! Python packages copied from the test venv, as users vendor them with `pip install --target`).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

// Every test crate that uses this module declares `mod common;` too.
use crate::common::python;

/// The ARN prefix of the test functions (`<prefix>:<name>:1`).
pub const FN_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function";

/// The qualified ARN of test function `name`.
pub fn arn(name: &str) -> String {
    format!("{FN_ARN}:{name}:1")
}

/// The `Runtime`, `Handler` and `EncodingType` members of a Python function whose handler is
/// `<module>.handler`.
pub fn python_runtime(module: &str, encoding: &str) -> String {
    format!(r#""Runtime":"python3.8","Handler":"{module}.handler","EncodingType":"{encoding}""#)
}

/// One `Functions[]` entry: Id `name`, [`arn`], FunctionConfiguration `{runtime,"Pinned",
/// "Timeout"` then `rest` (members with their leading comma, or "")`}`.
pub fn function_entry(name: &str, runtime: &str, pinned: bool, timeout: u32, rest: &str) -> String {
    format!(
        r#"{{"Id":"{name}","FunctionArn":"{a}","FunctionConfiguration":{{{runtime},"Pinned":{pinned},"Timeout":{timeout}{rest}}}}}"#,
        a = arn(name),
    )
}

/// `DefaultConfig` of a FunctionDefinitionVersion that runs every function without a container.
pub const NO_CONTAINER: &str = r#""DefaultConfig":{"Execution":{"IsolationMode":"NoContainer"}}"#;

/// The directory of Python package `module` in the test venv.
pub fn python_package_dir(module: &str) -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            &format!("import os, {module}; print(os.path.dirname({module}.__file__))"),
        ])
        .output()
        .expect("run the test python");
    assert!(
        out.status.success(),
        "{module} is not installed in {} (pip install -r tests/requirements.txt): {}",
        python().display(),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Copies the tree `from` to `to`, leaving out `__pycache__` directories.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            if e.file_name() != "__pycache__" {
                copy_tree(&e.path(), &target);
            }
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A function code directory `code` holding `file` from tests/py/lambda/ and a copy of each
/// package directory in `packages` (from [`python_package_dir`]).
pub fn code_dir(code: &Path, file: &str, packages: &[PathBuf]) {
    fs::create_dir_all(code).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lambda");
    fs::copy(src.join(file), code.join(file)).unwrap();
    for p in packages {
        copy_tree(p, &code.join(p.file_name().unwrap()));
    }
}
