//! The Greengrass Discovery API, served by the core itself (issue 11): a device that was written
//! for Greengrass v1 (the guide's Module 4 `basicDiscovery.py`, the AWS IoT Device SDKs) asks
//! `GET /greengrass/discover/thing/<thingName>` over TLS with its own certificate and learns the
//! group, the core's addresses and the group CA, now from the core instead of the retired cloud
//! service.
//!
//! This file is sans-IO: [`respond`] turns the request bytes read so far and the peer's
//! certificate id into a [`Step`] (read more, or this reply); [`Directory`] holds what a reply
//! can tell. `server.rs` is the async shell (accept, TLS, bounds, counters).
//!
//! What the stock client needs (AWSIoTPythonSDK 1.5.4 `DiscoveryInfoProvider`, read from its
//! source): a status line starting `HTTP/1.1 <code> `, the body length in a header it finds with
//! a case-sensitive search for `content-length: ` (lowercase) — on every reply, errors too — and
//! the keys `GGGroups`, `GGGroupId`, `Cores`, `thingArn`, `Connectivity`, `Id`, `HostAddress`,
//! `PortNumber` (a number), `Metadata`, `CAs`. It keys dicts by `Id`, so ids are unique; the
//! guide's script names a file after `GGGroupId`, so the id is file-name safe. It sends no SNI
//! and `Host: <what it dialled>:<port>`; any Host is accepted.

pub mod server;

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::core::Connectivity;
use crate::json::{self, Value};
use crate::limits::{
    DISCOVERY_MAX_CONNECTIVITY, DISCOVERY_MAX_HEADERS, DISCOVERY_MAX_REQUEST_BYTES,
};

/// The request path before the thing name.
pub const PATH_PREFIX: &str = "/greengrass/discover/thing/";

/// Everything a discovery reply can tell, and who may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// `GGGroupId` (see [`group_id_for`]).
    pub group_id: String,
    /// The core's `thingArn`.
    pub core_thing_arn: String,
    /// The core's `Connectivity` list.
    pub connectivity: Vec<Connectivity>,
    /// `CAs`: PEM certificates (each ending in a newline).
    pub cas: Vec<String>,
    /// Certificate id → thing name: the group's devices and the core itself.
    pub members: HashMap<String, String>,
}

/// What a finished request amounted to (the status counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200: the document was sent.
    Served,
    /// 400: not HTTP, too large, a body, too many headers.
    BadRequest,
    /// 403: the certificate is in no group of this core, or it asks for another thing.
    Forbidden,
    /// 404: a path other than `/greengrass/discover/thing/<name>`.
    NotFound,
    /// 405: a method other than GET.
    BadMethod,
}

/// One reply: status, JSON body, and the reason logged (never sent: a refused client learns
/// only the short `message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub outcome: Outcome,
    pub reason: String,
}

/// What to do with the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The request head is not complete: read more (the shell bounds how long and how much).
    NeedMore,
    /// Send this and close.
    Reply(Reply),
}

impl Reply {
    fn error(status: u16, outcome: Outcome, message: &str, reason: String) -> Reply {
        Reply {
            status,
            body: json::to_string(&Value::Object(vec![(
                "message".into(),
                Value::String(message.into()),
            )])),
            outcome,
            reason,
        }
    }

    /// The reply on the wire: `HTTP/1.1`, lowercase headers (the SDK matches
    /// `content-length: ` case-sensitively), `connection: close` (one request per connection).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            self.body.len()
        );
        if self.status == 405 {
            out.push_str("allow: GET\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&self.body);
        out.into_bytes()
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// The reply to a plain-HTTP request on the HTTPS port (sent in the clear, then closed).
pub fn plain_http_reply() -> Vec<u8> {
    Reply::error(
        400,
        Outcome::BadRequest,
        "this is an HTTPS port: use https:// with a device certificate",
        String::new(),
    )
    .to_bytes()
}

/// The reply to `buf` (the request bytes read so far, at most
/// [`DISCOVERY_MAX_REQUEST_BYTES`] of them) from a peer whose client certificate has id
/// `cert_id`. Order of checks: a malformed request is 400 for anyone; then a certificate that is
/// no member gets 403 whatever it asked (so a stranger learns nothing, not even which paths
/// exist); then method (405), path (404), thing name (403).
pub fn respond(buf: &[u8], cert_id: &str, dir: &Directory) -> Step {
    let bad = |reason: String| {
        Step::Reply(Reply::error(
            400,
            Outcome::BadRequest,
            "bad request",
            reason,
        ))
    };
    let mut headers = [httparse::EMPTY_HEADER; DISCOVERY_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) if buf.len() <= DISCOVERY_MAX_REQUEST_BYTES => {}
        Ok(_) if buf.len() >= DISCOVERY_MAX_REQUEST_BYTES => {
            return bad(format!(
                "request head over {DISCOVERY_MAX_REQUEST_BYTES} bytes"
            ))
        }
        Ok(_) => return Step::NeedMore,
        Err(httparse::Error::TooManyHeaders) => {
            return bad(format!("more than {DISCOVERY_MAX_HEADERS} header lines"))
        }
        Err(e) => return bad(format!("not an HTTP/1.x request ({e})")),
    }
    let has_body = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length")
                && std::str::from_utf8(h.value).map(str::trim) != Ok("0"))
    });
    if has_body {
        return bad("a request body (a discovery request is a GET without one)".into());
    }
    let (method, path) = (req.method.unwrap_or(""), req.path.unwrap_or(""));
    let Some(member) = dir.members.get(cert_id) else {
        return Step::Reply(Reply::error(
            403,
            Outcome::Forbidden,
            "forbidden",
            format!(
                "certificate {} is not a device of this core's group",
                short(cert_id)
            ),
        ));
    };
    if method != "GET" {
        return Step::Reply(Reply::error(
            405,
            Outcome::BadMethod,
            "only GET is allowed",
            format!("{member}: method {method}"),
        ));
    }
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let thing = match path.strip_prefix(PATH_PREFIX) {
        Some(t) if !t.is_empty() && !t.contains('/') => t,
        _ => {
            return Step::Reply(Reply::error(
                404,
                Outcome::NotFound,
                "not found: the path is /greengrass/discover/thing/<thingName>",
                format!("{member}: path {}", printable(path)),
            ))
        }
    };
    if thing != member {
        return Step::Reply(Reply::error(
            403,
            Outcome::Forbidden,
            "forbidden: a device may discover only its own thing name",
            format!(
                "the certificate of {member} asked for thing {}",
                printable(thing)
            ),
        ));
    }
    Step::Reply(Reply {
        status: 200,
        body: document(dir),
        outcome: Outcome::Served,
        reason: format!("{member}: served"),
    })
}

/// The first 12 hex digits of a certificate id (enough to find it, short in a log line).
fn short(cert_id: &str) -> &str {
    cert_id.get(..12).unwrap_or(cert_id)
}

/// At most 128 characters of `s`, control characters escaped: request text is untrusted.
fn printable(s: &str) -> String {
    s.chars().take(128).flat_map(char::escape_debug).collect()
}

/// The discover response document: one group, one core (a group has exactly one), its
/// connectivity and CAs, with the keys spelled as the SDK reads them.
pub fn document(dir: &Directory) -> String {
    let s = |x: &str| Value::String(x.to_string());
    let connectivity = dir
        .connectivity
        .iter()
        .map(|c| {
            Value::Object(vec![
                ("Id".into(), s(&c.id)),
                ("HostAddress".into(), s(&c.host_address)),
                ("PortNumber".into(), Value::Int(i64::from(c.port_number))),
                ("Metadata".into(), s(&c.metadata)),
            ])
        })
        .collect();
    let core = Value::Object(vec![
        ("thingArn".into(), s(&dir.core_thing_arn)),
        ("Connectivity".into(), Value::Array(connectivity)),
    ]);
    let group = Value::Object(vec![
        ("GGGroupId".into(), s(&dir.group_id)),
        ("Cores".into(), Value::Array(vec![core])),
        (
            "CAs".into(),
            Value::Array(dir.cas.iter().map(|c| s(c)).collect()),
        ),
    ]);
    json::to_string(&Value::Object(vec![(
        "GGGroups".into(),
        Value::Array(vec![group]),
    )]))
}

/// `GGGroupId`: group.json's `GroupId` when it is safe in a file name (letters, digits, `-`,
/// `_`, `.`, not starting with `.`, at most 128), else a stable UUID-shaped id derived from the
/// core's thing name (the same core always answers the same id).
pub fn group_id_for(group_id: Option<&str>, core_thing_name: &str) -> String {
    if let Some(id) = group_id.filter(|id| file_name_safe(id)) {
        return id.to_string();
    }
    let seed = format!("sprig-group:{core_thing_name}");
    let hex = crate::pki::certificate_id(seed.as_bytes());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn file_name_safe(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The connectivity list when `sprig.connectivity` is not set: the host's interface addresses
/// (as [`crate::pki::interface_addrs`] lists them) with `port`, IPv4 first, then IPv6 without
/// link-local ones (unusable without a zone), then `127.0.0.1` for devices on the core itself;
/// ids `AUTOIP_<address>_<n>` (n counting from 0), as Greengrass's IP detector names them.
pub fn auto_connectivity(addrs: &[IpAddr], port: u16) -> Vec<Connectivity> {
    let usable = |a: &&IpAddr| match a {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    let v4 = addrs.iter().filter(usable).filter(|a| a.is_ipv4());
    let v6 = addrs.iter().filter(usable).filter(|a| a.is_ipv6());
    let mut list: Vec<IpAddr> = v4.chain(v6).copied().collect();
    list.dedup();
    list.truncate(DISCOVERY_MAX_CONNECTIVITY - 1);
    list.push(IpAddr::from([127, 0, 0, 1]));
    list.iter()
        .enumerate()
        .map(|(n, a)| Connectivity {
            id: format!("AUTOIP_{a}_{n}"),
            host_address: a.to_string(),
            port_number: port,
            metadata: String::new(),
        })
        .collect()
}

/// PEM `CERTIFICATE` blocks of `text`, each normalized to end in one newline.
pub fn pem_certificates(text: &str) -> Vec<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        let end = b + e + END.len();
        out.push(format!("{}\n", &rest[b..end]));
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const CORE: &str = "cccccccccccc0000000000000000000000000000000000000000000000000000";

    fn dir() -> Directory {
        Directory {
            group_id: "g-1".into(),
            core_thing_arn: "arn:aws:iot:us-east-1:1:thing/core".into(),
            connectivity: auto_connectivity(&["192.0.2.4".parse().unwrap()], 8883),
            cas: vec!["-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into()],
            members: [
                (DEV.to_string(), "sensor".to_string()),
                (CORE.to_string(), "core".to_string()),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn reply(req: &str, cert: &str) -> Reply {
        match respond(req.as_bytes(), cert, &dir()) {
            Step::Reply(r) => r,
            Step::NeedMore => panic!("NeedMore for {req:?}"),
        }
    }

    /// What AWSIoTPythonSDK 1.5.4 sends, byte for byte.
    fn sdk_request(thing: &str) -> String {
        format!("GET /greengrass/discover/thing/{thing} HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n\r\n")
    }

    #[test]
    fn the_sdk_request_from_a_member_gets_the_document() {
        let r = reply(&sdk_request("sensor"), DEV);
        assert_eq!((r.status, r.outcome), (200, Outcome::Served));
        let v = json::parse(r.body.as_bytes(), 1 << 20, 16).unwrap();
        let g = &v.get("GGGroups").unwrap().as_array().unwrap()[0];
        assert_eq!(g.get("GGGroupId").unwrap().as_str(), Some("g-1"));
        let core = &g.get("Cores").unwrap().as_array().unwrap()[0];
        assert_eq!(
            core.get("thingArn").unwrap().as_str(),
            Some("arn:aws:iot:us-east-1:1:thing/core")
        );
        let c = core.get("Connectivity").unwrap().as_array().unwrap();
        assert_eq!(c[0].get("Id").unwrap().as_str(), Some("AUTOIP_192.0.2.4_0"));
        assert_eq!(c[0].get("HostAddress").unwrap().as_str(), Some("192.0.2.4"));
        assert_eq!(c[0].get("PortNumber").unwrap().as_i64(), Some(8883));
        assert_eq!(c[0].get("Metadata").unwrap().as_str(), Some(""));
        assert_eq!(c[1].get("Id").unwrap().as_str(), Some("AUTOIP_127.0.0.1_1"));
        assert_eq!(g.get("CAs").unwrap().as_array().unwrap().len(), 1);
        // The core itself may discover too, with its own name.
        assert_eq!(reply(&sdk_request("core"), CORE).status, 200);
        // Query strings are ignored; HTTP/1.0 and any Host are fine.
        let q = "GET /greengrass/discover/thing/sensor?x=1 HTTP/1.0\r\n\r\n";
        assert_eq!(reply(q, DEV).status, 200);
    }

    #[test]
    fn wire_form_is_what_the_sdk_parses() {
        let r = reply(&sdk_request("sensor"), DEV);
        let bytes = String::from_utf8(r.to_bytes()).unwrap();
        assert!(bytes.starts_with("HTTP/1.1 200 OK\r\n"), "{bytes}");
        let (head, body) = bytes.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("\r\ncontent-length: {}\r", body.len())));
        // Errors carry content-length too (the SDK reads it before looking at the status).
        let e = String::from_utf8(reply(&sdk_request("x"), "f".repeat(64).as_str()).to_bytes())
            .unwrap();
        assert!(e.starts_with("HTTP/1.1 403 Forbidden\r\n") && e.contains("content-length: "));
        let p = String::from_utf8(plain_http_reply()).unwrap();
        assert!(p.starts_with("HTTP/1.1 400 ") && p.contains("https://"));
    }

    #[test]
    fn refusals() {
        let stranger = "d".repeat(64);
        // A stranger learns nothing: 403 for its own name, another's, a bad path or method.
        for req in [
            sdk_request("sensor"),
            sdk_request("stranger"),
            "GET /other HTTP/1.1\r\n\r\n".into(),
            "DELETE /x HTTP/1.1\r\n\r\n".into(),
        ] {
            let r = reply(&req, &stranger);
            assert_eq!((r.status, r.outcome), (403, Outcome::Forbidden), "{req}");
            assert!(!r.body.contains("sensor") && !r.body.contains("core"));
        }
        let r = reply(&sdk_request("core"), DEV);
        assert_eq!((r.status, r.outcome), (403, Outcome::Forbidden));
        assert!(r.reason.contains("sensor") && r.reason.contains("core"));
        for (req, status) in [
            ("POST /greengrass/discover/thing/sensor HTTP/1.1\r\n\r\n", 405),
            ("GET /greengrass/discover/thing/ HTTP/1.1\r\n\r\n", 404),
            ("GET /greengrass/discover/thing/a/b HTTP/1.1\r\n\r\n", 404),
            ("GET /greengrass/discover/thingsensor HTTP/1.1\r\n\r\n", 404),
            ("GET / HTTP/1.1\r\n\r\n", 404),
            ("GARBAGE\x01\r\n\r\n", 400),
            (
                "GET /greengrass/discover/thing/sensor HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc",
                400,
            ),
            (
                "GET /greengrass/discover/thing/sensor HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
                400,
            ),
        ] {
            assert_eq!(reply(req, DEV).status, status, "{req:?}");
        }
        let many: String = (0..=DISCOVERY_MAX_HEADERS)
            .map(|i| format!("x{i}: y\r\n"))
            .collect();
        let r = reply(&format!("GET / HTTP/1.1\r\n{many}\r\n"), DEV);
        assert_eq!(r.status, 400);
        assert!(r.reason.contains("header lines"), "{}", r.reason);
    }

    #[test]
    fn partial_requests_wait_and_oversized_ones_are_refused() {
        let full = sdk_request("sensor");
        for cut in 0..full.len() {
            assert_eq!(
                respond(&full.as_bytes()[..cut], DEV, &dir()),
                Step::NeedMore
            );
        }
        let big = format!(
            "GET / HTTP/1.1\r\nx: {}",
            "a".repeat(DISCOVERY_MAX_REQUEST_BYTES)
        );
        let r = reply(&big[..DISCOVERY_MAX_REQUEST_BYTES], DEV);
        assert_eq!((r.status, r.outcome), (400, Outcome::BadRequest));
        assert!(r.reason.contains("bytes"));
    }

    #[test]
    fn group_ids_are_file_name_safe_and_stable() {
        assert_eq!(group_id_for(Some("4e5b-11ab"), "core"), "4e5b-11ab");
        let derived = group_id_for(None, "core");
        assert_eq!(derived.len(), 36);
        assert_eq!(derived, group_id_for(Some("../etc/passwd"), "core"));
        assert_ne!(derived, group_id_for(None, "other-core"));
        assert!(file_name_safe(&derived));
    }

    #[test]
    fn auto_connectivity_skips_loopback_and_link_local_and_keeps_ids_unique() {
        let addrs: Vec<IpAddr> = ["fe80::1", "2001:db8::5", "10.0.0.2", "127.0.0.1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let ids: Vec<String> = auto_connectivity(&addrs, 8883)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            ids,
            [
                "AUTOIP_10.0.0.2_0",
                "AUTOIP_2001:db8::5_1",
                "AUTOIP_127.0.0.1_2"
            ]
        );
        let many: Vec<IpAddr> = (0..100u8).map(|i| IpAddr::from([10, 0, 1, i])).collect();
        assert_eq!(
            auto_connectivity(&many, 1).len(),
            DISCOVERY_MAX_CONNECTIVITY
        );
    }

    #[test]
    fn pem_blocks_are_extracted() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\r\n\
                    -----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----";
        let certs = pem_certificates(text);
        assert_eq!(certs.len(), 2);
        assert!(certs[1].contains("BB==") && certs[1].ends_with("-----\n"));
    }
}
