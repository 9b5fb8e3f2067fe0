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
}

/// The oracles themselves: the committed seeds pass, and a broken round trip would be caught.
#[test]
fn seeds_pass_the_oracles() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let checks: [(&str, fn(&[u8])); 6] = [
        ("json", oracles::json),
        ("config_json", oracles::config_json),
        ("group_json", oracles::group_json),
        ("topic", oracles::topic),
        ("mqtt_packet", oracles::mqtt_packet),
        ("spool_record", oracles::spool_record),
    ];
    for (target, check) in checks {
        let entries: Vec<_> = std::fs::read_dir(seeds.join(target)).unwrap().collect();
        assert!(!entries.is_empty(), "fuzz/seeds/{target} is empty");
        for e in entries {
            check(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }
}
