//! HTTPS downloads for Jobs deployments (S3 presigned URLs are the expected case): one GET,
//! streamed to a file while its SHA-256 is computed, at most `max` bytes.
//!
//! Sans-IO parts: [`Url::parse`], [`request`], [`Head::parse`] (HTTP/1.1 response head with
//! httparse; `200` only, `Content-Length` or read to the end; redirects and chunked bodies are
//! refused with a message). The async part runs on the event loop over the cloud link's TLS
//! and proxy code (`cloud::task::tls_connect`): rustls, roots from `crypto.caPath` plus the
//! system bundle, through `coreThing.networkProxy` unless noProxyAddresses exempts the host.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;

use crate::cloud::tls::{self, Wire};
use crate::config::NetworkProxy;

/// An `https://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?}: only https:// URLs are accepted"))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') || authority.is_empty() {
            return Err(format!("{url:?}: no host, or user info (not accepted)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            _ => (authority, 443),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("{url:?}: spaces or control characters in the path"));
        }
        Ok(Url {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
            path,
        })
    }
}

/// The GET request.
pub fn request(url: &Url) -> Vec<u8> {
    let host = if url.port == 443 {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sprig/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// What the response head says about the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head (the body starts after them).
    pub len: usize,
    /// `Content-Length`, or `None`: read until the server closes.
    pub content_length: Option<u64>,
}

impl Head {
    /// `Ok(None)` while the head is incomplete.
    pub fn parse(buf: &[u8]) -> Result<Option<Head>, String> {
        let mut headers = [httparse::EMPTY_HEADER; 48];
        let mut r = httparse::Response::new(&mut headers);
        let len = match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("bad HTTP response: {e}")),
        };
        let code = r.code.unwrap_or(0);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if code != 200 {
            let why = match code {
                300..=399 => format!(
                    " (a redirect to {:?}; redirects are not followed: give the final URL)",
                    header("location").unwrap_or_default()
                ),
                _ => String::new(),
            };
            return Err(format!("HTTP {code} {}{why}", r.reason.unwrap_or("")));
        }
        if header("transfer-encoding").is_some_and(|t| !t.eq_ignore_ascii_case("identity")) {
            return Err("the server sent a chunked body, which is not supported".into());
        }
        let content_length = match header("content-length") {
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            ),
            None => None,
        };
        Ok(Some(Head {
            len,
            content_length,
        }))
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into `dest` (replaced), at most `max` bytes, giving up when nothing arrives
/// for `idle`; returns the SHA-256 (hex) of what was written.
pub async fn download(
    url: &Url,
    dest: &Path,
    max: u64,
    idle: Duration,
    ca: &Path,
    proxy: Option<&NetworkProxy>,
) -> Result<String, String> {
    let timed = |what: &'static str| async move {
        Timer::after(idle).await;
        Err::<usize, String>(format!(
            "nothing received for {} s ({what})",
            idle.as_secs()
        ))
    };
    let cfg = tls::proxy_client_config(&tls::with_system_bundle(ca))?;
    let mut conn = future::or(
        crate::cloud::task::tls_connect(&url.host, url.port, cfg, proxy, ca),
        async {
            Timer::after(idle).await;
            Err(format!("no connection within {} s", idle.as_secs()))
        },
    )
    .await?;
    conn.write_all(&request(url))
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut file = std::fs::File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 16 * 1024];
    let mut head_buf: Vec<u8> = Vec::new();
    let mut head: Option<Head> = None;
    let mut got: u64 = 0;
    loop {
        let n = future::or(
            async {
                conn.read(&mut buf)
                    .await
                    .map_err(|e| format!("reading: {e}"))
            },
            timed("reading"),
        )
        .await?;
        let mut body: &[u8] = &buf[..n];
        if head.is_none() {
            if n == 0 {
                return Err("the server closed the connection before answering".into());
            }
            head_buf.extend_from_slice(body);
            if head_buf.len() > 64 * 1024 {
                return Err("the response head is over 64 KiB".into());
            }
            match Head::parse(&head_buf)? {
                None => continue,
                Some(h) => {
                    if h.content_length.is_some_and(|l| l > max) {
                        return Err(format!(
                            "the file is {} bytes; at most {max} are accepted",
                            h.content_length.unwrap_or(0)
                        ));
                    }
                    body = &head_buf[h.len..];
                    head = Some(h);
                }
            }
        } else if n == 0 {
            break;
        }
        got += body.len() as u64;
        if got > max {
            return Err(format!("more than {max} bytes; refused"));
        }
        sha.update(body);
        file.write_all(body)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        let expected = head.as_ref().and_then(|h| h.content_length);
        if expected.is_some_and(|l| got >= l) {
            break;
        }
        if !head_buf.is_empty() {
            head_buf = Vec::new();
        }
    }
    if let Some(l) = head.as_ref().and_then(|h| h.content_length) {
        if got != l {
            return Err(format!("the connection ended after {got} of {l} bytes"));
        }
    }
    file.sync_all()
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    Ok(hex(sha.finish().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("https://b.s3.amazonaws.com/k/g.json?X-Amz-Signature=ab").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("b.s3.amazonaws.com", 443, "/k/g.json?X-Amz-Signature=ab")
        );
        let u = Url::parse("https://localhost:8443").unwrap();
        assert_eq!((u.port, u.path.as_str()), (8443, "/"));
        for bad in [
            "http://x/",
            "https://",
            "https://u@h/",
            "https://h:99999/",
            "https://h/a b",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert!(String::from_utf8(request(&u))
            .unwrap()
            .starts_with("GET / HTTP/1.1\r\nHost: localhost:8443\r\n"));
    }

    #[test]
    fn heads() {
        assert_eq!(Head::parse(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
        let h = Head::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.content_length), (38, Some(5)));
        let e = Head::parse(b"HTTP/1.1 302 Found\r\nLocation: https://x/\r\n\r\n").unwrap_err();
        assert!(e.contains("redirects are not followed"), "{e}");
        assert!(Head::parse(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            .unwrap_err()
            .contains("403"));
        assert!(
            Head::parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap_err()
                .contains("chunked")
        );
    }
}
