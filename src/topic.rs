//! MQTT topic names and filters: validation and matching with exact MQTT 3.1.1 semantics
//! (spec §4.7). Allocation-free: everything works on `&str` slices.

/// Longest topic name or filter, bytes (MQTT 3.1.1 §4.7.3: a UTF-8 string of up to 65535 bytes).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a topic name or filter is not valid MQTT 3.1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Zero length (§4.7.3: "All Topic Names and Topic Filters MUST be at least one character long").
    Empty,
    /// Longer than [`MAX_TOPIC_BYTES`].
    TooLong,
    /// Contains U+0000.
    Nul,
    /// A topic name (as published) contains `+` or `#`.
    WildcardInName,
    /// `+` that is not a whole level (`a+/b`).
    MisplacedPlus,
    /// `#` that is not the whole last level (`a/#/b`, `a#`).
    MisplacedHash,
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "topic is empty",
            TopicError::TooLong => "topic is longer than 65535 bytes",
            TopicError::Nul => "topic contains a NUL character",
            TopicError::WildcardInName => "topic name contains a wildcard (+ or #)",
            TopicError::MisplacedPlus => "'+' must occupy a whole topic level",
            TopicError::MisplacedHash => "'#' must be the whole last topic level",
        })
    }
}

impl std::error::Error for TopicError {}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if s.as_bytes().contains(&0) {
        return Err(TopicError::Nul);
    }
    Ok(())
}

/// Validates a topic name, as used in PUBLISH: non-empty, no NUL, no wildcards.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Validates a topic filter, as used in SUBSCRIBE and in group subscriptions.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return Err(TopicError::MisplacedHash);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedPlus);
        }
    }
    Ok(())
}

/// `true` when topic name `topic` matches topic filter `filter`.
///
/// Both are assumed valid (see the `validate_*` functions). `a/#` matches `a`; `+` matches one
/// level, including an empty one; a filter starting with a wildcard does not match a topic
/// starting with `$` (§4.7.2).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            // `#` matches the parent level too, so `t` may already be exhausted.
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `true` when the filter contains a wildcard.
pub fn has_wildcard(filter: &str) -> bool {
    filter.bytes().any(|b| b == b'+' || b == b'#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for n in [
            "a",
            "/",
            "a/b",
            "/a",
            "a/",
            "//",
            "$SYS/x",
            "$aws/things/t/shadow/update",
            " ",
            "ü/ß",
        ] {
            assert_eq!(validate_topic_name(n), Ok(()), "{n:?}");
        }
    }

    #[test]
    fn invalid_names() {
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a/#"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a+b"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("a\0b"), Err(TopicError::Nul));
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert_eq!(validate_topic_name(&long), Err(TopicError::TooLong));
        assert_eq!(validate_topic_name(&long[1..]), Ok(()));
    }

    #[test]
    fn valid_filters() {
        for f in [
            "#", "+", "+/+", "/+", "+/", "a/#", "a/+/b", "a/+/#", "/#", "+/#", "//", "$SYS/#",
            "a/b/c", "/",
        ] {
            assert_eq!(validate_topic_filter(f), Ok(()), "{f:?}");
        }
    }

    #[test]
    fn invalid_filters() {
        assert_eq!(validate_topic_filter(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_filter("a#"), Err(TopicError::MisplacedHash));
        assert_eq!(
            validate_topic_filter("a/#/b"),
            Err(TopicError::MisplacedHash)
        );
        assert_eq!(validate_topic_filter("#/"), Err(TopicError::MisplacedHash));
        assert_eq!(validate_topic_filter("##"), Err(TopicError::MisplacedHash));
        assert_eq!(
            validate_topic_filter("a/b#"),
            Err(TopicError::MisplacedHash)
        );
        assert_eq!(validate_topic_filter("a+"), Err(TopicError::MisplacedPlus));
        assert_eq!(
            validate_topic_filter("a/+b"),
            Err(TopicError::MisplacedPlus)
        );
        assert_eq!(validate_topic_filter("++"), Err(TopicError::MisplacedPlus));
        assert_eq!(validate_topic_filter("a/\0"), Err(TopicError::Nul));
        assert_eq!(
            validate_topic_filter(&"+/".repeat(40_000)),
            Err(TopicError::TooLong)
        );
    }

    #[test]
    fn matching() {
        let yes = [
            ("#", "a"),
            ("#", "a/b/c"),
            ("#", "/"),
            ("#", "/a"),
            ("a/#", "a"),
            ("a/#", "a/"),
            ("a/#", "a/b"),
            ("a/#", "a/b/c"),
            ("sport/tennis/player1/#", "sport/tennis/player1"),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking"),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
            ),
            ("sport/+", "sport/"),
            ("sport/tennis/+", "sport/tennis/player1"),
            ("+", "a"),
            ("+", ""),
            ("+/+", "/finance"),
            ("/+", "/finance"),
            ("+/+", "/"),
            ("+/#", "a"),
            ("+/#", "a/b/c"),
            ("a/+/c", "a/b/c"),
            ("a/+/c", "a//c"),
            ("a/b", "a/b"),
            ("/", "/"),
            ("$SYS/#", "$SYS/broker"),
            ("$SYS/+", "$SYS/x"),
            (
                "$aws/things/+/shadow/#",
                "$aws/things/t1/shadow/update/accepted",
            ),
        ];
        for (f, t) in yes {
            assert_eq!(validate_topic_filter(f), Ok(()));
            assert!(filter_matches(f, t), "{f:?} should match {t:?}");
        }
        let no = [
            ("sport/+", "sport"),
            ("sport/tennis/+", "sport/tennis/player1/ranking"),
            ("sport/tennis/+", "sport/tennis"),
            ("+", "/finance"),
            ("+", "a/b"),
            ("a/b", "a"),
            ("a", "a/b"),
            ("a/b", "a/b/"),
            ("a/b/", "a/b"),
            ("a/#", "b"),
            ("a/#", "ab"),
            ("a/+/c", "a/b/d"),
            ("A", "a"),
            ("#", "$SYS/broker"),
            ("#", "$SYS"),
            ("+/monitor/Clients", "$SYS/monitor/Clients"),
            ("+", "$x"),
            ("+/#", "$aws/things"),
        ];
        for (f, t) in no {
            assert_eq!(validate_topic_filter(f), Ok(()));
            assert!(!filter_matches(f, t), "{f:?} should not match {t:?}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(has_wildcard("a/+"));
        assert!(has_wildcard("#"));
        assert!(!has_wildcard("a/b"));
    }
}
