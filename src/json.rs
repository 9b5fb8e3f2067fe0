//! A small, bounded JSON reader and compact writer (RFC 8259).
//!
//! Hand-written rather than serde: config errors must name `line:column` and the key path
//! (`coreThing.keepAlive`), objects must keep key order and reject duplicate keys, and the
//! shadow service needs a DOM. Bounded: the caller gives the largest document and the deepest
//! nesting accepted; the reader never panics and never recurses deeper than `max_depth`.
//!
//! One parser, two shapes. [`Doc::parse`] reads a document into a compact read-only tree: one
//! flat array of 8-byte nodes in document order (a tag, an offset into the source or a
//! container's end, a length or member count); strings without escapes stay slices of the
//! source, strings with escapes are unescaped into one side buffer. [`Node`] is a `Copy`
//! handle into it. The config readers use it (group.json: 200 devices and 10,000
//! subscriptions, ARCHITECTURE.md "The group-parse transient"). [`parse`] builds the owned,
//! mutable [`Value`] from that tree, for the shadow service and other small documents.

use std::fmt;
use std::hash::BuildHasher;

use crate::limits::JSON_TREE_MAX_BYTES;

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

/// Parses one JSON document of at most `max_bytes` bytes, nested at most `max_depth` levels,
/// into an owned [`Value`] (built from the [`Doc`] tree). A leading UTF-8 byte order mark is
/// skipped.
pub fn parse(bytes: &[u8], max_bytes: usize, max_depth: usize) -> Result<Value, JsonError> {
    Doc::parse(bytes, max_bytes, max_depth).map(|d| d.root().to_value())
}

// Node tags, in the top 4 bits of `Raw::a`; the low 28 bits are an offset (scalars, strings)
// or the index after the subtree (arrays, objects).
const T_NULL: u32 = 0;
const T_TRUE: u32 = 1;
const T_FALSE: u32 = 2;
/// A number that is `Value::Int`: `a` = offset of its text in the source, `b` = length.
const T_INT: u32 = 3;
/// Any other number, as `T_INT`.
const T_FLOAT: u32 = 4;
/// A string without escapes: `a` = offset in the source, `b` = byte length.
const T_STR: u32 = 5;
/// A string with escapes, unescaped: `a` = offset in the side buffer, `b` = byte length.
const T_STR_ESC: u32 = 6;
/// `a` = index after the last node of the array, `b` = number of elements.
const T_ARRAY: u32 = 7;
/// `a` = index after the object's last node, `b` = number of members. Each member is two
/// nodes: the key (`T_STR`/`T_STR_ESC`), then the value.
const T_OBJECT: u32 = 8;
const TAG_SHIFT: u32 = 28;
const LOW_MASK: u32 = (1 << TAG_SHIFT) - 1;

/// One node of a [`Doc`]: 8 bytes, no padding.
#[derive(Clone, Copy, Debug)]
struct Raw {
    a: u32,
    b: u32,
}

impl Raw {
    fn new(tag: u32, low: usize, b: usize) -> Raw {
        // Both fit: the source is under JSON_TREE_MAX_BYTES (2^28) bytes and every node,
        // string byte and side-buffer byte comes from at least one source byte.
        Raw {
            a: (tag << TAG_SHIFT) | (low as u32 & LOW_MASK),
            b: b as u32,
        }
    }
    fn tag(self) -> u32 {
        self.a >> TAG_SHIFT
    }
    fn low(self) -> usize {
        (self.a & LOW_MASK) as usize
    }
}

/// A parsed document: a compact read-only tree over the source bytes it borrows.
#[derive(Debug)]
pub struct Doc<'s> {
    text: &'s str,
    nodes: Vec<Raw>,
    /// Strings that had escapes, unescaped, one after another.
    side: String,
}

impl<'s> Doc<'s> {
    /// Parses one JSON document of at most `max_bytes` bytes (and at most
    /// [`JSON_TREE_MAX_BYTES`]), nested at most `max_depth` levels. A leading UTF-8 byte order
    /// mark is skipped. The tree borrows `bytes`.
    pub fn parse(
        bytes: &'s [u8],
        max_bytes: usize,
        max_depth: usize,
    ) -> Result<Doc<'s>, JsonError> {
        let max_bytes = max_bytes.min(JSON_TREE_MAX_BYTES - 1);
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
        // Sized once from a first pass: the 10,000-element arrays of a large group never make
        // the node array double (and copy) while it is filled.
        let (nodes, side) = capacity(text.as_bytes());
        let mut p = Parser {
            text,
            s: text.as_bytes(),
            pos: 0,
            max_depth,
            nodes: Vec::with_capacity(nodes),
            side: String::with_capacity(side),
            path: Vec::new(),
            hasher: None,
        };
        let result = p.value(0).and_then(|()| {
            p.skip_ws();
            if p.pos < p.s.len() {
                Err(JsonErrorKind::TrailingCharacters)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => Ok(Doc {
                text,
                nodes: p.nodes,
                side: p.side,
            }),
            Err(kind) => Err(p.error(kind)),
        }
    }

    /// The top-level value.
    pub fn root(&self) -> Node<'_> {
        Node { doc: self, i: 0 }
    }

    /// Heap bytes the tree holds (nodes and side buffer), not counting the source.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Raw>() + self.side.capacity()
    }

    fn raw(&self, i: usize) -> Raw {
        // Every index handed out is a node's; a missing one reads as null, never a panic.
        self.nodes.get(i).copied().unwrap_or(Raw { a: 0, b: 0 })
    }

    /// The index after node `i`'s subtree.
    fn next(&self, i: usize) -> usize {
        let r = self.raw(i);
        match r.tag() {
            T_ARRAY | T_OBJECT => r.low(),
            _ => i + 1,
        }
    }

    /// The string (or key) at node `i`.
    fn str_at(&self, i: usize) -> Option<&str> {
        let r = self.raw(i);
        let (start, len) = (r.low(), r.b as usize);
        match r.tag() {
            T_STR => self.text.get(start..start + len),
            T_STR_ESC => self.side.get(start..start + len),
            _ => None,
        }
    }

    /// The source text of the number at node `i`.
    fn number_text(&self, i: usize) -> &str {
        let r = self.raw(i);
        self.text.get(r.low()..r.low() + r.b as usize).unwrap_or("")
    }
}

/// Nodes and side-buffer bytes a document needs at most. Outside strings every node but the
/// root follows a `,`, `:`, `[` or `{` (a key follows `{` or `,`, its value `:`); a string with
/// an escape needs at most its raw length in the side buffer.
fn capacity(s: &[u8]) -> (usize, usize) {
    let (mut nodes, mut side, mut i) = (1usize, 0usize, 0usize);
    while i < s.len() {
        match s[i] {
            b'"' => {
                let start = i + 1;
                let mut escaped = false;
                i += 1;
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' {
                        escaped = true;
                        i += 1;
                    }
                    i += 1;
                }
                if escaped {
                    side += i.min(s.len()) - start;
                }
            }
            b',' | b':' | b'[' | b'{' => nodes += 1,
            _ => {}
        }
        i += 1;
    }
    // Every node takes at least one source byte: a bound for hostile input too.
    (nodes.min(s.len() + 1), side)
}

/// A value in a [`Doc`]: a small `Copy` handle.
#[derive(Clone, Copy)]
pub struct Node<'d> {
    doc: &'d Doc<'d>,
    i: usize,
}

impl fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_value(), f)
    }
}

impl<'d> Node<'d> {
    fn raw(self) -> Raw {
        self.doc.raw(self.i)
    }

    /// The member `key` of an object; `None` for a missing key or a non-object.
    pub fn get(self, key: &str) -> Option<Node<'d>> {
        self.as_object()?.find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn as_str(self) -> Option<&'d str> {
        self.doc.str_at(self.i)
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.raw().tag() {
            T_TRUE => Some(true),
            T_FALSE => Some(false),
            _ => None,
        }
    }

    pub fn is_null(self) -> bool {
        self.raw().tag() == T_NULL
    }

    /// The value as an integer, if it is a number with no fractional part (as
    /// [`Value::as_i64`]).
    pub fn as_i64(self) -> Option<i64> {
        self.number().and_then(|v| v.as_i64())
    }

    /// A number as `Value::Int` or `Value::Float`; `None` for anything else.
    fn number(self) -> Option<Value> {
        // The text was checked while parsing: an `i64` for T_INT, a finite `f64` for T_FLOAT.
        let text = self.doc.number_text(self.i);
        match self.raw().tag() {
            T_INT => text.parse().ok().map(Value::Int),
            T_FLOAT => text.parse().ok().map(Value::Float),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(self) -> Option<Items<'d>> {
        let r = self.raw();
        (r.tag() == T_ARRAY).then_some(Items {
            doc: self.doc,
            at: self.i + 1,
            left: r.b as usize,
        })
    }

    /// The members of an object, in document order.
    pub fn as_object(self) -> Option<Members<'d>> {
        let r = self.raw();
        (r.tag() == T_OBJECT).then_some(Members {
            doc: self.doc,
            at: self.i + 1,
            left: r.b as usize,
        })
    }

    /// A scalar as a [`Value`]; containers read as `Null` (see [`Node::to_value`]).
    fn scalar(self) -> Value {
        let r = self.raw();
        match r.tag() {
            T_TRUE => Value::Bool(true),
            T_FALSE => Value::Bool(false),
            T_INT | T_FLOAT => self.number().unwrap_or(Value::Null),
            T_STR | T_STR_ESC => Value::String(self.as_str().unwrap_or_default().to_string()),
            _ => Value::Null,
        }
    }

    /// An owned copy of this value and everything under it.
    pub fn to_value(self) -> Value {
        if let Some(items) = self.as_array() {
            Value::Array(items.map(Node::to_value).collect())
        } else if let Some(members) = self.as_object() {
            Value::Object(
                members
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            )
        } else {
            self.scalar()
        }
    }

    /// "a string", "an object", ...: for messages that say what was found.
    pub fn kind_name(self) -> &'static str {
        match self.raw().tag() {
            T_NULL => "null",
            T_TRUE | T_FALSE => "a boolean",
            T_INT | T_FLOAT => "a number",
            T_STR | T_STR_ESC => "a string",
            T_ARRAY => "an array",
            _ => "an object",
        }
    }

    /// A short rendering for error messages, as [`Value::describe`].
    pub fn describe(self) -> String {
        match self.raw().tag() {
            T_ARRAY | T_OBJECT => self.kind_name().to_string(),
            _ => self.scalar().describe(),
        }
    }
}

/// The elements of an array [`Node`]; knows its length.
#[derive(Clone)]
pub struct Items<'d> {
    doc: &'d Doc<'d>,
    at: usize,
    left: usize,
}

impl<'d> Iterator for Items<'d> {
    type Item = Node<'d>;
    fn next(&mut self) -> Option<Node<'d>> {
        if self.left == 0 {
            return None;
        }
        let n = Node {
            doc: self.doc,
            i: self.at,
        };
        self.at = self.doc.next(self.at);
        self.left -= 1;
        Some(n)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Items<'_> {}

/// The (key, value) members of an object [`Node`], in document order; knows its length.
#[derive(Clone)]
pub struct Members<'d> {
    doc: &'d Doc<'d>,
    at: usize,
    left: usize,
}

impl<'d> Iterator for Members<'d> {
    type Item = (&'d str, Node<'d>);
    fn next(&mut self) -> Option<(&'d str, Node<'d>)> {
        if self.left == 0 {
            return None;
        }
        let key = self.doc.str_at(self.at).unwrap_or_default();
        let v = Node {
            doc: self.doc,
            i: self.at + 1,
        };
        self.at = self.doc.next(self.at + 1);
        self.left -= 1;
        Some((key, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Members<'_> {}

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
    /// The key node of the member being read.
    Key(usize),
    Index(usize),
}

/// Objects with at least this many members check duplicate keys with a set of key hashes.
const LINEAR_KEY_CHECK: usize = 16;

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    max_depth: usize,
    nodes: Vec<Raw>,
    side: String,
    /// Where we are, for error messages.
    path: Vec<Seg>,
    /// Keyed at random once per document (no crafted collisions), for big objects.
    hasher: Option<std::collections::hash_map::RandomState>,
}

impl Parser<'_> {
    fn error(&self, kind: JsonErrorKind) -> JsonError {
        let (line, column) = line_col(self.s, self.pos);
        JsonError {
            kind,
            line,
            column,
            path: self.render_path(),
        }
    }

    fn render_path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(i) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(self.key(*i));
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

    /// The string at node `i` (a key) while the tree is being built.
    fn key(&self, i: usize) -> &str {
        let Some(r) = self.nodes.get(i) else {
            return "";
        };
        let (start, end) = (r.low(), r.low() + r.b as usize);
        match r.tag() {
            T_STR => self.text.get(start..end),
            _ => self.side.get(start..end),
        }
        .unwrap_or_default()
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

    fn value(&mut self, depth: usize) -> Result<(), JsonErrorKind> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true", T_TRUE),
            Some(b'f') => self.literal(b"false", T_FALSE),
            Some(b'n') => self.literal(b"null", T_NULL),
            _ => Err(self.unexpected()),
        }
    }

    fn literal(&mut self, word: &[u8], tag: u32) -> Result<(), JsonErrorKind> {
        for &b in word {
            self.expect(b)?;
        }
        self.nodes.push(Raw::new(tag, 0, 0));
        Ok(())
    }

    /// Fills in a container's end and count once its last node is written.
    fn close(&mut self, at: usize, tag: u32, count: usize) {
        let end = self.nodes.len();
        if let Some(r) = self.nodes.get_mut(at) {
            *r = Raw::new(tag, end, count);
        }
    }

    /// Whether the key at node `key` was already a key of the object at node `obj` (whose
    /// first `count` members are complete).
    fn seen_before(&self, obj: usize, count: usize, key: usize) -> bool {
        let name = self.key(key);
        let mut at = obj + 1;
        for _ in 0..count {
            if self.key(at) == name {
                return true;
            }
            // The value after the key: a container's end, else the next node.
            let v = self.nodes.get(at + 1).copied();
            at = match v.map(|r| r.tag()) {
                Some(T_ARRAY | T_OBJECT) => v.map_or(at + 2, |r| r.low()),
                _ => at + 2,
            };
        }
        false
    }

    fn object(&mut self, depth: usize) -> Result<(), JsonErrorKind> {
        if depth > self.max_depth {
            return Err(JsonErrorKind::TooDeep(self.max_depth));
        }
        self.pos += 1; // '{'
        let me = self.nodes.len();
        self.nodes.push(Raw::new(T_OBJECT, 0, 0));
        let mut count = 0;
        // Hashes of the keys so far, once the object is big (a hostile object can be huge).
        let mut hashes = std::collections::HashSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.close(me, T_OBJECT, 0);
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let key_pos = self.pos;
            let key = self.nodes.len();
            self.string()?;
            let dup = if count < LINEAR_KEY_CHECK {
                self.seen_before(me, count, key)
            } else {
                let h = self
                    .hasher
                    .get_or_insert_with(std::collections::hash_map::RandomState::new)
                    .clone();
                if hashes.is_empty() {
                    let mut at = me + 1;
                    for _ in 0..count {
                        hashes.insert(h.hash_one(self.key(at)));
                        at = match self.nodes.get(at + 1).copied() {
                            Some(r) if matches!(r.tag(), T_ARRAY | T_OBJECT) => r.low(),
                            _ => at + 2,
                        };
                    }
                }
                // A hash seen before is a duplicate only if the key really is one.
                !hashes.insert(h.hash_one(self.key(key))) && self.seen_before(me, count, key)
            };
            if dup {
                self.pos = key_pos;
                return Err(JsonErrorKind::DuplicateKey(self.key(key).to_string()));
            }
            self.skip_ws();
            self.expect(b':')?;
            self.path.push(Seg::Key(key));
            self.value(depth)?;
            self.path.pop();
            count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.close(me, T_OBJECT, count);
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), JsonErrorKind> {
        if depth > self.max_depth {
            return Err(JsonErrorKind::TooDeep(self.max_depth));
        }
        self.pos += 1; // '['
        let me = self.nodes.len();
        self.nodes.push(Raw::new(T_ARRAY, 0, 0));
        let mut count = 0;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.close(me, T_ARRAY, 0);
            return Ok(());
        }
        loop {
            self.path.push(Seg::Index(count));
            self.value(depth)?;
            self.path.pop();
            count += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.close(me, T_ARRAY, count);
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn number(&mut self) -> Result<(), JsonErrorKind> {
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
        let len = self.pos - start;
        // The slice is ASCII digits and signs.
        let text = self
            .text
            .get(start..self.pos)
            .ok_or(JsonErrorKind::InvalidNumber)?;
        if integral && text.parse::<i64>().is_ok() {
            self.nodes.push(Raw::new(T_INT, start, len));
            return Ok(());
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => {
                self.nodes.push(Raw::new(T_FLOAT, start, len));
                Ok(())
            }
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

    /// Reads a string starting at its opening quote into one node: a slice of the source when
    /// it has no escapes, else unescaped into the side buffer.
    fn string(&mut self) -> Result<(), JsonErrorKind> {
        self.pos += 1; // '"'
        let start = self.pos;
        // Side-buffer offset once an escape was met.
        let mut side_start = None;
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Runs end on ASCII bytes, so they are whole UTF-8 sequences of valid input.
            let run = self
                .text
                .get(run_start..self.pos)
                .ok_or(JsonErrorKind::InvalidUtf8)?;
            if side_start.is_some() {
                self.side.push_str(run);
            }
            match self.peek() {
                None => return Err(JsonErrorKind::UnexpectedEnd),
                Some(b'"') => {
                    self.pos += 1;
                    let node = match side_start {
                        None => Raw::new(T_STR, start, self.pos - 1 - start),
                        Some(at) => Raw::new(T_STR_ESC, at, self.side.len() - at),
                    };
                    self.nodes.push(node);
                    return Ok(());
                }
                Some(b'\\') => {
                    if side_start.is_none() {
                        side_start = Some(self.side.len());
                        let before = self
                            .text
                            .get(start..self.pos)
                            .ok_or(JsonErrorKind::InvalidUtf8)?;
                        self.side.push_str(before);
                    }
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
                            self.side.push(c);
                            continue;
                        }
                        Some(_) => return Err(JsonErrorKind::InvalidEscape),
                    };
                    self.pos += 1;
                    self.side.push(c);
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
    fn tree_handles() {
        assert_eq!(std::mem::size_of::<Raw>(), 8);
        let text = br#"{"a":[1,2.5,"x\ny",[]],"k\u00e9":{"b":null,"c":true},"n":-3}"#;
        let doc = Doc::parse(text, 1024, 8).unwrap();
        let root = doc.root();
        let a: Vec<Node> = root.get("a").and_then(Node::as_array).unwrap().collect();
        assert_eq!(a.len(), 4);
        assert_eq!(
            (a[0].as_i64(), a[1].as_i64(), a[2].as_i64()),
            (Some(1), None, None)
        );
        assert_eq!(a[2].as_str(), Some("x\ny"));
        assert_eq!(a[3].as_array().map(|i| i.len()), Some(0));
        let keys: Vec<&str> = root.as_object().unwrap().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "k\u{e9}", "n"]);
        let inner = root.get("k\u{e9}").unwrap();
        assert!(inner.get("b").unwrap().is_null());
        assert_eq!(inner.get("c").and_then(Node::as_bool), Some(true));
        assert_eq!(root.get("n").and_then(Node::as_i64), Some(-3));
        assert!(root.get("zz").is_none() && a[0].get("a").is_none());
        assert_eq!(
            (root.kind_name(), a[1].describe()),
            ("an object", "2.5".into())
        );
        assert_eq!(root.to_value(), parse(text, 1024, 8).unwrap());
        // Only the two strings with escapes are copied; the rest are slices of the source.
        assert_eq!(doc.side.len(), "x\nyk\u{e9}".len());
        let plain = Doc::parse(br#"{"a":["b","c"]}"#, 100, 4).unwrap();
        assert_eq!(plain.side.capacity(), 0);
        assert_eq!(plain.nodes.len(), plain.nodes.capacity());
    }

    #[test]
    fn escaped_keys_in_paths_and_duplicates() {
        let e = p("{\"k\\u00e9\": [1,,2]}").unwrap_err();
        assert_eq!(e.path, "k\u{e9}[1]");
        let mut s = String::from("{");
        for i in 0..40 {
            s.push_str(&format!("\"k{i}\":{i},"));
        }
        s.push_str(r#""k\u0035\u0030":0,"k\u0033\u0039":1}"#);
        assert_eq!(
            kind(s.as_bytes()),
            JsonErrorKind::DuplicateKey("k39".into())
        );
        assert_eq!(
            kind(br#"{"a":1,"\u0061":2}"#),
            JsonErrorKind::DuplicateKey("a".into())
        );
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
