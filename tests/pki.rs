//! pki through the library, checked with the openssl CLI: certificate ids, the group CA, the
//! server identity sources (a)/(b)/(c), storage, reuse and re-issue.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

mod common;

use common::TempDir;
use sprig::config::core::Principal;
use sprig::pki::{
    certificate_id, load_cert_chain, load_private_key, needs_reissue, GroupCa, IdentitySource,
    PkiError, ServerCertSettings,
};

const DAY: Duration = Duration::from_secs(86_400);

/// Runs `openssl ARGS` (split on spaces; test paths have none) with `stdin`, asserting success;
/// returns stdout.
fn openssl(args: &str, stdin: &[u8]) -> Vec<u8> {
    let args: Vec<&str> = args.split(' ').collect();
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl on PATH");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A new SEC1 ("EC PRIVATE KEY") P-256 key at `path`, as `openssl ecparam -genkey` writes it.
fn ec_key(path: &Path) {
    openssl(
        &format!(
            "ecparam -name prime256v1 -genkey -noout -out {}",
            path.display()
        ),
        b"",
    );
}

/// `openssl verify`: `cert` chains to `ca`.
fn verify(ca: &Path, cert: &Path) {
    openssl(
        &format!("verify -CAfile {} {}", ca.display(), cert.display()),
        b"",
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A root with `certs/group-ca.pem` and `group-ca.key`, and settings pointing at it.
fn root_with_ca(dir: &Path) -> (GroupCa, ServerCertSettings) {
    let ca = GroupCa::create("test group CA").unwrap();
    let settings = settings(dir);
    ca.save(&settings.group_ca_cert, &settings.group_ca_key)
        .unwrap();
    (ca, settings)
}

fn settings(dir: &Path) -> ServerCertSettings {
    ServerCertSettings {
        configured: None,
        group_ca_cert: dir.join("certs/group-ca.pem"),
        group_ca_key: dir.join("certs/group-ca.key"),
        state_dir: dir.join("ggc/var/state/server"),
        validity_days: 7,
        extra_hosts: Vec::new(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn certificate_id_is_the_sha256_openssl_computes() {
    let ca = GroupCa::create("id CA").unwrap();
    let (cert_pem, key_pem) = ca.issue_client_cert("thing-1").unwrap();
    assert!(key_pem.contains("BEGIN PRIVATE KEY"));
    let der = openssl("x509 -outform der", cert_pem.as_bytes());
    let id = certificate_id(&der);
    assert_eq!(id, sha256_hex(&der));
    assert_eq!(id.len(), 64);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // The certificate chains to the CA and says who it is.
    let dir = TempDir::new("id");
    let (ca_path, cert_path) = (dir.path().join("ca.pem"), dir.path().join("c.pem"));
    std::fs::write(&ca_path, ca.cert_pem()).unwrap();
    std::fs::write(&cert_path, &cert_pem).unwrap();
    verify(&ca_path, &cert_path);
    let text = String::from_utf8(openssl("x509 -noout -text", cert_pem.as_bytes())).unwrap();
    assert!(
        text.contains("CN = thing-1") || text.contains("CN=thing-1"),
        "{text}"
    );
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
}

#[test]
fn server_certificate_from_group_ca_names_every_address_and_keeps_its_key_private() {
    let dir = TempDir::new("sans");
    let (ca, settings) = root_with_ca(dir.path());
    let addrs = [ip("192.0.2.7"), ip("2001:db8::5"), ip("127.0.0.1")];
    let id = settings.identity(SystemTime::now(), &addrs).unwrap();
    assert_eq!(id.source, IdentitySource::GroupCa);
    assert!(id.issued);
    assert_eq!(
        id.addrs,
        vec![ip("192.0.2.7"), ip("2001:db8::5")],
        "loopback is not an interface address"
    );
    assert_eq!(
        id.cert_path,
        dir.path().join("ggc/var/state/server/server.crt")
    );
    assert_eq!(
        id.key_path,
        dir.path().join("ggc/var/state/server/server.key")
    );
    let mode = std::fs::metadata(&id.key_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let pem = std::fs::read(&id.cert_path).unwrap();
    let text = String::from_utf8(openssl("x509 -noout -text", &pem)).unwrap();
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:192.0.2.7",
        "IP Address:2001:DB8:0:0:0:0:0:5",
    ] {
        assert!(text.contains(san), "{san} missing in\n{text}");
    }
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    verify(&settings.group_ca_cert, &id.cert_path);
    assert!(ca.signed(&id.cert_chain[0]));
    // notAfter is `validity_days` from now (give or take the test's own runtime).
    let left = id.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > 7 * DAY - Duration::from_secs(600) && left <= 7 * DAY,
        "{left:?}"
    );
    // The stored key is the one served, and the pair loads through the public helpers.
    assert_eq!(load_cert_chain(&id.cert_path).unwrap(), id.cert_chain);
    assert_eq!(load_private_key(&id.key_path).unwrap(), id.key);
}

#[test]
fn stored_server_certificate_is_reused_until_a_day_before_expiry_or_an_address_change() {
    let dir = TempDir::new("reuse");
    let (_ca, settings) = root_with_ca(dir.path());
    let addrs = [ip("192.0.2.7")];
    let t0 = SystemTime::now();
    let first = settings.identity(t0, &addrs).unwrap();
    assert!(first.issued);

    // Same addresses (any order, duplicates, loopback), 5 days later: reused, byte for byte.
    let t5 = t0 + 5 * DAY;
    let same = [ip("127.0.0.1"), ip("192.0.2.7"), ip("192.0.2.7")];
    assert!(!needs_reissue(&first, t5, &same));
    let again = settings.identity(t5, &same).unwrap();
    assert!(!again.issued);
    assert_eq!(again.cert_chain, first.cert_chain);

    // Less than a day left: re-issued, and the new one is valid from then on.
    let t6 = t0 + 6 * DAY + Duration::from_secs(3600);
    assert!(needs_reissue(&first, t6, &addrs));
    let renewed = settings.identity(t6, &addrs).unwrap();
    assert!(renewed.issued);
    assert_ne!(renewed.cert_chain, first.cert_chain);
    assert!(renewed.not_after > t6 + 6 * DAY);
    assert!(!needs_reissue(&renewed, t6, &addrs));

    // A new address: re-issued with it.
    let moved = [ip("192.0.2.7"), ip("198.51.100.1")];
    assert!(needs_reissue(&renewed, t6, &moved));
    let readdressed = settings.identity(t6, &moved).unwrap();
    assert!(readdressed.issued);
    assert_eq!(readdressed.addrs, vec![ip("192.0.2.7"), ip("198.51.100.1")]);
    // An address gone: re-issued too.
    assert!(needs_reissue(&readdressed, t6, &addrs));
}

#[test]
fn configured_connectivity_hosts_are_named_in_the_server_certificate_and_drive_reissue() {
    // sprig.connectivity host addresses (issue 11): a device that dialled one of them on port
    // 443 checks that name, so the certificate carries each one, IP or DNS.
    let dir = TempDir::new("extra-sans");
    let (_ca, mut settings) = root_with_ca(dir.path());
    let addrs = [ip("192.0.2.7")];
    let now = SystemTime::now();
    let plain = settings.identity(now, &addrs).unwrap();
    settings.extra_hosts = vec!["Core.Example.net".into(), "203.0.113.9".into()];
    // The stored certificate lacks them: issued again, with them.
    let named = settings.identity(now, &addrs).unwrap();
    assert!(named.issued);
    assert_ne!(named.cert_chain, plain.cert_chain);
    let text = String::from_utf8(openssl(
        "x509 -noout -text",
        &std::fs::read(&named.cert_path).unwrap(),
    ))
    .unwrap();
    for san in [
        "DNS:core.example.net",
        "IP Address:203.0.113.9",
        "IP Address:192.0.2.7",
    ] {
        assert!(text.contains(san), "{san} missing in\n{text}");
    }
    // Stable while nothing changes; a host dropped from the config re-issues once more.
    assert!(!needs_reissue(&named, now, &addrs));
    assert!(!settings.identity(now, &addrs).unwrap().issued);
    settings.extra_hosts.pop();
    assert!(settings.identity(now, &addrs).unwrap().issued);
}

#[test]
fn stored_server_certificate_is_replaced_when_broken_mismatched_or_from_another_ca() {
    let dir = TempDir::new("replace");
    let (_ca, settings) = root_with_ca(dir.path());
    let now = SystemTime::now();
    let first = settings.identity(now, &[]).unwrap();

    // Key replaced by another key: the pair no longer matches.
    let other = GroupCa::create("other").unwrap();
    let (_, other_key) = other.issue_client_cert("x").unwrap();
    std::fs::write(&first.key_path, &other_key).unwrap();
    let fixed = settings.identity(now, &[]).unwrap();
    assert!(fixed.issued);

    // Garbage in the certificate file.
    std::fs::write(&fixed.cert_path, b"not a certificate").unwrap();
    assert!(settings.identity(now, &[]).unwrap().issued);

    // A new group CA: the stored certificate is not signed by it.
    let (new_ca, _) = root_with_ca(dir.path());
    let after_ca_change = settings.identity(now, &[]).unwrap();
    assert!(after_ca_change.issued);
    assert!(new_ca.signed(&after_ca_change.cert_chain[0]));
    // Key still 0600 after every rewrite.
    let mode = std::fs::metadata(&after_ca_change.key_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn configured_server_certificate_is_used_as_given_even_with_a_group_ca() {
    let dir = TempDir::new("configured");
    let (_ca, mut settings) = root_with_ca(dir.path());
    let (key, cert) = (dir.path().join("own.key"), dir.path().join("own.crt"));
    // RSA, PKCS#8 key and a self-signed certificate, made by openssl.
    openssl(
        &format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=own -keyout {} -out {}",
            key.display(),
            cert.display()
        ),
        b"",
    );
    settings.configured = Some(Principal {
        private_key_path: key.clone(),
        certificate_path: Some(cert.clone()),
    });
    let id = settings
        .identity(SystemTime::now(), &[ip("192.0.2.7")])
        .unwrap();
    assert_eq!(id.source, IdentitySource::Configured);
    assert!(!id.issued);
    assert_eq!(id.cert_chain, load_cert_chain(&cert).unwrap());
    assert_eq!((id.cert_path.clone(), id.key_path.clone()), (cert, key));
    assert!(
        !settings.state_dir.join("server.crt").exists(),
        "nothing issued"
    );
    // The user rotates it: sprig never asks for a re-issue, even after it expired.
    assert!(!needs_reissue(&id, SystemTime::now() + 400 * DAY, &[]));
}

#[test]
fn configured_sec1_and_pkcs1_keys_load() {
    let dir = TempDir::new("keys");
    let sec1 = dir.path().join("ec.key");
    ec_key(&sec1);
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    assert!(matches!(
        load_private_key(&sec1).unwrap(),
        rustls::pki_types::PrivateKeyDer::Sec1(_)
    ));
    let pkcs1 = dir.path().join("rsa.key");
    openssl(
        &format!("genrsa -traditional -out {} 2048", pkcs1.display()),
        b"",
    );
    assert!(std::fs::read_to_string(&pkcs1)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    assert!(matches!(
        load_private_key(&pkcs1).unwrap(),
        rustls::pki_types::PrivateKeyDer::Pkcs1(_)
    ));
}

#[test]
fn configured_key_that_is_not_the_certificates_is_refused() {
    let dir = TempDir::new("mismatch");
    let ca = GroupCa::create("ca").unwrap();
    let (cert_pem, _) = ca.issue_client_cert("a").unwrap();
    let (_, other_key) = ca.issue_client_cert("b").unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    std::fs::write(&key, other_key).unwrap();
    std::fs::write(&cert, cert_pem).unwrap();
    let mut settings = settings(dir.path());
    settings.configured = Some(Principal {
        private_key_path: key.clone(),
        certificate_path: Some(cert),
    });
    for round in ["PKCS#8", "SEC1"] {
        let err = settings.identity(SystemTime::now(), &[]).unwrap_err();
        assert!(
            matches!(err, PkiError::UnusableKey { .. }),
            "{round}: {err:?}"
        );
        assert!(
            err.to_string().contains("is not the key of"),
            "{round}: {err}"
        );
        assert!(err.to_string().contains(key.to_str().unwrap()), "{err}");
        ec_key(&key); // the next round: an openssl SEC1 key, just as foreign
    }
}

#[test]
fn a_configured_key_without_certificate_is_certified_by_the_group_ca_and_kept_in_place() {
    let dir = TempDir::new("keyonly");
    let (ca, mut settings) = root_with_ca(dir.path());
    let key = dir.path().join("own.key");
    openssl(
        &format!(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {}",
            key.display()
        ),
        b"",
    );
    let key_before = std::fs::read(&key).unwrap();
    settings.configured = Some(Principal {
        private_key_path: key.clone(),
        certificate_path: None,
    });
    let now = SystemTime::now();
    let id = settings.identity(now, &[ip("192.0.2.9")]).unwrap();
    assert_eq!(id.source, IdentitySource::GroupCa);
    assert!(id.issued);
    assert_eq!(id.key_path, key);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_before,
        "the user's key is not rewritten"
    );
    assert!(!settings.state_dir.join("server.key").exists());
    assert!(ca.signed(&id.cert_chain[0]));
    // The certificate is for the user's key: same public key as openssl derives from it.
    let cert_pub = openssl(
        &format!("x509 -in {} -noout -pubkey", id.cert_path.display()),
        b"",
    );
    let key_pub = openssl(&format!("pkey -in {} -pubout", key.display()), b"");
    assert_eq!(cert_pub, key_pub);
    // Reused while valid; renewed for the same key when due; renewed when the user rotates it.
    assert!(!settings.identity(now, &[ip("192.0.2.9")]).unwrap().issued);
    let late = settings.identity(
        now + 6 * DAY + Duration::from_secs(7200),
        &[ip("192.0.2.9")],
    );
    assert!(late.unwrap().issued);
    openssl(
        &format!(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out {}",
            key.display()
        ),
        b"",
    );
    let rotated = settings.identity(now, &[ip("192.0.2.9")]).unwrap();
    assert!(rotated.issued, "a new user key gets a new certificate");
    // A SEC1 key cannot be certified: the error says how to convert it.
    ec_key(&key);
    let err = settings.identity(now, &[]).unwrap_err().to_string();
    assert!(err.contains("openssl pkcs8 -topk8 -nocrypt"), "{err}");
}

#[test]
fn a_configured_key_without_certificate_or_group_ca_says_what_to_add() {
    let dir = TempDir::new("keyonly-noca");
    let mut settings = settings(dir.path());
    settings.configured = Some(Principal {
        private_key_path: dir.path().join("server.key"),
        certificate_path: None,
    });
    let err = settings
        .identity(SystemTime::now(), &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificatePath"), "{err}");
    assert!(err.contains("server.key"), "{err}");
    assert!(err.contains("group-ca.pem"), "{err}");
}

#[test]
fn without_any_source_the_error_names_the_files_looked_for() {
    let dir = TempDir::new("none");
    let settings = settings(dir.path());
    let err = settings.identity(SystemTime::now(), &[]).unwrap_err();
    assert!(matches!(err, PkiError::NoServerIdentity { .. }));
    let msg = err.to_string();
    for needle in [
        "MQTTServerCertificate",
        dir.path().join("certs/group-ca.pem").to_str().unwrap(),
        dir.path().join("certs/group-ca.key").to_str().unwrap(),
    ] {
        assert!(msg.contains(needle), "{needle} not in: {msg}");
    }
    // Only the key present is still (c): both are needed.
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/group-ca.key"), b"x").unwrap();
    assert!(matches!(
        settings.identity(SystemTime::now(), &[]).unwrap_err(),
        PkiError::NoServerIdentity { .. }
    ));
}

#[test]
fn group_ca_round_trips_through_files_and_rejects_a_foreign_key() {
    let dir = TempDir::new("ca");
    let (ca, settings) = root_with_ca(dir.path());
    let mode = std::fs::metadata(&settings.group_ca_key)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let loaded = GroupCa::load(&settings.group_ca_cert, &settings.group_ca_key).unwrap();
    assert_eq!(loaded.cert_der(), ca.cert_der());
    // What the loaded CA issues verifies against the original file.
    let (cert_pem, _) = loaded.issue_client_cert("dev").unwrap();
    let cert = dir.path().join("dev.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    verify(&settings.group_ca_cert, &cert);
    // A key that is not the CA's.
    let (_, foreign) = ca.issue_client_cert("x").unwrap();
    std::fs::write(&settings.group_ca_key, foreign).unwrap();
    let err = GroupCa::load(&settings.group_ca_cert, &settings.group_ca_key).unwrap_err();
    assert!(err.to_string().contains("is not the key of"), "{err}");
}

#[test]
fn an_openssl_made_rsa_group_ca_signs_server_certificates_with_sha256_rsa() {
    let dir = TempDir::new("rsaca");
    let s = settings(dir.path());
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    openssl(&format!("req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=rsa-group-CA -addext basicConstraints=critical,CA:TRUE -addext keyUsage=keyCertSign,cRLSign -keyout {} -out {}", s.group_ca_key.display(), s.group_ca_cert.display()), b"",
    );
    let id = s.identity(SystemTime::now(), &[]).unwrap();
    let pem = std::fs::read(&id.cert_path).unwrap();
    let text = String::from_utf8(openssl("x509 -noout -text", &pem)).unwrap();
    assert!(text.contains("sha256WithRSAEncryption"), "{text}");
    verify(&s.group_ca_cert, &id.cert_path);
}

#[test]
fn a_sec1_group_ca_key_is_refused_with_the_conversion_command() {
    let dir = TempDir::new("sec1ca");
    let s = settings(dir.path());
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    ec_key(&s.group_ca_key);
    openssl(
        &format!(
            "req -x509 -new -key {} -days 30 -subj /CN=ec-CA -out {}",
            s.group_ca_key.display(),
            s.group_ca_cert.display()
        ),
        b"",
    );
    let err = s.identity(SystemTime::now(), &[]).unwrap_err().to_string();
    assert!(err.contains("openssl pkcs8 -topk8 -nocrypt"), "{err}");
    assert!(err.contains("group-ca.key"), "{err}");
}

#[test]
fn pem_loading_errors_name_the_file() {
    let dir = TempDir::new("pem");
    let missing = dir.path().join("missing.pem");
    let err = load_cert_chain(&missing).unwrap_err();
    assert!(matches!(err, PkiError::Read { .. }));
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "just text\n").unwrap();
    assert!(matches!(
        load_cert_chain(&empty).unwrap_err(),
        PkiError::NoCertificate { .. }
    ));
    let err = load_private_key(&empty).unwrap_err();
    assert!(matches!(err, PkiError::NoPrivateKey { .. }));
    assert!(err.to_string().contains("empty.pem"), "{err}");

    let huge = dir.path().join("huge.pem");
    std::fs::write(&huge, vec![b'A'; sprig::limits::MAX_PEM_FILE_BYTES + 1]).unwrap();
    assert!(matches!(
        load_cert_chain(&huge).unwrap_err(),
        PkiError::TooLarge { .. }
    ));

    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load_cert_chain(&broken).unwrap_err();
    assert!(err.to_string().contains("broken.pem"), "{err}");
}

#[test]
fn interface_addresses_exclude_loopback_and_are_sorted() {
    let addrs = sprig::pki::interface_addrs().unwrap();
    assert!(addrs.iter().all(|a| !a.is_loopback()), "{addrs:?}");
    let mut sorted = addrs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(addrs, sorted);
}

#[test]
fn server_identity_follows_config_json() {
    // The real config path: config.json with MQTTServerCertificate, loaded by the config module.
    let dir = TempDir::new("config");
    let ca = GroupCa::create("c").unwrap();
    let (cert_pem, key_pem) = ca.issue_client_cert("srv").unwrap();
    let (key, cert) = (
        dir.path().join("certs/srv.key"),
        dir.path().join("certs/srv.crt"),
    );
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    std::fs::write(&cert, cert_pem).unwrap();
    let json = format!(
        r#"{{"coreThing": {{"iotHost": "none", "thingArn": "arn:aws:iot:us-east-1:000000000000:thing/c"}},
            "crypto": {{"caPath": "file://{ca}", "principals": {{"MQTTServerCertificate":
              {{"privateKeyPath": "file://{key}", "certificatePath": "file://{cert}"}}}}}},
            "sprig": {{"serverCertValidityDays": 30}}}}"#,
        ca = cert.display(),
        key = key.display(),
        cert = cert.display()
    );
    std::fs::write(dir.path().join("config/config.json"), json).unwrap();
    let (config, _warnings) = sprig::config::Config::load(dir.path()).expect("config loads");
    let id = sprig::pki::server_identity(&config, SystemTime::now()).unwrap();
    assert_eq!(id.source, IdentitySource::Configured);
    assert_eq!(id.cert_path, cert);

    // Without the principal, and with a group CA: (b), validity from sprig.serverCertValidityDays.
    let s = ServerCertSettings::from_config(&config);
    assert_eq!(s.validity_days, 30);
    assert_eq!(s.state_dir, dir.path().join("ggc/var/state/server"));
    assert_eq!(s.group_ca_cert, dir.path().join("certs/group-ca.pem"));
}

#[test]
fn every_identity_source_builds_a_rustls_server_config() {
    let build = |id: sprig::pki::ServerIdentity| {
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(id.cert_chain, id.key)
    };
    // (b) ECDSA P-256 from the group CA.
    let dir = TempDir::new("rustls");
    let (_ca, mut s) = root_with_ca(dir.path());
    build(s.identity(SystemTime::now(), &[ip("192.0.2.7")]).unwrap()).expect("issued identity");
    // (a) with an openssl SEC1 EC key and a self-signed certificate for it.
    let (key, cert) = (dir.path().join("ec.key"), dir.path().join("ec.crt"));
    ec_key(&key);
    openssl(
        &format!(
            "req -x509 -new -key {} -days 2 -subj /CN=ec -out {}",
            key.display(),
            cert.display()
        ),
        b"",
    );
    s.configured = Some(Principal {
        private_key_path: key,
        certificate_path: Some(cert),
    });
    build(s.identity(SystemTime::now(), &[]).unwrap()).expect("configured SEC1 identity");
}
