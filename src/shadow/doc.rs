//! The shadow document model on the JSON DOM ([`crate::json::Value`]): recursive merge with
//! `null` deleting, per-leaf metadata, the delta between desired and reported, nesting depth.
//! Pure functions; the rules are AWS IoT Device Shadow's (see `shadow` module docs).

use crate::json::Value;

/// `{"timestamp": ts}`: the metadata of one leaf.
pub fn stamp(ts: u64) -> Value {
    Value::Object(vec![("timestamp".into(), int(ts))])
}

pub fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Metadata mirroring `v`: objects member by member, arrays element by element, every other
/// value (including `null`) one `{"timestamp": ts}`.
pub fn meta_of(v: &Value, ts: u64) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), meta_of(x, ts))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| meta_of(x, ts)).collect()),
        _ => stamp(ts),
    }
}

fn slot<'a>(m: &'a mut [(String, Value)], key: &str) -> Option<&'a mut Value> {
    m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn set(m: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match slot(m, key) {
        Some(s) => *s = v,
        None => m.push((key.to_string(), v)),
    }
}

fn remove(m: &mut Vec<(String, Value)>, key: &str) {
    m.retain(|(k, _)| k != key);
}

/// Makes `v` an object (replacing any other value) and returns its members.
fn as_members(v: &mut Value) -> &mut Vec<(String, Value)> {
    if !matches!(v, Value::Object(_)) {
        *v = Value::Object(Vec::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("made an object just above"),
    }
}

/// Merges the object `patch` into the object `target` and its metadata `meta`: a `null` member
/// deletes the key (and its metadata), an object member merges recursively into an object (or
/// replaces a non-object), any other value replaces (arrays are values: replaced whole).
pub fn merge(target: &mut Value, meta: &mut Value, patch: &[(String, Value)], ts: u64) {
    let t = as_members(target);
    let m = as_members(meta);
    for (k, v) in patch {
        match v {
            Value::Null => {
                remove(t, k);
                remove(m, k);
            }
            Value::Object(p) => {
                if !matches!(slot(t, k), Some(Value::Object(_))) {
                    set(t, k, Value::Object(Vec::new()));
                    set(m, k, Value::Object(Vec::new()));
                }
                if slot(m, k).is_none() {
                    set(m, k, Value::Object(Vec::new()));
                }
                // Both slots exist now.
                if let (Some(tv), Some(mv)) = (slot(t, k), slot(m, k)) {
                    merge(tv, mv, p, ts);
                }
            }
            other => {
                set(t, k, other.clone());
                set(m, k, meta_of(other, ts));
            }
        }
    }
}

/// Numbers compare as numbers (`1` equals `1.0`), everything else structurally.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => (*x as f64) == *y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k == k2 && same(v, v2)))
        }
        _ => a == b,
    }
}

/// The delta: every member of `desired` whose value differs from `reported`'s, recursively for
/// objects on both sides; `None` when there is no difference.
pub fn delta(desired: &Value, reported: Option<&Value>) -> Option<Value> {
    let d = desired.as_object()?;
    let mut out = Vec::new();
    for (k, dv) in d {
        let rv = reported.and_then(|r| r.get(k));
        match (dv, rv) {
            (Value::Object(_), Some(r @ Value::Object(_))) => {
                if let Some(sub) = delta(dv, Some(r)) {
                    out.push((k.clone(), sub));
                }
            }
            (_, Some(r)) if same(dv, r) => {}
            _ => out.push((k.clone(), dv.clone())),
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The part of `meta` that describes the members of `picked` (a delta of the document `meta`
/// describes).
pub fn pick_meta(picked: &Value, meta: Option<&Value>) -> Value {
    let Some(p) = picked.as_object() else {
        return meta.cloned().unwrap_or(Value::Null);
    };
    Value::Object(
        p.iter()
            .map(|(k, v)| {
                let m = meta.and_then(|m| m.get(k));
                let sub = match v {
                    Value::Object(_) if matches!(m, Some(Value::Object(_))) => pick_meta(v, m),
                    _ => m.cloned().unwrap_or(Value::Null),
                };
                (k.clone(), sub)
            })
            .collect(),
    )
}

/// Levels of nesting below `v`: 0 for a scalar, 1 + the deepest member for containers.
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.iter().map(|(_, x)| depth(x)).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse, to_string};

    fn v(s: &str) -> Value {
        parse(s.as_bytes(), 1 << 20, 32).unwrap()
    }

    fn merged(base: &str, patch: &str) -> (String, String) {
        let mut t = v(base);
        let mut m = meta_of(&t, 1);
        let p = v(patch);
        merge(&mut t, &mut m, p.as_object().unwrap(), 2);
        (to_string(&t), to_string(&m))
    }

    #[test]
    fn merge_is_recursive_and_null_deletes_with_its_metadata() {
        let (t, m) = merged(
            r#"{"a":1,"b":{"c":1,"d":2},"e":[1,2]}"#,
            r#"{"a":null,"b":{"c":5,"x":{"y":null,"z":true}},"e":[3],"f":"s"}"#,
        );
        assert_eq!(t, r#"{"b":{"c":5,"d":2,"x":{"z":true}},"e":[3],"f":"s"}"#);
        assert_eq!(
            m,
            r#"{"b":{"c":{"timestamp":2},"d":{"timestamp":1},"x":{"z":{"timestamp":2}}},"e":[{"timestamp":2}],"f":{"timestamp":2}}"#
        );
        // An object replaces a scalar; a scalar replaces an object.
        let (t, _) = merged(r#"{"a":1,"b":{"c":1}}"#, r#"{"a":{"x":1},"b":7}"#);
        assert_eq!(t, r#"{"a":{"x":1},"b":7}"#);
    }

    #[test]
    fn delta_is_the_whole_recursive_difference() {
        let d = v(r#"{"p":"R","same":1,"n":{"a":1,"b":2},"new":{"k":1},"arr":[1]}"#);
        let r = v(r#"{"p":"G","same":1.0,"n":{"a":1,"b":3},"arr":[1],"only":0}"#);
        assert_eq!(
            to_string(&delta(&d, Some(&r)).unwrap()),
            r#"{"p":"R","n":{"b":2},"new":{"k":1}}"#
        );
        assert_eq!(delta(&v(r#"{"p":"R"}"#), Some(&v(r#"{"p":"R"}"#))), None);
        assert_eq!(delta(&v("{}"), None), None);
        let meta = meta_of(&d, 9);
        let dl = delta(&d, Some(&r)).unwrap();
        assert_eq!(
            to_string(&pick_meta(&dl, Some(&meta))),
            r#"{"p":{"timestamp":9},"n":{"b":{"timestamp":9}},"new":{"k":{"timestamp":9}}}"#
        );
    }

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&v("1")), 0);
        assert_eq!(depth(&v(r#"{"a":1}"#)), 1);
        assert_eq!(depth(&v(r#"{"a":{"b":[1]}}"#)), 3);
    }
}
