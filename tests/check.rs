//! `sprig check` on temporary Greengrass roots: the real binary, real files, real PEM.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty root directory that is removed when dropped.
struct Root(PathBuf);

impl Root {
    fn new() -> Root {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sprig-check-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("config")).unwrap();
        Root(dir)
    }

    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn config(&self, text: &str) -> &Self {
        self.write("config/config.json", text);
        self
    }

    fn group(&self, text: impl AsRef<[u8]>) -> &Self {
        self.write("ggc/deployment/group/group.json", text);
        self
    }

    /// Runs `sprig check -r ROOT`: exit code and stdout+stderr.
    fn check(&self) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_sprig"))
            .arg("check")
            .arg("-r")
            .arg(&self.0)
            .output()
            .expect("run sprig");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Writes a CA, a certificate and its key under certs/ (real PEM from rcgen).
    fn certs(&self) {
        let ck = rcgen::generate_simple_self_signed(vec!["core".to_string()]).unwrap();
        self.write("certs/root.ca.pem", ck.cert.pem());
        self.write("certs/core.cert.pem", ck.cert.pem());
        self.write("certs/core.private.key", ck.key_pair.serialize_pem());
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/conf")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

const OFFLINE: &str = r#"{"coreThing":{"iotHost":"none"}}"#;

fn assert_fails(root: &Root, expected: &str) -> String {
    let (code, out) = root.check();
    assert_eq!(code, 2, "expected exit 2 with {expected:?}, got:\n{out}");
    assert!(out.contains(expected), "expected {expected:?} in:\n{out}");
    out
}

#[test]
fn example_configs_pass() {
    // The cloud example names /greengrass/certs/...: point it at this root and give it real PEM.
    let root = Root::new();
    root.certs();
    let cfg = example("config.json").replace(
        "file:///greengrass/",
        &format!("file://{}/", root.0.display()),
    );
    root.config(&cfg).group(example("group.json"));
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(
        out.contains("2 device(s), 5 subscription(s), 1 function(s); cloud link on"),
        "{out}"
    );
    assert!(!out.contains("warning"), "{out}");

    let root = Root::new();
    root.config(&example("config.offline.json"))
        .group(example("group.json"));
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("cloud link off"), "{out}");
}

#[test]
fn empty_group_and_no_group_pass() {
    let root = Root::new();
    root.config(OFFLINE);
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no group.json (empty group)"), "{out}");
    root.group("{}");
    assert_eq!(root.check().0, 0);
}

#[test]
fn each_bad_config_prints_its_message() {
    let cases: &[(&str, &str)] = &[
        ("{}", "config.json: coreThing: missing; this key is required"),
        (
            r#"{"coreThing":{"iotHost":"none","keepAlive":10}}"#,
            "coreThing.keepAlive: found 10; allowed 30–1200 seconds",
        ),
        (r#"{"coreThing":{"iotHost":"none","ggMqttPort":80}}"#, "coreThing.ggMqttPort: found 80; allowed 1024–65535"),
        (r#"{"coreThing":{"iotHost":"none","iotMqttPort":70000}}"#, "coreThing.iotMqttPort: found 70000; allowed 1–65535"),
        (
            r#"{"coreThing":{"iotHost":"none","systemComponentAuthTimeout":100}}"#,
            "coreThing.systemComponentAuthTimeout: found 100; allowed 500–5000 milliseconds",
        ),
        (
            r#"{"coreThing":{"iotHost":"none","mqttOperationTimeout":1}}"#,
            "coreThing.mqttOperationTimeout: found 1;",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"runtime":{"maxWorkItemCount":0}}"#,
            "runtime.maxWorkItemCount: found 0; allowed 1–65536 items",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"runtime":{"allowFunctionsToRunAsRoot":"true"}}"#,
            "runtime.allowFunctionsToRunAsRoot: found \"true\"; allowed \"yes\" or \"no\"",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"managedRespawn":"maybe"}"#,
            "managedRespawn: found \"maybe\"",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"crypto":{"caPath":"/greengrass/certs/root.ca.pem"}}"#,
            "crypto.caPath: Error occurred while generating TLS config: ErrUnknownURIScheme",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"crypto":{"caPath":"file:///ca.pem","PKCS11":{}}}"#,
            "crypto.PKCS11: hardware security (PKCS#11) is not supported by sprig yet",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"writeDirectory":"relative"}"#,
            "writeDirectory: found \"relative\"; allowed an absolute path",
        ),
        (
            r#"{"coreThing":{"iotHost":"none"},"sprig":{"serverCertValidityDays":90}}"#,
            "sprig.serverCertValidityDays: found 90; allowed 7–30 days",
        ),
        (
            r#"{"coreThing":{"iotHost":"a-ats.iot.us-east-1.amazonaws.com","thingArn":"arn:aws:iot:us-east-1:1:thing/c","ggHost":"g"}}"#,
            "coreThing: The configuration file is missing the CaPath, CertPath or KeyPath.",
        ),
        (
            r#"{"coreThing":{"iotHost":"none","networkProxy":{"proxy":{"url":"socks5://p:1080"}}}}"#,
            "coreThing.networkProxy.proxy.url: found \"socks5://p:1080\": the scheme must be http or https",
        ),
    ];
    for (cfg, expected) in cases {
        let root = Root::new();
        root.config(cfg);
        let out = assert_fails(&root, expected);
        assert!(
            out.lines()
                .any(|l| l.starts_with("error: ") && l.contains(expected)),
            "{out}"
        );
    }
}

#[test]
fn every_error_is_printed_not_just_the_first() {
    let root = Root::new();
    root.config(
        r#"{"coreThing":{"iotHost":"none","keepAlive":1,"ggMqttPort":1},"runtime":{"lruSize":0}}"#,
    );
    let out = assert_fails(&root, "keepAlive");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error: ")).count(),
        3,
        "{out}"
    );
}

#[test]
fn warnings_do_not_fail() {
    let root = Root::new();
    root.config(r#"{"coreThing":{"iotHost":"none","iotMqttPort":1883,"color":"red"}}"#);
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: ") && out.contains("coreThing.color: unknown key, ignored"),
        "{out}"
    );
    assert!(
        out.contains("coreThing.iotMqttPort: 1883 is not a port AWS uses"),
        "{out}"
    );
}

#[test]
fn invalid_json() {
    let root = Root::new();
    let full = r#"{"coreThing":{"iotHost":"none","keepAlive":600}}"#;
    root.config(&full[..full.len() - 7]);
    let cfg = root.0.join("config/config.json");
    assert_fails(
        &root,
        &format!(
            "Failed to parse {}. line 1, column 42: unexpected end of input",
            cfg.display()
        ),
    );

    root.config("{\"coreThing\": {\"iotHost\": \"none\",}}");
    assert_fails(&root, "Failed to parse");

    // Binary garbage.
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    root.write("config/config.json", &garbage);
    assert_fails(&root, "Failed to parse");
    root.write(
        "config/config.json",
        b"{\"coreThing\":{\"iotHost\":\"\xff\xfe\"}}",
    );
    assert_fails(&root, "invalid UTF-8");
}

#[test]
fn missing_and_oversized_config() {
    let root = Root::new();
    assert_fails(
        &root,
        "config.json: missing; sprig needs ROOT/config/config.json",
    );
    root.config(&format!(
        "{{\"coreThing\":{{\"iotHost\":\"none\"}},\"pad\":\"{}\"}}",
        "x".repeat(100_000)
    ));
    assert_fails(&root, "allowed at most 65536 bytes");
}

#[test]
fn ten_megabyte_group_is_refused() {
    let root = Root::new();
    root.config(OFFLINE);
    // A real 10 MB JSON document (an array of padding), not a sparse file.
    let mut text = String::with_capacity(10 * 1024 * 1024 + 64);
    text.push_str("{\"Pad\":[");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("\"0123456789abcdef0123456789abcdef\",");
    }
    text.push_str("0]}");
    root.group(&text);
    assert_fails(&root, "group.json: file is 10485");
    assert_fails(
        &root,
        "allowed at most 4194304 bytes (refused without parsing)",
    );
}

#[test]
fn bad_groups_print_the_guides_messages() {
    let spooler = |size: &str| {
        format!(
            r#"{{"FunctionDefinitionVersion":{{"Functions":[{{"Id":"s","FunctionArn":"arn:aws:lambda:::function:GGCloudSpooler:1","FunctionConfiguration":{{"Environment":{{"Variables":{{"GG_CONFIG_MAX_SIZE_BYTES":"{size}"}}}}}}}}]}}}}"#
        )
    };
    let root = Root::new();
    root.config(OFFLINE).group(spooler("1000"));
    assert_fails(
        &root,
        "GG_CONFIG_MAX_SIZE_BYTES: Spool size should be at least 262144 bytes.",
    );
    root.group(spooler("262144"));
    assert_eq!(root.check().0, 0);

    let arn = "arn:aws:lambda:us-east-1:1:function:f:1";
    let root_fn = format!(
        r#"{{"FunctionDefinitionVersion":{{"Functions":[{{"Id":"f","FunctionArn":"{arn}","FunctionConfiguration":{{"Environment":{{"Execution":{{"IsolationMode":"NoContainer","RunAs":{{"Uid":0,"Gid":0}}}}}}}}}}]}}}}"#
    );
    root.group(&root_fn);
    assert_fails(
        &root,
        &format!("{arn} are configured to run as root but Greengrass is not configured to run Lambda functions with root permissions."),
    );
    root.config(
        r#"{"coreThing":{"iotHost":"none"},"runtime":{"allowFunctionsToRunAsRoot":"yes"}}"#,
    );
    assert_eq!(root.check().0, 0);

    root.group(r#"{"SubscriptionDefinitionVersion":{"Subscriptions":[{"Id":"s","Source":"arn:aws:iot:r:1:thing/ghost","Subject":"t","Target":"cloud"}]}}"#);
    assert_fails(
        &root,
        "Subscriptions[0].Source: thing \"ghost\" is not a device of this group",
    );
    root.group("{\"CoreDefinitionVersion\":");
    assert_fails(
        &root,
        "group.json. line 1, column 26: unexpected end of input",
    );
}

#[test]
fn certificate_files_must_exist_and_hold_pem() {
    let root = Root::new();
    let cfg = r#"{"coreThing":{"iotHost":"a-ats.iot.us-east-1.amazonaws.com","ggHost":"greengrass-ats.iot.us-east-1.amazonaws.com","thingArn":"arn:aws:iot:us-east-1:1:thing/core","caPath":"root.ca.pem","certPath":"core.cert.pem","keyPath":"core.private.key"}}"#.to_string();
    root.config(&cfg);
    let out = assert_fails(&root, "coreThing.caPath: ");
    assert!(out.contains("root.ca.pem: cannot read"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("error: ")).count(),
        3,
        "{out}"
    );
    root.certs();
    assert_eq!(root.check().0, 0, "{}", root.check().1);
    root.write("certs/core.private.key", "not a key");
    assert_fails(&root, "coreThing.keyPath: ");
    assert_fails(&root, "no PEM private key found");
    root.certs();
    let key = std::fs::read(root.0.join("certs/core.private.key")).unwrap();
    root.write("certs/root.ca.pem", key);
    assert_fails(&root, "no PEM certificate found");
}

#[test]
fn bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_sprig"))
        .args(["check", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: sprig check [-r ROOT]"));
}

fn fixture(name: &str, root: &Root) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name);
    std::fs::read_to_string(p)
        .unwrap()
        .replace("/greengrass/", &format!("{}/", root.0.display()))
}

/// Writes the CA, certificate and key under the names the guide's examples use.
fn guide_certs(root: &Root, ca: &str, cert: &str, key: &str) {
    root.certs();
    for (from, to) in [
        ("root.ca.pem", ca),
        ("core.cert.pem", cert),
        ("core.private.key", key),
    ] {
        std::fs::rename(
            root.0.join("certs").join(from),
            root.0.join("certs").join(to),
        )
        .unwrap();
    }
}

#[test]
fn guide_examples() {
    let root = Root::new();
    guide_certs(&root, "root.ca.pem", "hash.cert.pem", "hash.private.key");
    root.config(&fixture("guide-v1.10.json", &root));
    let (code, out) = root.check();
    assert_eq!((code, out.contains("warning")), (0, false), "{out}");

    root.config(&fixture("guide-v1.9-space-principals.json", &root));
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: ") && out.contains("crypto. principals: key has a leading space"),
        "{out}"
    );

    let root = Root::new();
    guide_certs(&root, "root-ca-pem", "cloud-pem-crt", "cloud-pem-key");
    root.config(&fixture("guide-v1.6-legacy.json", &root));
    let (code, out) = root.check();
    assert_eq!(code, 0, "{out}");
    // The write directory moves group.json: a broken one there is found.
    root.write("write-directory/ggc/deployment/group/group.json", "{");
    assert_fails(
        &root,
        "write-directory/ggc/deployment/group/group.json: Failed to parse",
    );

    let root = Root::new();
    root.config(&fixture("guide-hsm-pkcs11.json", &root));
    let out = assert_fails(
        &root,
        "crypto.PKCS11: hardware security (PKCS#11) is not supported by sprig yet",
    );
    assert!(out.contains("crypto.principals.IoTCertificate.privateKeyPath: found \"pkcs11:object=core-private-key-label;type=private\": PKCS#11 (HSM) keys are not supported by sprig yet"), "{out}");
}

#[test]
fn functions_sprig_cannot_run_are_named() {
    let root = Root::new();
    root.config(OFFLINE);
    let arn = "arn:aws:lambda:us-east-1:1:function:f:1";
    root.group(format!(
        r#"{{"FunctionDefinitionVersion":{{"Functions":[{{"Id":"f","FunctionArn":"{arn}","FunctionConfiguration":{{"Runtime":"python3.8","Handler":"m.h","MemorySize":16384,"Environment":{{"Execution":{{"IsolationMode":"GreengrassContainer"}}}}}}}}]}}}}"#
    ));
    assert_fails(&root, "needs the `containers` feature");
    root.group(format!(
        r#"{{"FunctionDefinitionVersion":{{"DefaultConfig":{{"Execution":{{"IsolationMode":"NoContainer"}}}},"Functions":[{{"Id":"f","FunctionArn":"{arn}","FunctionConfiguration":{{"Runtime":"java8","Handler":"m.h"}}}}]}}}}"#
    ));
    let out = assert_fails(&root, "runtime java8 is not supported by sprig");
    assert!(
        out.contains("warning:") && out.contains("the code of function"),
        "{out}"
    );
}
