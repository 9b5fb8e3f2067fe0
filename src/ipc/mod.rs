//! The Lambda IPC protocol, sans-IO (the shared spec's protocols/ipc.md): bytes of one HTTP/1.1
//! request → a typed [`Request`] (parsed with httparse, bounded), and [`response`] bytes back.
//! The server loop that feeds it and acts on it is `lambda::shell`.
//!
//! Paths: `/2016-11-01/functions/{arn}` (invoke / get result), `.../work` (get work / post
//! result), `.../initialized` (a worker's start report).

use crate::json::{self, Value};
use crate::limits;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `POST BASE`: invoke `arn`.
    Invoke,
    /// `GET BASE` + `X-Amz-InvocationId`: wait for that invocation's result.
    GetResult,
    /// `GET BASE/work`: the worker of `arn` asks for its next invocation (long poll).
    GetWork,
    /// `POST BASE/work` + `X-Amz-InvocationId`: a result (or a handled error).
    PostResult,
    /// `PUT BASE/initialized`: the worker reports its start.
    Initialized,
}

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub call: Call,
    /// The function ARN from the path.
    pub arn: String,
    /// `Authorization`.
    pub token: Option<String>,
    /// `X-Amz-InvocationId`.
    pub invocation_id: Option<String>,
    /// `X-Amz-Client-Context` (base64 JSON), as sent.
    pub client_context: Option<String>,
    /// `X-Amz-Invocation-Type: Event`.
    pub event: bool,
    /// `X-Amz-Function-Error`.
    pub function_error: Option<String>,
    /// The client asked to close after this request (`Connection: close`).
    pub close: bool,
    pub body: Vec<u8>,
}

/// Result of feeding the bytes received so far.
#[derive(Debug)]
pub enum Parse {
    /// Not a whole request yet: read more.
    Partial,
    /// A request and the number of bytes it used.
    Done(Request, usize),
}

/// A refused request: the HTTP status to answer and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcError {
    pub status: u16,
    pub message: String,
}

impl IpcError {
    pub fn new(status: u16, message: impl Into<String>) -> IpcError {
        IpcError {
            status,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for IpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

const BASE: &str = "/2016-11-01/functions/";

/// Parses one request from the start of `buf`. Errors are final: answer with the status and
/// close the connection (the stream can no longer be framed).
pub fn parse(buf: &[u8]) -> Result<Parse, IpcError> {
    let mut headers = [httparse::EMPTY_HEADER; limits::IPC_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits::IPC_MAX_HEAD_BYTES {
                return Err(IpcError::new(431, "request headers too large"));
            }
            return Ok(Parse::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(IpcError::new(
                431,
                format!("more than {} headers", limits::IPC_MAX_HEADERS),
            ))
        }
        Err(e) => return Err(IpcError::new(400, format!("malformed request: {e}"))),
    };
    if head_len > limits::IPC_MAX_HEAD_BYTES {
        return Err(IpcError::new(431, "request headers too large"));
    }
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("");
    let mut r = Request {
        call: Call::Invoke,
        arn: String::new(),
        token: None,
        invocation_id: None,
        client_context: None,
        event: false,
        function_error: None,
        close: req.version == Some(0),
        body: Vec::new(),
    };
    let mut length: Option<usize> = None;
    for h in req.headers.iter() {
        let value = || String::from_utf8_lossy(h.value).trim().to_string();
        let name = h.name;
        if name.eq_ignore_ascii_case("authorization") {
            r.token = Some(value());
        } else if name.eq_ignore_ascii_case("x-amz-invocationid") {
            r.invocation_id = Some(value());
        } else if name.eq_ignore_ascii_case("x-amz-client-context") {
            r.client_context = Some(value());
        } else if name.eq_ignore_ascii_case("x-amz-invocation-type") {
            r.event = value() == "Event";
        } else if name.eq_ignore_ascii_case("x-amz-function-error") {
            r.function_error = Some(value()).filter(|v| !v.is_empty());
        } else if name.eq_ignore_ascii_case("connection") {
            r.close = value().eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(IpcError::new(
                411,
                "chunked bodies are not accepted; send Content-Length",
            ));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| IpcError::new(400, "bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(IpcError::new(400, "conflicting Content-Length headers"));
            }
            length = Some(n);
        }
    }
    let length = length.unwrap_or(0);
    if length > limits::IPC_MAX_BODY_BYTES {
        return Err(IpcError::new(
            413,
            format!(
                "body of {length} bytes; allowed at most {} (a payload is at most {} bytes)",
                limits::IPC_MAX_BODY_BYTES,
                limits::MAX_PAYLOAD_BYTES
            ),
        ));
    }
    if buf.len() < head_len + length {
        return Ok(Parse::Partial);
    }
    let (arn, call) = route(method, path)?;
    r.arn = arn;
    r.call = call;
    match call {
        Call::GetResult | Call::PostResult if r.invocation_id.is_none() => {
            return Err(IpcError::new(400, "X-Amz-InvocationId is required"))
        }
        _ => {}
    }
    r.body = buf[head_len..head_len + length].to_vec();
    Ok(Parse::Done(r, head_len + length))
}

/// (ARN, call) from the method and path; 404/405 otherwise.
fn route(method: &str, path: &str) -> Result<(String, Call), IpcError> {
    let rest = path.strip_prefix(BASE).ok_or_else(|| {
        IpcError::new(
            404,
            format!("unknown path {path:?}; expected {BASE}<function ARN>"),
        )
    })?;
    let rest = percent_decode(rest)
        .ok_or_else(|| IpcError::new(400, "bad percent-encoding in the path"))?;
    let (arn, tail) = if let Some(a) = rest.strip_suffix("/work") {
        (a, "work")
    } else if let Some(a) = rest.strip_suffix("/initialized") {
        (a, "initialized")
    } else {
        (rest.as_str(), "")
    };
    if arn.is_empty() || arn.contains('/') || !arn.starts_with("arn:") {
        return Err(IpcError::new(404, format!("unknown path {path:?}")));
    }
    let call = match (method, tail) {
        ("POST", "") => Call::Invoke,
        ("GET", "") => Call::GetResult,
        ("GET", "work") => Call::GetWork,
        ("POST", "work") => Call::PostResult,
        ("PUT", "initialized") => Call::Initialized,
        _ => {
            return Err(IpcError::new(
                405,
                format!("{method} is not allowed on {path:?}"),
            ))
        }
    };
    Ok((arn.to_string(), call))
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The reason phrase of the statuses sprig sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An HTTP/1.1 response with `headers` and `body`.
pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(status)).as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// An error response: body `{"errorMessage": ...}` (what the SDK surfaces in IPCException).
pub fn error_response(e: &IpcError, close: bool) -> Vec<u8> {
    let body = json::to_string(&Value::Object(vec![(
        "errorMessage".into(),
        Value::String(e.message.clone()),
    )]));
    response(
        e.status,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
        close,
    )
}

/// The fields of a client context's `custom` object sprig reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Custom {
    pub subject: Option<String>,
    pub queue_full_policy: Option<String>,
}

/// Decodes `X-Amz-Client-Context` (base64 of `{"custom": {...}}`).
pub fn decode_context(b64: &str) -> Result<Custom, IpcError> {
    let bytes = base64_decode(b64)
        .ok_or_else(|| IpcError::new(400, "X-Amz-Client-Context is not base64"))?;
    let v = json::parse(&bytes, limits::IPC_MAX_HEAD_BYTES, limits::MAX_JSON_DEPTH)
        .map_err(|e| IpcError::new(400, format!("X-Amz-Client-Context is not JSON: {e}")))?;
    let custom = v.get("custom");
    let field = |k: &str| {
        custom
            .and_then(|c| c.get(k))
            .and_then(|s| s.as_str())
            .map(String::from)
    };
    Ok(Custom {
        subject: field("subject"),
        queue_full_policy: field("queueFullPolicy"),
    })
}

/// The client context the core sends with a message routed to a function:
/// `{"custom": {"subject": TOPIC}}`, base64.
pub fn encode_context(subject: &str) -> String {
    let v = Value::Object(vec![(
        "custom".into(),
        Value::Object(vec![("subject".into(), Value::String(subject.into()))]),
    )]);
    crate::cloud::proxy::base64(json::to_string(&v).as_bytes())
}

/// Standard base64 (RFC 4648) with optional padding; None on any other character.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:hello:3";

    fn done(raw: &[u8]) -> (Request, usize) {
        match parse(raw).unwrap() {
            Parse::Done(r, n) => (r, n),
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn parses_each_call() {
        let raw = format!("POST {BASE}{ARN} HTTP/1.1\r\nAuthorization: tok\r\nX-Amz-Invocation-Type: Event\r\nX-Amz-Client-Context: e30=\r\nContent-Length: 3\r\n\r\nabcGET");
        let (r, n) = done(raw.as_bytes());
        assert_eq!((r.call, r.arn.as_str(), r.event), (Call::Invoke, ARN, true));
        assert_eq!(r.token.as_deref(), Some("tok"));
        assert_eq!(r.body, b"abc");
        assert_eq!(&raw.as_bytes()[n..], b"GET");
        let get = format!("GET {BASE}{ARN}/work HTTP/1.1\r\n\r\n");
        assert_eq!(done(get.as_bytes()).0.call, Call::GetWork);
        let post = format!("POST {BASE}{ARN}/work HTTP/1.1\r\nX-Amz-InvocationId: 7\r\nX-Amz-Function-Error: Handled\r\n\r\n");
        let (r, _) = done(post.as_bytes());
        assert_eq!(
            (r.call, r.function_error.as_deref()),
            (Call::PostResult, Some("Handled"))
        );
        let init = format!("PUT {BASE}{ARN}/initialized HTTP/1.1\r\n\r\n");
        assert_eq!(done(init.as_bytes()).0.call, Call::Initialized);
        let res = format!(
            "GET {BASE}{}%3A3 HTTP/1.1\r\nX-Amz-InvocationId: 9\r\n\r\n",
            &ARN[..ARN.len() - 2]
        );
        let (r, _) = done(res.as_bytes());
        assert_eq!((r.call, r.arn.as_str()), (Call::GetResult, ARN));
    }

    #[test]
    fn partial_until_whole_body() {
        let raw = format!("POST {BASE}{ARN} HTTP/1.1\r\nContent-Length: 5\r\n\r\nab");
        assert!(matches!(parse(raw.as_bytes()), Ok(Parse::Partial)));
        assert!(matches!(parse(b"GET /2016"), Ok(Parse::Partial)));
    }

    #[test]
    fn refusals_are_typed() {
        let status = |raw: String| parse(raw.as_bytes()).unwrap_err().status;
        assert_eq!(status("GET /other HTTP/1.1\r\n\r\n".to_string()), 404);
        assert_eq!(status(format!("DELETE {BASE}{ARN} HTTP/1.1\r\n\r\n")), 405);
        assert_eq!(
            status(format!(
                "POST {BASE}{ARN} HTTP/1.1\r\nContent-Length: 999999\r\n\r\n"
            )),
            413
        );
        assert_eq!(
            status(format!("POST {BASE}{ARN}/work HTTP/1.1\r\n\r\n")),
            400
        );
        assert_eq!(
            status(format!(
                "POST {BASE}{ARN} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            411
        );
        assert_eq!(status("\x01\x02 nonsense\r\n\r\n".into()), 400);
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET {BASE}{ARN} HTTP/1.1\r\n{many}\r\n")),
            431
        );
        let big = "a".repeat(limits::IPC_MAX_HEAD_BYTES + 1);
        assert_eq!(status(format!("GET {BASE}{ARN} HTTP/1.1\r\nX: {big}")), 431);
    }

    #[test]
    fn client_context_round_trip() {
        let c = decode_context(&encode_context("a/b")).unwrap();
        assert_eq!(c.subject.as_deref(), Some("a/b"));
        let sdk = crate::cloud::proxy::base64(
            br#"{"custom": {"source": "x", "subject": "t", "queueFullPolicy": "AllOrError"}}"#,
        );
        let c = decode_context(&sdk).unwrap();
        assert_eq!(c.queue_full_policy.as_deref(), Some("AllOrError"));
        assert_eq!(decode_context("!!").unwrap_err().status, 400);
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
    }

    #[test]
    fn response_bytes() {
        let r = response(202, &[("X-Amz-InvocationId", "1")], b"", false);
        assert_eq!(
            r,
            b"HTTP/1.1 202 Accepted\r\nX-Amz-InvocationId: 1\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
