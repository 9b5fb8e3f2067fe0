use super::*;
use crate::json::parse;

fn shadows() -> Shadows {
    Shadows::new(&[("light".into(), false), ("core".into(), true)], 1 << 20)
}

/// Plans and applies (as the shell does when the store write succeeds).
fn run(s: &mut Shadows, thing: &str, op: ShadowOp, body: &str, now: u64) -> Plan {
    let mut p = s.plan(thing, op, body.as_bytes(), now);
    let n = p.new.as_ref().map_or(0, |x| store::encode(x).len());
    s.apply(&mut p, n);
    p
}

fn body(p: &Plan) -> Value {
    parse(p.answer.1.as_bytes(), 1 << 20, 32).unwrap()
}

fn side(p: &Plan, suffix: &str) -> Option<Value> {
    p.side
        .iter()
        .find(|r| r.topic.ends_with(suffix))
        .map(|r| parse(r.body.as_bytes(), 1 << 20, 32).unwrap())
}

fn code(p: &Plan) -> u16 {
    p.rejection.as_ref().map_or(0, |r| r.code)
}

#[test]
fn topics() {
    assert_eq!(
        parse_request_topic("$aws/things/light/shadow/update"),
        Some(("light", ShadowOp::Update))
    );
    assert_eq!(
        parse_request_topic("$aws/things/l/shadow/delete"),
        Some(("l", ShadowOp::Delete))
    );
    for t in [
        "$aws/things/light/shadow/update/accepted",
        "$aws/things//shadow/get",
        "$aws/things/a/b/shadow/get",
        "$aws/things/light/shadow/name/x/get",
        "other",
    ] {
        assert_eq!(parse_request_topic(t), None, "{t}");
    }
    assert!(valid_thing_name("GG_TrafficLight:1-a"));
    assert!(!valid_thing_name("../x") && !valid_thing_name(""));
}

#[test]
fn the_traffic_light_flow() {
    let mut s = shadows();
    // The switch sets desired: accepted echoes state + token, delta carries the token.
    let p = run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"desired":{"property":"R"}},"clientToken":"t1"}"#,
        100,
    );
    assert_eq!(p.answer.0, "update/accepted");
    let a = body(&p);
    assert_eq!(
        json::to_string(&a),
        r#"{"state":{"desired":{"property":"R"}},"metadata":{"desired":{"property":{"timestamp":100}}},"version":1,"timestamp":100,"clientToken":"t1"}"#
    );
    let d = side(&p, "update/delta").expect("delta");
    assert_eq!(
        json::to_string(&d),
        r#"{"version":1,"timestamp":100,"state":{"property":"R"},"metadata":{"property":{"timestamp":100}},"clientToken":"t1"}"#
    );
    let docs = side(&p, "update/documents").unwrap();
    assert!(docs.get("previous").is_none());
    assert_eq!(
        docs.get("current").unwrap().get("version"),
        Some(&Value::Int(1))
    );
    // The light reports: no delta any more, documents has previous and current.
    let p = run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"reported":{"property":"R"}},"clientToken":"t2"}"#,
        101,
    );
    assert!(side(&p, "update/delta").is_none());
    let docs = side(&p, "update/documents").unwrap();
    assert_eq!(
        json::to_string(&docs),
        r#"{"previous":{"state":{"desired":{"property":"R"}},"metadata":{"desired":{"property":{"timestamp":100}}},"version":1},"current":{"state":{"desired":{"property":"R"},"reported":{"property":"R"}},"metadata":{"desired":{"property":{"timestamp":100}},"reported":{"property":{"timestamp":101}}},"version":2},"timestamp":101,"clientToken":"t2"}"#
    );
    // get returns state, delta (when any), metadata, version.
    run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"desired":{"property":"G"}}}"#,
        102,
    );
    let g = run(
        &mut s,
        "light",
        ShadowOp::Get,
        r#"{"clientToken":"g"}"#,
        103,
    );
    assert_eq!(
        json::to_string(body(&g).get("state").unwrap()),
        r#"{"desired":{"property":"G"},"reported":{"property":"R"},"delta":{"property":"G"}}"#
    );
    assert_eq!(body(&g).get("version"), Some(&Value::Int(3)));
    assert_eq!(
        body(&g).get("clientToken").and_then(Value::as_str),
        Some("g")
    );
}

#[test]
fn null_deletes_and_nested_merge() {
    let mut s = shadows();
    run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"reported":{"a":{"b":1,"c":2},"d":3}}}"#,
        1,
    );
    run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"reported":{"a":{"b":null,"e":4},"d":null}}}"#,
        2,
    );
    let sh = s.get("light").unwrap();
    assert_eq!(
        json::to_string(&sh.state()),
        r#"{"reported":{"a":{"c":2,"e":4}}}"#
    );
    assert_eq!(
        json::to_string(&sh.metadata()),
        r#"{"reported":{"a":{"c":{"timestamp":1},"e":{"timestamp":2}}}}"#
    );
    // A whole section set to null goes away.
    run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"reported":null}}"#,
        3,
    );
    assert_eq!(json::to_string(&s.get("light").unwrap().state()), "{}");
}

#[test]
fn versions_conflicts_and_delete() {
    let mut s = shadows();
    assert_eq!(code(&run(&mut s, "light", ShadowOp::Get, "", 1)), 404);
    assert_eq!(code(&run(&mut s, "light", ShadowOp::Delete, "", 1)), 404);
    let u =
        |v: &str| format!(r#"{{"state":{{"desired":{{"x":1}}}},"version":{v},"clientToken":"c"}}"#);
    assert_eq!(
        code(&run(&mut s, "light", ShadowOp::Update, &u("3"), 1)),
        409
    );
    run(&mut s, "light", ShadowOp::Update, &u("0"), 1);
    let p = run(&mut s, "light", ShadowOp::Update, &u("0"), 1);
    assert_eq!(code(&p), 409);
    let b = body(&p);
    assert_eq!(
        b.get("message").and_then(Value::as_str),
        Some("Version conflict")
    );
    assert_eq!(b.get("clientToken").and_then(Value::as_str), Some("c"));
    assert_eq!(code(&run(&mut s, "light", ShadowOp::Update, &u("1"), 1)), 0);
    let d = run(
        &mut s,
        "light",
        ShadowOp::Delete,
        r#"{"clientToken":"d"}"#,
        5,
    );
    assert_eq!(
        json::to_string(&body(&d)),
        r#"{"version":2,"timestamp":5,"clientToken":"d"}"#
    );
    assert_eq!(code(&run(&mut s, "light", ShadowOp::Get, "", 6)), 404);
    assert_eq!(s.usage().0, 0);
    // A new shadow continues above the deleted version.
    let p = run(
        &mut s,
        "light",
        ShadowOp::Update,
        r#"{"state":{"reported":{}}}"#,
        7,
    );
    assert_eq!(body(&p).get("version"), Some(&Value::Int(3)));
}

#[test]
fn every_rejection_code() {
    let s = shadows();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("light", "not json", 400, "Invalid JSON"),
        ("light", "[1]", 400, "Invalid JSON"),
        (
            "light",
            r#"{"clientToken":"t"}"#,
            400,
            "Missing required node: state",
        ),
        (
            "light",
            r#"{"state":1}"#,
            400,
            "State node must be an object",
        ),
        (
            "light",
            r#"{"state":null}"#,
            400,
            "State node must be an object",
        ),
        (
            "light",
            r#"{"state":{"desired":1}}"#,
            400,
            "Desired node must be an object",
        ),
        (
            "light",
            r#"{"state":{"reported":"x"}}"#,
            400,
            "Reported node must be an object",
        ),
        (
            "light",
            r#"{"state":{"delta":{}}}"#,
            400,
            "State contains an invalid node",
        ),
        (
            "light",
            r#"{"state":{},"version":"1"}"#,
            400,
            "Invalid version",
        ),
        (
            "light",
            r#"{"state":{},"version":-1}"#,
            400,
            "Invalid version",
        ),
        (
            "light",
            r#"{"state":{},"version":1.5}"#,
            400,
            "Invalid version",
        ),
        (
            "light",
            r#"{"state":{},"clientToken":5}"#,
            400,
            "Invalid clientToken",
        ),
        ("nobody", r#"{"state":{}}"#, 404, "Thing not found"),
    ];
    for (thing, req, c, msg) in cases {
        let p = s.plan(thing, ShadowOp::Update, req.as_bytes(), 9);
        assert_eq!(p.answer.0, "update/rejected", "{req}");
        let b = body(&p);
        assert_eq!(b.get("code"), Some(&Value::Int(i64::from(*c))), "{req}");
        assert_eq!(
            b.get("message").and_then(Value::as_str),
            Some(*msg),
            "{req}"
        );
        assert_eq!(b.get("timestamp"), Some(&Value::Int(9)));
        assert!(p.side.is_empty() && p.new.is_none());
    }
    let long = "t".repeat(65);
    let p = s.plan(
        "light",
        ShadowOp::Update,
        format!(r#"{{"state":{{}},"clientToken":"{long}"}}"#).as_bytes(),
        1,
    );
    assert_eq!((code(&p), body(&p).get("clientToken")), (400, None));
    let ok = "t".repeat(64);
    let p = s.plan(
        "light",
        ShadowOp::Update,
        format!(r#"{{"state":{{}},"clientToken":"{ok}"}}"#).as_bytes(),
        1,
    );
    assert_eq!(code(&p), 0);
    // Six levels inside desired are fine, seven are not.
    let six = r#"{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}}"#;
    let seven = r#"{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}"#;
    assert_eq!(
        code(&s.plan("light", ShadowOp::Update, six.as_bytes(), 1)),
        0
    );
    let p = s.plan("light", ShadowOp::Update, seven.as_bytes(), 1);
    assert_eq!(code(&p), 400);
    assert_eq!(
        body(&p).get("message").and_then(Value::as_str),
        Some("JSON contains too many levels of nesting; maximum is 6")
    );
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    assert_eq!(
        code(&s.plan("light", ShadowOp::Update, deep.as_bytes(), 1)),
        400
    );
    assert_eq!(
        code(&s.plan("light", ShadowOp::Update, b"{\"state\":\xff}", 1)),
        415
    );
    assert_eq!(code(&s.plan("light", ShadowOp::Get, b"nope", 1)), 400);
}

#[test]
fn size_limits_count_state_not_metadata_and_the_store_is_bounded() {
    let mut s = shadows();
    let fill = |n: usize| format!(r#"{{"state":{{"desired":{{"k":"{}"}}}}}}"#, "x".repeat(n));
    // desired = {"k":"xxx.."}: 8 bytes + n.
    let at = limits::SHADOW_MAX_STATE_BYTES - 8;
    assert_eq!(
        code(&run(&mut s, "light", ShadowOp::Update, &fill(at), 1)),
        0
    );
    let p = run(&mut s, "light", ShadowOp::Update, &fill(at + 1), 1);
    assert_eq!(code(&p), 413);
    assert_eq!(
        body(&p).get("message").and_then(Value::as_str),
        Some("The payload exceeds the maximum size allowed")
    );
    // A small store: the second shadow does not fit.
    let mut small = Shadows::new(&[("a".into(), false), ("b".into(), false)], 10_000);
    assert_eq!(
        code(&run(&mut small, "a", ShadowOp::Update, &fill(6000), 1)),
        0
    );
    let p = run(&mut small, "b", ShadowOp::Update, &fill(6000), 1);
    assert_eq!(code(&p), 413);
    assert!(
        p.answer.1.contains("shadow store is full"),
        "{}",
        p.answer.1
    );
    // Deleting frees room.
    assert_eq!(code(&run(&mut small, "a", ShadowOp::Delete, "", 1)), 0);
    assert_eq!(
        code(&run(&mut small, "b", ShadowOp::Update, &fill(6000), 1)),
        0
    );
}

mod sync_engine {
    use super::*;
    use crate::shadow::sync::{replace_patch, Step, SyncEngine};

    fn cloud_steps(steps: &[Step]) -> Vec<(String, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Cloud { topic, body } => Some((topic.clone(), body.clone())),
                _ => None,
            })
            .collect()
    }

    fn local_steps(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Local { body, .. } => Some(body.clone()),
                _ => None,
            })
            .collect()
    }

    /// Applies the engine's steps to `s` as the shell does (Local as Origin::Cloud, Mark).
    fn apply(s: &mut Shadows, steps: &[Step], now: u64) {
        for st in steps {
            match st {
                Step::Local { thing, body } => {
                    let mut p =
                        s.plan_from(Origin::Cloud, thing, ShadowOp::Update, body.as_bytes(), now);
                    assert!(p.sync_out.is_none(), "a cloud change is not sent back");
                    s.apply(&mut p, 1);
                }
                Step::Mark { thing, mark } => s.set_sync_mark(thing, mark.clone()),
                Step::Cloud { .. } => {}
            }
        }
    }

    fn token_of(body: &str) -> String {
        let v = parse(body.as_bytes(), 1 << 20, 32).unwrap();
        v.get("clientToken")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    #[test]
    fn replace_patch_turns_one_document_into_another() {
        let v = |s: &str| parse(s.as_bytes(), 1 << 20, 32).unwrap();
        let p = replace_patch(
            Some(&v(r#"{"a":1,"b":{"c":1,"d":2},"gone":true}"#)),
            Some(&v(r#"{"a":1,"b":{"c":1,"d":3},"new":[1]}"#)),
        )
        .unwrap();
        assert_eq!(
            json::to_string(&p),
            r#"{"b":{"d":3},"new":[1],"gone":null}"#
        );
        assert_eq!(replace_patch(Some(&v("{}")), Some(&v("{}"))), None);
        assert_eq!(replace_patch(Some(&v("{}")), None), Some(Value::Null));
    }

    #[test]
    fn up_down_local_changes_and_no_echo() {
        let mut s = shadows(); // "core" syncs, "light" does not
        let mut e = SyncEngine::default();
        // Offline: a local change is marked dirty, nothing is sent.
        let mut p = s.plan(
            "core",
            ShadowOp::Update,
            br#"{"state":{"reported":{"t":1}}}"#,
            10,
        );
        assert!(p.new.as_ref().unwrap().sync.dirty);
        let out = p.sync_out.take().unwrap();
        s.apply(&mut p, 1);
        assert!(e.local_change("core", &out).is_empty());
        // Unsynced things never produce anything.
        let p = s.plan(
            "light",
            ShadowOp::Update,
            br#"{"state":{"reported":{"t":1}}}"#,
            10,
        );
        assert!(p.sync_out.is_none() && !p.new.unwrap().sync.dirty);
        // Up: one get, for the synced thing only.
        let steps = e.link_up(&s, 1);
        let c = cloud_steps(&steps);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].0, "$aws/things/core/shadow/get");
        // The cloud has no shadow: the whole local state goes up.
        let tok = token_of(&c[0].1);
        let steps = e.cloud_message(
            "$aws/things/core/shadow/get/rejected",
            format!(r#"{{"code":404,"message":"No shadow","clientToken":"{tok}"}}"#).as_bytes(),
            &s,
        );
        let c = cloud_steps(&steps);
        assert_eq!(c[0].0, "$aws/things/core/shadow/update");
        assert!(
            c[0].1
                .starts_with(r#"{"state":{"reported":{"t":1}},"clientToken":"sprig-sync-"#),
            "{}",
            c[0].1
        );
        apply(&mut s, &steps, 11);
        // Its accepted: clean, cloud version 1.
        let tok = token_of(&c[0].1);
        let steps = e.cloud_message(
            "$aws/things/core/shadow/update/accepted",
            format!(r#"{{"version":1,"clientToken":"{tok}"}}"#).as_bytes(),
            &s,
        );
        apply(&mut s, &steps, 11);
        let mark = &s.get("core").unwrap().sync;
        assert_eq!((mark.cloud_version, mark.dirty), (1, false));
        // The echo of our own write (documents with our token) changes nothing.
        let echo = format!(
            r#"{{"current":{{"state":{{"reported":{{"t":1}}}},"version":1}},"clientToken":"{tok}"}}"#
        );
        assert!(e
            .cloud_message(
                "$aws/things/core/shadow/update/documents",
                echo.as_bytes(),
                &s
            )
            .is_empty());
        // Connected: a local change goes up at once, as the request's state.
        let mut p = s.plan(
            "core",
            ShadowOp::Update,
            br#"{"state":{"reported":{"t":null,"u":2}}}"#,
            12,
        );
        let steps = e.local_change("core", &p.sync_out.take().unwrap());
        s.apply(&mut p, 1);
        assert_eq!(
            cloud_steps(&steps)[0]
                .1
                .split(r#","clientToken"#)
                .next()
                .unwrap(),
            r#"{"state":{"reported":{"t":null,"u":2}}"#
        );
        // An update that changes nothing is not sent.
        let p = s.plan(
            "core",
            ShadowOp::Update,
            br#"{"state":{"reported":{"u":2}}}"#,
            13,
        );
        assert!(p.sync_out.is_none());
    }

    #[test]
    fn cloud_desired_changes_come_down_once_and_reported_stays_the_cores() {
        let mut s = shadows();
        let mut e = SyncEngine::default();
        let mut p = s.plan(
            "core",
            ShadowOp::Update,
            br#"{"state":{"reported":{"p":"R"}}}"#,
            10,
        );
        s.apply(&mut p, 1);
        let steps = e.link_up(&s, 1);
        let tok = token_of(&cloud_steps(&steps)[0].1);
        // The cloud already has the same reported, at version 4: nothing to send, now clean.
        let got = format!(
            r#"{{"state":{{"reported":{{"p":"R"}}}},"metadata":{{}},"version":4,"clientToken":"{tok}"}}"#
        );
        let steps = e.cloud_message("$aws/things/core/shadow/get/accepted", got.as_bytes(), &s);
        assert!(cloud_steps(&steps).is_empty() && local_steps(&steps).is_empty());
        apply(&mut s, &steps, 11);
        assert!(!s.get("core").unwrap().sync.dirty);
        // The console sets desired and, wrongly, reported: desired comes down with the
        // console's token; reported is answered with the core's.
        let doc = br#"{"previous":{"state":{"reported":{"p":"R"}},"version":4},
            "current":{"state":{"desired":{"p":"G"},"reported":{"p":"X"}},"version":5},"clientToken":"console-1"}"#;
        let steps = e.cloud_message("$aws/things/core/shadow/update/documents", doc, &s);
        assert_eq!(
            local_steps(&steps),
            vec![r#"{"state":{"desired":{"p":"G"}},"clientToken":"console-1"}"#.to_string()]
        );
        assert!(cloud_steps(&steps)[0]
            .1
            .starts_with(r#"{"state":{"reported":{"p":"R"}}"#));
        apply(&mut s, &steps, 12);
        let sh = s.get("core").unwrap();
        assert_eq!(
            json::to_string(&sh.state()),
            r#"{"desired":{"p":"G"},"reported":{"p":"R"}}"#
        );
        assert_eq!(sh.sync.cloud_version, 5);
        // The same document again (a redelivery) does nothing.
        assert!(e
            .cloud_message("$aws/things/core/shadow/update/documents", doc, &s)
            .is_empty());
    }

    #[test]
    fn after_an_outage_the_later_desired_wins_and_the_cores_reported_goes_up() {
        for (cloud_ts, cloud_wins) in [(50, true), (5, false)] {
            let mut s = shadows();
            let mut e = SyncEngine::default();
            let mut p = s.plan(
                "core",
                ShadowOp::Update,
                br#"{"state":{"desired":{"p":"R"},"reported":{"p":"Z"}}}"#,
                20,
            );
            s.apply(&mut p, 1);
            let steps = e.link_up(&s, 1);
            let tok = token_of(&cloud_steps(&steps)[0].1);
            let got = format!(
                r#"{{"state":{{"desired":{{"p":"G"}},"reported":{{"p":"Y"}}}},"metadata":{{"desired":{{"p":{{"timestamp":{cloud_ts}}}}}}},"version":9,"clientToken":"{tok}"}}"#
            );
            let steps = e.cloud_message("$aws/things/core/shadow/get/accepted", got.as_bytes(), &s);
            let up = cloud_steps(&steps);
            assert_eq!(up.len(), 1);
            if cloud_wins {
                assert_eq!(
                    local_steps(&steps),
                    vec![r#"{"state":{"desired":{"p":"G"}}}"#.to_string()]
                );
                assert!(
                    up[0].1.starts_with(r#"{"state":{"reported":{"p":"Z"}}"#),
                    "{}",
                    up[0].1
                );
            } else {
                assert!(local_steps(&steps).is_empty());
                assert!(
                    up[0]
                        .1
                        .starts_with(r#"{"state":{"desired":{"p":"R"},"reported":{"p":"Z"}}"#),
                    "{}",
                    up[0].1
                );
            }
        }
    }
}

#[test]
fn set_things_says_what_changed_and_drops_removed_shadows_from_the_budget() {
    let mut s = Shadows::new(
        &[("a".into(), true), ("b".into(), false), ("c".into(), true)],
        1 << 20,
    );
    for t in ["a", "b"] {
        assert_eq!(
            code(&run(
                &mut s,
                t,
                ShadowOp::Update,
                r#"{"state":{"reported":{"x":1}}}"#,
                5
            )),
            0
        );
    }
    let (_, before) = s.usage();
    let r = s.set_things(&[("a".into(), false), ("c".into(), true), ("d".into(), true)]);
    assert_eq!(
        r,
        Retarget {
            added: vec!["d".into()],
            removed: vec!["b".into()],
            sync_started: vec!["d".into()],
            sync_stopped: vec!["a".into()],
        }
    );
    assert_eq!(s.usage().0, 1, "b's shadow left memory");
    assert!(s.usage().1 < before);
    assert_eq!(code(&run(&mut s, "b", ShadowOp::Get, "", 6)), 404);
    assert_eq!(s.synced_things(), vec!["c".to_string(), "d".to_string()]);
    assert!(!s.syncs("a"));
    s.clear();
    assert_eq!(s.usage(), (0, 0));
    assert!(s.serves("a"), "clear keeps the thing set");
}
