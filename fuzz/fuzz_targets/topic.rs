//! Topic names and filters from devices: validation and matching never panic, and matching
//! agrees with the MQTT 3.1.1 rules it can be checked against without a second matcher.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sprig::topic::{filter_matches, has_wildcard, validate_topic_filter, validate_topic_name};

fuzz_target!(|data: &[u8]| {
    // "filter \0 topic", both as a device would send them (any UTF-8).
    let mut parts = data.splitn(2, |&b| b == 0);
    let (Ok(filter), Ok(topic)) = (
        std::str::from_utf8(parts.next().unwrap_or_default()),
        std::str::from_utf8(parts.next().unwrap_or_default()),
    ) else {
        return;
    };
    let filter_ok = validate_topic_filter(filter).is_ok();
    let topic_ok = validate_topic_name(topic).is_ok();
    let _ = has_wildcard(filter);
    let m = filter_matches(filter, topic);
    if topic_ok {
        // Every valid topic name is a valid filter that matches exactly itself.
        assert!(validate_topic_filter(topic).is_ok(), "topic {topic:?} is not a valid filter");
        assert!(filter_matches(topic, topic), "{topic:?} does not match itself");
        // `#` matches every topic except those starting with `$` (MQTT 3.1.1 4.7.2).
        assert_eq!(filter_matches("#", topic), !topic.starts_with('$'), "# vs {topic:?}");
        if filter_ok && !has_wildcard(filter) {
            assert_eq!(m, filter == topic, "{filter:?} vs {topic:?}");
        }
    }
});
