//! A small, bounded JSON reader and compact writer (RFC 8259).
//!
//! Hand-written rather than serde: config errors must name `line:column` and the key path
//! (`coreThing.keepAlive`), objects must keep key order and reject duplicate keys, and the
//! shadow service needs a DOM. Bounded: the caller gives the largest document and the deepest
//! nesting accepted; the reader never panics and never recurses deeper than `max_depth`.

use std::fmt;

/// A parsed JSON value. Objects keep their keys in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number written without fraction or exponent that fits an `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

/// What went wrong while reading a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonErrorKind {
    /// The document is bigger than the caller's limit (bytes found, limit).
    TooLarge(usize, usize),
    /// Nesting deeper than the caller's limit.
    TooDeep(usize),
    InvalidUtf8,
    UnexpectedEnd,
    /// A byte that cannot start or continue what was expected here.
    Unexpected(String),
    InvalidNumber,
    InvalidEscape,
    /// A raw control character inside a string.
    ControlCharacter,
    /// A `\u` escape that is half of a surrogate pair without the other half.
    LoneSurrogate,
    DuplicateKey(String),
    /// Text after the top-level value.
    TrailingCharacters,
}

/// A JSON syntax error: where (1-based line and column, in characters) and under which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub kind: JsonErrorKind,
    pub line: usize,
    pub column: usize,
    /// Key path of the value being read (`a.b[3]`), empty at the top level.
    pub path: String,
}

impl fmt::Display for JsonErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonErrorKind::TooLarge(n, max) => {
                write!(
                    f,
                    "document is {n} bytes, larger than the limit of {max} bytes"
                )
            }
            JsonErrorKind::TooDeep(max) => write!(f, "nested deeper than {max} levels"),
            JsonErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8"),
            JsonErrorKind::UnexpectedEnd => f.write_str("unexpected end of input"),
            JsonErrorKind::Unexpected(what) => write!(f, "unexpected {what}"),
            JsonErrorKind::InvalidNumber => f.write_str("invalid number"),
            JsonErrorKind::InvalidEscape => f.write_str("invalid escape sequence in string"),
            JsonErrorKind::ControlCharacter => f.write_str("control character in string"),
            JsonErrorKind::LoneSurrogate => f.write_str("unpaired UTF-16 surrogate in \\u escape"),
            JsonErrorKind::DuplicateKey(k) => write!(f, "duplicate key \"{k}\""),
            JsonErrorKind::TrailingCharacters => f.write_str("characters after the JSON value"),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.kind
        )?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path)?;
        }
        Ok(())
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON document of at most `max_bytes` bytes, nested at most `max_depth` levels.
/// A leading UTF-8 byte order mark is skipped.
pub fn parse(bytes: &[u8], max_bytes: usize, max_depth: usize) -> Result<Value, JsonError> {
    if bytes.len() > max_bytes {
        return Err(JsonError {
            kind: JsonErrorKind::TooLarge(bytes.len(), max_bytes),
            line: 1,
            column: 1,
            path: String::new(),
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let (line, column) = line_col(bytes, e.valid_up_to());
            return Err(JsonError {
                kind: JsonErrorKind::InvalidUtf8,
                line,
                column,
                path: String::new(),
            });
        }
    };
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        max_depth,
        path: Vec::new(),
    };
    let result = p.value(0).and_then(|v| {
        p.skip_ws();
        if p.pos < p.s.len() {
            Err(JsonErrorKind::TrailingCharacters)
        } else {
            Ok(v)
        }
    });
    result.map_err(|kind| p.error(kind))
}

/// 1-based line and character column of byte `offset`.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let column = 1 + before[line_start..]
        .iter()
        .filter(|&&b| (b & 0xC0) != 0x80)
        .count();
    (line, column)
}

enum Seg {
    Key(String),
    Index(usize),
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// Where we are, for error messages.
    path: Vec<Seg>,
}

impl Parser<'_> {
    fn error(&self, kind: JsonErrorKind) -> JsonError {
        let (line, column) = line_col(self.s, self.pos);
        JsonError {
            kind,
            line,
            column,
            path: render_path(&self.path),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn unexpected(&self) -> JsonErrorKind {
        match self.peek() {
            None => JsonErrorKind::UnexpectedEnd,
            Some(b) if b.is_ascii_graphic() => {
                JsonErrorKind::Unexpected(format!("'{}'", b as char))
            }
            Some(b) => JsonErrorKind::Unexpected(format!("byte 0x{b:02x}")),
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonErrorKind> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonErrorKind> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonErrorKind> {
        for &b in word {
            self.expect(b)?;
        }
        Ok(v)
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonErrorKind> {
        if depth > self.max_depth {
            return Err(JsonErrorKind::TooDeep(self.max_depth));
        }
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key_pos = self.pos;
            let key = self.string()?;
            // Linear scan for small objects; a set once they grow (a hostile object can be huge).
            let dup = if members.len() < 16 {
                members.iter().any(|(k, _)| *k == key)
            } else {
                if seen.is_empty() {
                    seen.extend(members.iter().map(|(k, _)| k.clone()));
                }
                !seen.insert(key.clone())
            };
            if dup {
                self.pos = key_pos;
                return Err(JsonErrorKind::DuplicateKey(key));
            }
            self.skip_ws();
            self.expect(b':')?;
            self.path.push(Seg::Key(key));
            let v = self.value(depth)?;
            let key = match self.path.pop() {
                Some(Seg::Key(k)) => k,
                _ => String::new(), // not reached: the key was pushed just above
            };
            members.push((key, v));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonErrorKind> {
        if depth > self.max_depth {
            return Err(JsonErrorKind::TooDeep(self.max_depth));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.path.push(Seg::Index(items.len()));
            let v = self.value(depth)?;
            self.path.pop();
            items.push(v);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn number(&mut self) -> Result<Value, JsonErrorKind> {
        let start = self.pos;
        let mut integral = true;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(JsonErrorKind::InvalidNumber),
        }
        if self.peek() == Some(b'.') {
            integral = false;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonErrorKind::InvalidNumber);
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            integral = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(JsonErrorKind::InvalidNumber);
            }
            self.digits();
        }
        // The slice is ASCII digits and signs, so it is valid UTF-8.
        let text = std::str::from_utf8(&self.s[start..self.pos])
            .map_err(|_| JsonErrorKind::InvalidNumber)?;
        if integral {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::Int(i));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => {
                self.pos = start;
                Err(JsonErrorKind::InvalidNumber)
            }
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonErrorKind> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b) => (b as char)
                    .to_digit(16)
                    .ok_or(JsonErrorKind::InvalidEscape)?,
                None => return Err(JsonErrorKind::UnexpectedEnd),
            };
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// Reads a string starting at its opening quote; returns it unescaped.
    fn string(&mut self) -> Result<String, JsonErrorKind> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Runs end on ASCII bytes, so they are whole UTF-8 sequences of valid input.
            out.push_str(
                std::str::from_utf8(&self.s[run_start..self.pos])
                    .map_err(|_| JsonErrorKind::InvalidUtf8)?,
            );
            match self.peek() {
                None => return Err(JsonErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        None => return Err(JsonErrorKind::UnexpectedEnd),
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            let escape_start = self.pos - 2;
                            let c = self.unicode_escape().inspect_err(|_| {
                                if self.pos < self.s.len() {
                                    self.pos = escape_start;
                                }
                            })?;
                            out.push(c);
                            continue;
                        }
                        Some(_) => return Err(JsonErrorKind::InvalidEscape),
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => return Err(JsonErrorKind::ControlCharacter),
            }
        }
    }

    /// After `\u`: one code unit, or a surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char, JsonErrorKind> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.s.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(JsonErrorKind::LoneSurrogate);
                }
                self.pos += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(JsonErrorKind::LoneSurrogate);
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(JsonErrorKind::LoneSurrogate),
            c => c,
        };
        char::from_u32(code).ok_or(JsonErrorKind::LoneSurrogate)
    }
}

fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

impl Value {
    /// The member `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an integer, if it is a number with no fractional part.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    /// "a string", "an object", ...: for messages that say what was found.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// A short rendering for error messages: scalars in full (strings cut at 60
    /// characters), containers by kind.
    pub fn describe(&self) -> String {
        match self {
            Value::Array(_) | Value::Object(_) => self.kind_name().to_string(),
            Value::String(s) if s.chars().count() > 60 => {
                let cut: String = s.chars().take(60).collect();
                format!("{}...", to_string(&Value::String(cut)))
            }
            v => to_string(v),
        }
    }
}

/// Writes `v` as compact JSON (no spaces). Non-finite floats are written as `null`.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut String, v: &Value) {
    use std::fmt::Write;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Float(_) => out.push_str("null"),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Value, JsonError> {
        parse(s.as_bytes(), 1 << 20, 32)
    }

    fn kind(s: &[u8]) -> JsonErrorKind {
        parse(s, 1 << 20, 32).unwrap_err().kind
    }

    #[test]
    fn scalars() {
        assert_eq!(p("null"), Ok(Value::Null));
        assert_eq!(p(" true "), Ok(Value::Bool(true)));
        assert_eq!(p("false"), Ok(Value::Bool(false)));
        assert_eq!(p("0"), Ok(Value::Int(0)));
        assert_eq!(p("-12"), Ok(Value::Int(-12)));
        assert_eq!(p("1.5"), Ok(Value::Float(1.5)));
        assert_eq!(p("1e3"), Ok(Value::Float(1000.0)));
        assert_eq!(p("-0.5E-1"), Ok(Value::Float(-0.05)));
        assert_eq!(
            p("9223372036854775808"),
            Ok(Value::Float(9223372036854775808.0))
        );
        assert_eq!(p("\"a\""), Ok(Value::String("a".into())));
    }

    #[test]
    fn strings_unescaped() {
        assert_eq!(
            p(r#""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00""#),
            Ok(Value::String("\"\\/\u{8}\u{c}\n\r\tAé€😀".into()))
        );
        assert_eq!(p("\"ü ß\""), Ok(Value::String("ü ß".into())));
    }

    #[test]
    fn objects_keep_order() {
        let v = p(r#"{"b":1,"a":[true,null,{}],"c":{"d":"x"}}"#).unwrap();
        let keys: Vec<&str> = v
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(
            v.get("c").and_then(|c| c.get("d")).and_then(Value::as_str),
            Some("x")
        );
        assert_eq!(
            v.get("a").and_then(Value::as_array).map(|a| a.len()),
            Some(3)
        );
        assert_eq!(v.get("zz"), None);
    }

    #[test]
    fn errors_have_position_and_path() {
        let e = p("{\n  \"a\": {\n    \"b\": [1, 2,, 3]\n  }\n}").unwrap_err();
        assert_eq!(e.kind, JsonErrorKind::Unexpected("','".into()));
        assert_eq!((e.line, e.column), (3, 16));
        assert_eq!(e.path, "a.b[2]");
        assert_eq!(
            e.to_string(),
            "line 3, column 16: unexpected ',' (at a.b[2])"
        );
        // Trailing comma in an object, the guide's example of invalid JSON.
        let e = p("{\"a\": 1,\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 1));
        // Column counts characters, not bytes.
        let e = p("\"éé\" x").unwrap_err();
        assert_eq!(
            (e.kind, e.line, e.column),
            (JsonErrorKind::TrailingCharacters, 1, 6)
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        for s in [
            "",
            " ",
            "{",
            "[",
            "[1,",
            "{\"a\"",
            "{\"a\":",
            "\"abc",
            "tru",
            "nul",
            "[1]]",
            "{} {}",
            "{a:1}",
            "{'a':1}",
            "[01]",
            "[1.]",
            "[.5]",
            "[+1]",
            "[1e]",
            "[-]",
            "NaN",
            "[Infinity]",
            "1e999",
        ] {
            assert!(p(s).is_err(), "{s:?} should be rejected");
        }
        assert_eq!(kind(b"\"\\x\""), JsonErrorKind::InvalidEscape);
        assert_eq!(kind(b"\"\\u12g4\""), JsonErrorKind::InvalidEscape);
        assert_eq!(kind(b"\"a\nb\""), JsonErrorKind::ControlCharacter);
        assert_eq!(kind(b"\"\\ud800\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind(b"\"\\ud800\\u0041\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(kind(b"\"\\udc00\""), JsonErrorKind::LoneSurrogate);
        assert_eq!(
            kind(b"{\"a\":1,\"a\":2}"),
            JsonErrorKind::DuplicateKey("a".into())
        );
        assert_eq!(kind(b"[1] x"), JsonErrorKind::TrailingCharacters);
    }

    #[test]
    fn duplicate_keys_in_big_objects() {
        let mut s = String::from("{");
        for i in 0..100 {
            s.push_str(&format!("\"k{i}\":{i},"));
        }
        s.push_str("\"k50\":0}");
        assert_eq!(
            kind(s.as_bytes()),
            JsonErrorKind::DuplicateKey("k50".into())
        );
    }

    #[test]
    fn truncated_input_never_panics() {
        let doc = br#"{"coreThing":{"keepAlive":600,"s":"a\u00e9\ud83d\ude00\n","l":[1,2.5e3,true,null]}}"#;
        assert!(parse(doc, 1024, 32).is_ok());
        for n in 0..doc.len() {
            assert!(
                parse(&doc[..n], 1024, 32).is_err(),
                "prefix of {n} bytes parsed"
            );
        }
    }

    #[test]
    fn binary_input_is_rejected() {
        assert_eq!(kind(b"{\"a\":\"\xff\"}"), JsonErrorKind::InvalidUtf8);
        let e = parse(b"{\n\"a\": \"\xc3\x28\"}", 100, 4).unwrap_err();
        assert_eq!(
            (e.kind, e.line, e.column),
            (JsonErrorKind::InvalidUtf8, 2, 7)
        );
        // Pseudo-random bytes: any result is fine as long as nothing panics.
        let mut x: u32 = 12345;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b"{}[],:\"\\u0123456789.eE-+truefalsnl \n\xff"[(x >> 16) as usize % 37]
                })
                .collect();
            let _ = parse(&bytes, 1024, 8);
        }
    }

    #[test]
    fn limits() {
        assert_eq!(
            parse(b"[1, 2]", 5, 4).unwrap_err().kind,
            JsonErrorKind::TooLarge(6, 5)
        );
        assert!(parse(b"[[[1]]]", 100, 3).is_ok());
        assert_eq!(
            parse(b"[[[[1]]]]", 100, 3).unwrap_err().kind,
            JsonErrorKind::TooDeep(3)
        );
        assert_eq!(
            parse(b"{\"a\":{\"b\":{}}}", 100, 2).unwrap_err().kind,
            JsonErrorKind::TooDeep(2)
        );
        // Far deeper than the stack could take if the limit were not enforced.
        let deep = "[".repeat(1_000_000);
        assert_eq!(
            parse(deep.as_bytes(), 2_000_000, 32).unwrap_err().kind,
            JsonErrorKind::TooDeep(32)
        );
        // A byte order mark is skipped.
        assert_eq!(parse(b"\xEF\xBB\xBF{}", 10, 1), Ok(Value::Object(vec![])));
    }

    #[test]
    fn writer_round_trips() {
        let docs = [
            r#"{"b":1,"a":[true,null,{},[]],"c":{"d":"x\"y\\z\n\u0001é😀"},"f":-2.5,"i":-7}"#,
            r#"[]"#,
            r#""\u001f""#,
        ];
        for d in docs {
            let v = p(d).unwrap();
            let s = to_string(&v);
            assert_eq!(p(&s).unwrap(), v);
        }
        assert_eq!(
            to_string(&p(r#"{ "a" : [ 1 , 2 ] }"#).unwrap()),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(to_string(&Value::String("\u{1}".into())), r#""\u0001""#);
        assert_eq!(to_string(&Value::Float(f64::NAN)), "null");
    }

    #[test]
    fn helpers() {
        assert_eq!(Value::Float(5.0).as_i64(), Some(5));
        assert_eq!(Value::Float(5.5).as_i64(), None);
        assert_eq!(Value::String("x".repeat(100)).describe().len(), 65);
        assert_eq!(Value::Int(3).describe(), "3");
        assert_eq!(Value::Object(vec![]).describe(), "an object");
    }
}
