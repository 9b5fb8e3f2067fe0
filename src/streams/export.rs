//! HTTP export (`HTTPConfig`): POST a stream's messages to a URI, in order, resuming from the
//! last exported sequence number (kept in the stream's metadata) after outages and restarts.
//!
//! Sans-IO: [`Uri::parse`], [`due`] (batch size / batch interval), [`bodies`]
//! (RAW_NOT_BATCHED: one POST per message, the payload as body; JSON_BATCHED: one POST per
//! batch, a JSON list of `{streamName, sequenceNumber, ingestTime, payload (base64)}`),
//! [`request`] and [`parse_status`]. The task [`run`] walks the exports one POST at a time
//! (plain TCP or rustls), backs off after failures (`STREAM_EXPORT_BACKOFF_*`), and sleeps until
//! an append or the next due time.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::future;

use super::now_ms;
use super::server::Inner;
use super::store::Message;
use super::wire::{ExportFormat, HttpExport};
use crate::cloud::link::Backoff;
use crate::cloud::tls::{TlsWire, Wire};
use crate::json::{self, Value};
use crate::limits;

/// The waiter id of the exporter in [`super::server::Changed`].
const EXPORTER: u64 = u64::MAX;

/// An `http://` or `https://` URI, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Uri {
    pub fn parse(uri: &str) -> Result<Uri, String> {
        let (tls, rest) = if let Some(r) = uri.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = uri.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!(
                "{uri:?}: only http:// and https:// URIs are supported"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let p = authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| format!("{uri:?}: bad port"))?;
                (&authority[..i], p)
            }
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() || authority.contains('@') || path.contains(['\r', '\n', ' ']) {
            return Err(format!(
                "{uri:?}: not a usable URI (host, no user info, no spaces)"
            ));
        }
        Ok(Uri {
            tls,
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }
}

/// Whether to export now: `Some(0)` yes, `Some(ms)` in `ms`, `None` nothing pending. A batch
/// goes when `batchSize` messages wait, or when the oldest waiting one is `batchIntervalMillis`
/// old; without an interval, whatever waits goes at once.
pub fn due(pending: u64, oldest_ingest_ms: u64, h: &HttpExport, now_ms: u64) -> Option<u64> {
    if pending == 0 {
        return None;
    }
    match h.batch_interval_ms {
        _ if pending >= u64::from(h.batch_size) => Some(0),
        None => Some(0),
        Some(i) => Some((oldest_ingest_ms + i).saturating_sub(now_ms)),
    }
}

/// How long to wait after sending `bytes` so the average stays within `kbps` kilobits per
/// second (`STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH`), ms.
pub fn pace_ms(bytes: usize, kbps: Option<u64>) -> u64 {
    kbps.map_or(0, |k| (bytes as u64 * 8).div_ceil(k.max(1)))
}

/// The request bodies for a batch (see the module comment).
pub fn bodies(format: ExportFormat, stream: &str, msgs: &[Message]) -> Vec<Vec<u8>> {
    match format {
        ExportFormat::RawNotBatched => msgs.iter().map(|m| m.payload.clone()).collect(),
        ExportFormat::JsonBatched => {
            let list = msgs
                .iter()
                .map(|m| {
                    Value::Object(vec![
                        ("streamName".into(), Value::String(stream.to_owned())),
                        ("sequenceNumber".into(), Value::Int(m.seq as i64)),
                        ("ingestTime".into(), Value::Int(m.ingest_ms as i64)),
                        (
                            "payload".into(),
                            Value::String(crate::cloud::proxy::base64(&m.payload)),
                        ),
                    ])
                })
                .collect();
            vec![json::to_string(&Value::Array(list)).into_bytes()]
        }
    }
}

/// The bytes of one POST.
pub fn request(uri: &Uri, format: ExportFormat, body: &[u8]) -> Vec<u8> {
    let ctype = match format {
        ExportFormat::RawNotBatched => "application/octet-stream",
        ExportFormat::JsonBatched => "application/json",
    };
    let default_port = if uri.tls { 443 } else { 80 };
    let host = if uri.port == default_port {
        uri.host.clone()
    } else {
        format!("{}:{}", uri.host, uri.port)
    };
    let mut r = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: sprig-stream-manager\r\n\r\n",
        uri.path,
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The status code of a response head, `Ok(None)` while incomplete.
pub fn parse_status(head: &[u8]) -> Result<Option<u16>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok(resp.code),
        Ok(httparse::Status::Partial)
            if head.len() >= limits::STREAM_EXPORT_MAX_RESPONSE_HEAD_BYTES =>
        {
            Err("response head too long".into())
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("bad HTTP response: {e}")),
    }
}

async fn exchange<W: Wire>(w: &mut W, req: &[u8]) -> Result<u16, String> {
    w.write_all(req).await.map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = w.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(code) = parse_status(&head)? {
            return Ok(code);
        }
    }
}

async fn post(
    uri: &Uri,
    tls: &mut Option<Arc<rustls::ClientConfig>>,
    req: &[u8],
) -> Result<(), String> {
    let addrs = crate::cloud::dns::resolve(&uri.host, uri.port).await?;
    let addr = addrs.first().ok_or("no address")?;
    let tcp = Async::<std::net::TcpStream>::connect(*addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let code = if uri.tls {
        if tls.is_none() {
            // The system bundle, or the file SSL_CERT_FILE names (the OpenSSL convention).
            let bundle = std::env::var_os("SSL_CERT_FILE")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
            *tls = Some(crate::cloud::tls::proxy_client_config(&[&bundle])?);
        }
        let cfg = tls.clone().ok_or("no TLS configuration")?;
        let mut w = TlsWire::connect(tcp, cfg, &uri.host)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(&mut w, req).await?
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, req).await?
    };
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("the endpoint answered HTTP {code}"))
    }
}

struct Retry {
    stream: String,
    id: String,
    backoff: Backoff,
    at_ms: u64,
}

/// Exports every stream's HTTP exports until cancelled.
pub(super) async fn run(inner: Rc<Inner>) {
    let mut retries: Vec<Retry> = Vec::new();
    let mut tls = None;
    loop {
        let seen = inner.changed.version();
        let now = now_ms();
        let mut wake: Option<u64> = None;
        let mut worked = false;
        let mut jobs = inner.store.borrow().http_exports();
        // Lower `priority` first (unset last); the sort is stable, so creation order otherwise.
        jobs.sort_by_key(|j| j.1.priority);
        retries.retain(|r| {
            jobs.iter()
                .any(|(s, h)| *s == r.stream && h.identifier == r.id)
        });
        for (stream, h) in jobs.iter().filter(|j| !j.1.disabled) {
            let r = retries
                .iter()
                .position(|r| r.stream == *stream && r.id == h.identifier);
            if let Some(at) = r.map(|i| retries[i].at_ms).filter(|at| *at > now) {
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            let (from, batch) = {
                let store = inner.store.borrow();
                let Some(p) = store.export_progress(stream, &h.identifier) else {
                    continue;
                };
                let from = p.next;
                let pending = store.available(stream, p.next);
                let first = match store.read(stream, p.next, 1, 1) {
                    Ok(m) if !m.is_empty() => m[0].ingest_ms,
                    _ => continue,
                };
                match due(pending, first, h, now) {
                    None => continue,
                    Some(0) => (
                        from,
                        store
                            .read(
                                stream,
                                from,
                                u64::from(h.batch_size),
                                limits::STREAM_MAX_READ_RESPONSE_BYTES,
                            )
                            .unwrap_or_default(),
                    ),
                    Some(ms) => {
                        wake = Some(wake.map_or(now + ms, |w| w.min(now + ms)));
                        continue;
                    }
                }
            };
            if batch.is_empty() {
                continue;
            }
            // Checked at create; an error here waits for the next append (no spinning).
            let uri = match Uri::parse(&h.uri) {
                Ok(u) => u,
                Err(e) => {
                    inner
                        .store
                        .borrow_mut()
                        .export_result(stream, &h.identifier, now, Err(e));
                    continue;
                }
            };
            worked = true;
            if batch[0].seq > from {
                log::warn!(target: "GGStreamManager",
                    "stream manager: export {} of stream {stream:?}: messages {from}..{} were dropped (OverwriteOldestData or TTL) before they were exported",
                    h.identifier,
                    batch[0].seq - 1
                );
            }
            let bodies = bodies(h.format, stream, &batch);
            let per_body = if h.format == ExportFormat::RawNotBatched {
                1
            } else {
                batch.len()
            };
            let mut sent = 0usize;
            let mut failure = None;
            for b in &bodies {
                let req = request(&uri, h.format, b);
                let timeout = async {
                    Timer::after(Duration::from_secs(limits::STREAM_EXPORT_TIMEOUT_SECS)).await;
                    Err(format!(
                        "no answer within {} s",
                        limits::STREAM_EXPORT_TIMEOUT_SECS
                    ))
                };
                match future::or(post(&uri, &mut tls, &req), timeout).await {
                    Ok(()) => {
                        sent += per_body;
                        let pause = pace_ms(b.len(), inner.settings.export_kbps);
                        if pause > 0 {
                            Timer::after(Duration::from_millis(pause)).await;
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let mut store = inner.store.borrow_mut();
            let now = now_ms();
            if sent > 0 {
                let last = &batch[sent - 1];
                let bytes = batch[..sent].iter().map(|m| m.payload.len() as u64).sum();
                store.export_result(
                    stream,
                    &h.identifier,
                    now,
                    Ok((last.seq + 1, sent as u64, bytes)),
                );
            }
            match failure {
                None => {
                    if let Some(i) = r {
                        retries.swap_remove(i);
                    }
                }
                Some(e) => {
                    let msg = format!("POST {}: {e}", h.uri);
                    let mut b = [0u8; 4];
                    let _ =
                        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
                    let i = r.unwrap_or_else(|| {
                        log::warn!(target: "GGStreamManager",
                            "stream manager: export {} of stream {stream:?}: {msg}; retrying with back-off", h.identifier
                        );
                        retries.push(Retry {
                            stream: stream.clone(),
                            id: h.identifier.clone(),
                            backoff: Backoff::new(
                                Duration::from_millis(limits::STREAM_EXPORT_BACKOFF_MIN_MS),
                                Duration::from_millis(limits::STREAM_EXPORT_BACKOFF_MAX_MS),
                            ),
                            at_ms: 0,
                        });
                        retries.len() - 1
                    });
                    let delay = retries[i].backoff.next_delay(u32::from_le_bytes(b));
                    retries[i].at_ms = now + delay.as_millis() as u64;
                    store.export_result(stream, &h.identifier, now, Err(msg));
                }
            }
        }
        if worked {
            continue;
        }
        let sleep = async {
            match wake {
                Some(at) => Timer::after(Duration::from_millis(at.saturating_sub(now_ms()))).await,
                None => future::pending::<std::time::Instant>().await,
            };
        };
        future::or(inner.changed.wait(EXPORTER, seen), sleep).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(batch: u32, interval: Option<u64>) -> HttpExport {
        HttpExport {
            identifier: "w".into(),
            uri: "http://h/".into(),
            batch_size: batch,
            batch_interval_ms: interval,
            start_sequence_number: 0,
            disabled: false,
            format: ExportFormat::RawNotBatched,
            priority: 11,
        }
    }

    #[test]
    fn batch_size_or_interval_whichever_first() {
        assert_eq!(due(0, 0, &h(1, None), 5), None);
        assert_eq!(due(3, 0, &h(10, None), 5), Some(0), "no interval: at once");
        assert_eq!(
            due(10, 1_000, &h(10, Some(60_000)), 2_000),
            Some(0),
            "full batch"
        );
        assert_eq!(due(3, 1_000, &h(10, Some(60_000)), 2_000), Some(59_000));
        assert_eq!(
            due(3, 1_000, &h(10, Some(60_000)), 61_000),
            Some(0),
            "oldest waited enough"
        );
    }

    #[test]
    fn bandwidth_pacing() {
        assert_eq!(pace_ms(1000, None), 0);
        // 1000 bytes = 8000 bits at 512 kbit/s: 15.6 ms.
        assert_eq!(pace_ms(1000, Some(512)), 16);
        assert_eq!(pace_ms(125_000, Some(1000)), 1000);
    }

    #[test]
    fn uris() {
        let u = Uri::parse("https://example.com/a?b=1").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "example.com", 443, "/a?b=1")
        );
        let u = Uri::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 8080, "/"));
        let u = Uri::parse("http://[::1]:81/x").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("[::1]", 81));
        for bad in [
            "ftp://h/",
            "http://:80/",
            "http://u@h/",
            "http://h:x/",
            "http://h/a b",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_and_request() {
        let msgs = [
            Message {
                seq: 4,
                ingest_ms: 9,
                payload: b"ab".to_vec(),
            },
            Message {
                seq: 5,
                ingest_ms: 10,
                payload: vec![0xff],
            },
        ];
        assert_eq!(
            bodies(ExportFormat::RawNotBatched, "s", &msgs),
            [b"ab".to_vec(), vec![0xff]]
        );
        let json = bodies(ExportFormat::JsonBatched, "s", &msgs);
        assert_eq!(
            String::from_utf8(json[0].clone()).unwrap(),
            r#"[{"streamName":"s","sequenceNumber":4,"ingestTime":9,"payload":"YWI="},{"streamName":"s","sequenceNumber":5,"ingestTime":10,"payload":"/w=="}]"#
        );
        let u = Uri::parse("http://h:81/in").unwrap();
        let r = String::from_utf8(request(&u, ExportFormat::RawNotBatched, b"xyz")).unwrap();
        assert!(r.starts_with("POST /in HTTP/1.1\r\nHost: h:81\r\n"), "{r}");
        assert!(r.ends_with("Content-Length: 3\r\nConnection: close\r\nUser-Agent: sprig-stream-manager\r\n\r\nxyz"), "{r}");
        assert_eq!(
            parse_status(b"HTTP/1.1 204 No Content\r\n\r\n"),
            Ok(Some(204))
        );
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\nA: b"), Ok(None));
        assert!(parse_status(b"garbage\r\n\r\n").is_err());
    }
}
