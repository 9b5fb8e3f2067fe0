//! Replays every input the fuzzers ever crashed on (tests/data/fuzz-regressions/<target>/)
//! through the same checks as the fuzz targets (tests/oracles), in the normal `cargo test`.

mod oracles;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz-regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        eprintln!("{target}: {}", path.display());
        check(&data);
        n += 1;
    }
    n
}

#[test]
fn json_reproducers() {
    assert!(
        replay("json", oracles::json) >= 1,
        "the saved json reproducer is missing"
    );
}

#[test]
fn other_targets_reproducers() {
    replay("config_json", oracles::config_json);
    replay("group_json", oracles::group_json);
    replay("topic", oracles::topic);
    replay("mqtt_packet", oracles::mqtt_packet);
    replay("spool_record", oracles::spool_record);
    replay("dns_response", oracles::dns_response);
    replay("proxy_reply", oracles::proxy_reply);
    replay("broker_session", oracles::broker_session);
    replay("jobs_message", oracles::jobs_message);
    replay("shadow_request", oracles::shadow_requests);
    replay("discovery_request", oracles::discovery_request);
    replay("ipc_request", oracles::ipc_request);
    replay("router", oracles::router);
    #[cfg(feature = "stream-manager")]
    replay("stream_frame", oracles::stream_frame);
}

/// A fuzz target's name and its oracle.
type Check = (&'static str, fn(&[u8]));

/// The oracles themselves: the committed seeds pass, and a broken round trip would be caught.
#[test]
fn seeds_pass_the_oracles() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let checks: &[Check] = &[
        ("json", oracles::json),
        ("config_json", oracles::config_json),
        ("group_json", oracles::group_json),
        ("topic", oracles::topic),
        ("mqtt_packet", oracles::mqtt_packet),
        ("spool_record", oracles::spool_record),
        ("dns_response", oracles::dns_response),
        ("proxy_reply", oracles::proxy_reply),
        ("broker_session", oracles::broker_session),
        ("jobs_message", oracles::jobs_message),
        ("shadow_request", oracles::shadow_requests),
        ("discovery_request", oracles::discovery_request),
        ("ipc_request", oracles::ipc_request),
        ("router", oracles::router),
    ];
    #[cfg(feature = "stream-manager")]
    let checks: &[Check] = &[checks, &[("stream_frame", oracles::stream_frame)]].concat();
    for &(target, check) in checks {
        let entries: Vec<_> = std::fs::read_dir(seeds.join(target)).unwrap().collect();
        assert!(!entries.is_empty(), "fuzz/seeds/{target} is empty");
        for e in entries {
            check(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }
}

/// The DNS and proxy seeds are the real thing, so the fuzzers start from the paths that
/// matter: a CNAME-then-A answer with name compression, and an open tunnel with TLS behind it.
#[test]
fn network_seeds_take_the_success_paths() {
    use sprig::cloud::dns::{parse_response, Answer};
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let dns = std::fs::read(seeds.join("dns_response/cname_then_a.bin")).unwrap();
    assert_eq!(
        parse_response(&dns, 0x1234),
        Ok(Answer::Addresses(vec![std::net::Ipv4Addr::new(
            52, 31, 7, 9
        )]))
    );
    let reply = std::fs::read(seeds.join("proxy_reply/200_tinyproxy.bin")).unwrap();
    let n = sprig::cloud::proxy::parse_connect_reply(&reply)
        .unwrap()
        .unwrap();
    assert_eq!(&reply[n..], b"\x16\x03\x03");
}
