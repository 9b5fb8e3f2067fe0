//! One server-side TLS connection (a device's, or a discovery request's) with buffers sprig
//! owns: rustls's unbuffered server API (`UnbufferedServerConnection::process_tls_records`)
//! between two byte buffers that are empty, holding no allocation, whenever the connection is
//! idle (issue 13 §1).
//!
//! rustls's buffered `ServerConnection` keeps a deframer read buffer of `used + 4096` bytes after
//! every `read_tls` and has no call to give it back: 4 KiB per idle device. Here:
//!
//! * **Input.** Ciphertext is read into the thread's one `TLS_READ_CHUNK_BYTES` buffer (shared
//!   by all connections, zeroed once) and processed from there; only a record cut in two by the
//!   read (its tail still in the socket) is copied to `inbuf`, which then grows to that
//!   record's size and is freed as soon as the record is complete. A device that sends nothing
//!   has an empty `inbuf`.
//! * **Output.** Handshake flights and encrypted application data go into `out`, in order;
//!   [`TlsConn::flush_to`] sends them and, once everything left, hands `out` on as the
//!   thread's one spare output buffer (the next connection that writes takes it).
//! * **Plaintext** goes straight to the caller's sink record by record (the MQTT session, which
//!   keeps its own input buffer empty while idle); with no sink (during the handshake) a record
//!   that arrived with the client's last handshake flight waits decrypted in rustls until the
//!   next [`TlsConn::process_buffered`].
//!
//! The record pump is sans-IO ([`TlsConn::receive`], [`TlsConn::write`]); [`TlsConn::read_from`]
//! and [`TlsConn::flush_to`] only move bytes between those buffers and any `Read`/`Write`
//! (the non-blocking socket); [`handshake`] is the async part (socket readiness and a deadline).
//! Unit tests drive the pump against a rustls client in memory.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_io::{Async, Timer};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;

use super::session::Close;
use crate::limits;

thread_local! {
    /// The read buffer of [`TlsConn::read_from`]: one per thread (sprig has one), since a read
    /// is processed before the next begins.
    static READ_CHUNK: std::cell::Cell<Option<Box<[u8; limits::TLS_READ_CHUNK_BYTES]>>> =
        const { std::cell::Cell::new(None) };
    /// An emptied output buffer, passed on to the next connection that writes: `out` is freed
    /// once sent (an idle device holds none), and this keeps that from costing an allocation per
    /// message. One per thread, at most `TLS_SPARE_OUTPUT_MAX_BYTES` of capacity.
    static SPARE_OUT: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Gives `out` a buffer (the thread's spare, if there is one) before it is written to.
fn ready_out(out: &mut Vec<u8>) {
    if out.capacity() == 0 {
        *out = SPARE_OUT.with(std::cell::Cell::take);
    }
}

/// Keeps a sent-out buffer as the thread's spare (unless it has none, or grew past the bound).
fn spare_out(mut out: Vec<u8>) {
    if (1..=limits::TLS_SPARE_OUTPUT_MAX_BYTES).contains(&out.capacity()) {
        out.clear();
        SPARE_OUT.with(|s| s.set(out));
    }
}

/// What a read from the socket produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Some ciphertext was read and processed.
    Data,
    /// Nothing to read right now.
    WouldBlock,
    /// The peer closed the connection (TCP EOF or TLS close_notify).
    Closed,
}

/// Where decrypted application data goes (the device's MQTT session, or discovery's request
/// buffer); an `Err` stops the pump and is handed back. One concrete error type (the session's),
/// so the pump is compiled once.
pub type Sink<'a> = Option<&'a mut dyn FnMut(&[u8]) -> Result<(), Close>>;

/// A shorter-lived copy of `sink` (for calls in a loop).
fn reborrow<'b>(sink: &'b mut Sink<'_>) -> Sink<'b> {
    match sink {
        Some(f) => Some(&mut **f),
        None => None,
    }
}

/// Why the pump stopped with an error.
#[derive(Debug)]
pub enum Fail {
    /// A TLS protocol error (an alert for the peer is queued in the output when rustls made one).
    Tls(rustls::Error),
    /// The socket failed, or TLS could not take application data (handshake not done, closed).
    Io(io::Error),
    /// The sink refused the plaintext.
    Sink(Close),
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Tls(e) => e.fmt(f),
            Fail::Io(e) => e.fmt(f),
            Fail::Sink(e) => e.fmt(f),
        }
    }
}

/// What the pump should do once rustls can take application data.
enum Want<'a> {
    Nothing,
    Encrypt(&'a [u8]),
    CloseNotify,
}

/// One server-side TLS connection and its two buffers.
pub struct TlsConn {
    tls: UnbufferedServerConnection,
    /// Ciphertext read but not yet processed: the start of a record whose rest is still in
    /// the socket. Empty (no allocation) otherwise.
    inbuf: Vec<u8>,
    /// Ciphertext to send, from `sent` on. Empty (no allocation) once flushed. Bounded by the
    /// caller: `broker::conn` writes only into a flushed connection, one outbox batch of at
    /// most `TLS_BYTES_PER_WAKE` plus one frame, or a session reply.
    out: Vec<u8>,
    sent: usize,
    /// The peer's close_notify arrived.
    peer_closed: bool,
    /// A TLS error ended the connection: rustls is not driven again (its alert is queued).
    failed: bool,
}

impl TlsConn {
    pub fn new(config: Arc<ServerConfig>) -> Result<TlsConn, rustls::Error> {
        Ok(TlsConn {
            tls: UnbufferedServerConnection::new(config)?,
            inbuf: Vec::new(),
            out: Vec::new(),
            sent: 0,
            peer_closed: false,
            failed: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Ciphertext waits to be sent ([`TlsConn::flush_to`]).
    pub fn wants_write(&self) -> bool {
        self.sent < self.out.len()
    }

    /// The peer sent close_notify.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Bytes allocated for the input and output buffers (0 while idle).
    pub fn buffered_capacity(&self) -> usize {
        self.inbuf.capacity() + self.out.capacity()
    }

    /// The certificate id (SHA-256 of the DER) of the client's leaf certificate.
    pub fn peer_certificate_id(&self) -> Option<String> {
        self.tls
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| crate::pki::certificate_id(c.as_ref()))
    }

    /// Processes ciphertext `data` (after whatever part of a record is buffered): handshake
    /// replies go to the output, plaintext to `sink`. `Ok(true)` when the sink got plaintext.
    /// Whatever rustls cannot use yet (a part of a record) is kept.
    pub fn receive(&mut self, data: &mut [u8], mut sink: Sink) -> Result<bool, Fail> {
        if !self.inbuf.is_empty() {
            self.inbuf.extend_from_slice(data);
            return self.process_buffered(sink);
        }
        let (discard, r) = self.pump(data, &mut sink, Want::Nothing);
        self.inbuf.extend_from_slice(&data[discard..]);
        r.map(|(delivered, _)| delivered)
    }

    /// Processes what is buffered: a record kept back during the handshake (the client's
    /// first packets in the same flight as its Finished), or a record completed by a read.
    pub fn process_buffered(&mut self, mut sink: Sink) -> Result<bool, Fail> {
        self.with_inbuf(|t, buf| t.pump(buf, &mut sink, Want::Nothing))
            .map(|(delivered, _)| delivered)
    }

    /// Encrypts application data into the output. Call it only once the plaintext that came
    /// in was taken (after a `receive` or `process_buffered` with a sink).
    pub fn write(&mut self, plain: &[u8]) -> io::Result<()> {
        if plain.is_empty() {
            return Ok(());
        }
        let r = self.with_inbuf(|t, buf| t.pump(buf, &mut None, Want::Encrypt(plain)));
        match r {
            Ok((_, true)) => Ok(()),
            // No sink: plaintext that came in first would stop the pump here.
            Ok((_, false)) | Err(Fail::Sink(_)) => Err(io::Error::other(
                "TLS cannot send application data now (handshake not done or closed)",
            )),
            Err(Fail::Tls(e)) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(Fail::Io(e)) => Err(e),
        }
    }

    /// Queues a close_notify alert (best effort: nothing when the handshake is not done, nor
    /// after a TLS error, whose alert is already queued).
    pub fn close_notify(&mut self) {
        let _ = self.with_inbuf(|t, buf| t.pump(buf, &mut None, Want::CloseNotify));
    }

    /// Reads up to `budget` bytes of ciphertext available now from `rd` and processes them,
    /// plaintext to `sink`. Stops after the first read that gave the sink plaintext (the
    /// caller handles it before reading more: the session holds at most one read).
    pub fn read_from(
        &mut self,
        rd: &mut impl Read,
        budget: usize,
        mut sink: Sink,
    ) -> Result<ReadOutcome, Fail> {
        let mut total = 0;
        let mut outcome = ReadOutcome::WouldBlock;
        // Once the handshake is done, a read without a sink would only pile up records.
        while total < budget && !self.peer_closed && (sink.is_some() || self.is_handshaking()) {
            let read = if self.inbuf.is_empty() {
                // The thread's one read buffer, borrowed for this read (a nested read, which
                // nothing does, would get a new one): nothing zeroed or allocated per read.
                let mut chunk = READ_CHUNK
                    .take()
                    .unwrap_or_else(|| Box::new([0; limits::TLS_READ_CHUNK_BYTES]));
                // `None`: would block; `Some(None)`: end of stream.
                let r = match read_some(rd, &mut chunk[..]) {
                    Ok(Some(0)) => Ok(Some(None)),
                    Ok(Some(n)) => self
                        .receive(&mut chunk[..n], reborrow(&mut sink))
                        .map(|got| Some(Some((n, got)))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e),
                };
                READ_CHUNK.set(Some(chunk));
                match r? {
                    None => break,
                    Some(None) => return Ok(ReadOutcome::Closed),
                    Some(Some(read)) => read,
                }
            } else {
                match self.read_rest_of_record(rd)? {
                    None => break,
                    Some(0) => return Ok(ReadOutcome::Closed),
                    Some(n) => (n, self.process_buffered(reborrow(&mut sink))?),
                }
            };
            total += read.0;
            outcome = ReadOutcome::Data;
            if read.1 {
                break;
            }
        }
        if self.peer_closed {
            return Ok(ReadOutcome::Closed);
        }
        Ok(outcome)
    }

    /// Writes buffered ciphertext to `wr`. `Ok(true)` when everything went out (the buffer is
    /// freed), `Ok(false)` when `wr` would block.
    pub fn flush_to(&mut self, wr: &mut impl Write) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match wr.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        spare_out(std::mem::take(&mut self.out));
        self.sent = 0;
        Ok(true)
    }

    /// Appends the rest of the last, incomplete record in `inbuf` (or the next
    /// `TLS_READ_CHUNK_BYTES` when its header is not complete) from `rd`. `None`: would block;
    /// `Some(0)`: end of stream.
    fn read_rest_of_record(&mut self, rd: &mut impl Read) -> Result<Option<usize>, Fail> {
        let have = self.inbuf.len();
        let cap = if self.tls.is_handshaking() {
            limits::TLS_HANDSHAKE_MAX_BYTES + limits::TLS_RECORD_MAX_BYTES
        } else {
            limits::TLS_RECORD_MAX_BYTES
        };
        let want = rest_of_last_record(&self.inbuf)
            .unwrap_or(limits::TLS_READ_CHUNK_BYTES)
            .min(cap.saturating_sub(have));
        if want == 0 {
            return Err(Fail::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS input of {have} bytes without a complete message"),
            )));
        }
        self.inbuf.reserve_exact(want);
        self.inbuf.resize(have + want, 0);
        let r = read_some(rd, &mut self.inbuf[have..]);
        let n = match r {
            Ok(Some(n)) => n,
            _ => 0,
        };
        self.inbuf.truncate(have + n);
        r
    }

    /// Runs `f` over `inbuf` (moved out for the call), then drops the bytes it consumed and
    /// frees the buffer when nothing is left.
    fn with_inbuf<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut [u8]) -> (usize, Result<T, Fail>),
    ) -> Result<T, Fail> {
        let mut buf = std::mem::take(&mut self.inbuf);
        let (discard, r) = f(self, &mut buf);
        if discard < buf.len() {
            buf.drain(..discard);
            self.inbuf = buf;
        }
        r
    }

    /// Drives rustls over `buf` until it needs more input or has nothing more to do: handshake
    /// records into `out`, plaintext into `sink`, then `want` once application data may be
    /// sent. Returns the bytes of `buf` consumed and (plaintext delivered, `want` done).
    fn pump(
        &mut self,
        buf: &mut [u8],
        sink: &mut Sink,
        want: Want<'_>,
    ) -> (usize, Result<(bool, bool), Fail>) {
        if self.failed {
            let e = io::Error::new(io::ErrorKind::InvalidData, "the TLS connection failed");
            return (buf.len(), Err(Fail::Io(e)));
        }
        let mut used = 0;
        let mut delivered = false;
        loop {
            let UnbufferedStatus { discard, state } =
                self.tls.process_tls_records(&mut buf[used..]);
            let step = match state {
                Err(e) => Err(Fail::Tls(e)),
                Ok(ConnectionState::ReadTraffic(mut r)) => match reborrow(sink) {
                    // During the handshake: leave it decrypted in rustls for later.
                    None => Ok(Some(false)),
                    Some(sink) => {
                        let mut got = Ok(None);
                        while let Some(rec) = r.next_record() {
                            match rec {
                                Ok(rec) => {
                                    used += rec.discard;
                                    delivered = true;
                                    if let Err(e) = sink(rec.payload) {
                                        got = Err(Fail::Sink(e));
                                        break;
                                    }
                                }
                                Err(e) => {
                                    got = Err(Fail::Tls(e));
                                    break;
                                }
                            }
                        }
                        got
                    }
                },
                Ok(ConnectionState::EncodeTlsData(mut e)) => {
                    let need = match e.encode(&mut []) {
                        Err(EncodeError::InsufficientSize(s)) => s.required_size,
                        _ => 0,
                    };
                    ready_out(&mut self.out);
                    let at = self.out.len();
                    self.out.resize(at + need, 0);
                    let n = e.encode(&mut self.out[at..]).unwrap_or(0);
                    self.out.truncate(at + n);
                    Ok(None)
                }
                // Everything encoded is in `out`, which is sent in order before anything
                // written later: done as far as rustls is concerned.
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    Ok(None)
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_closed = true;
                    Ok(None)
                }
                Ok(ConnectionState::WriteTraffic(mut w)) => match want {
                    Want::Nothing => Ok(Some(false)),
                    Want::Encrypt(plain) => encrypt_into(&mut self.out, |o| w.encrypt(plain, o))
                        .map(|()| Some(true))
                        .map_err(Fail::Io),
                    Want::CloseNotify => encrypt_into(&mut self.out, |o| w.queue_close_notify(o))
                        .map(|()| Some(true))
                        .map_err(Fail::Io),
                },
                // More input needed, both sides closed, or (never: no early data is accepted)
                // 0-RTT data.
                Ok(_) => Ok(Some(false)),
            };
            used += discard;
            match step {
                Ok(None) => {}
                Ok(Some(done)) => return (used, Ok((delivered, done))),
                Err(e @ Fail::Tls(_)) => {
                    // Nothing more is read: the rest of the input is dropped.
                    self.failed = true;
                    self.queue_alert(&mut buf[used..]);
                    return (buf.len(), Err(e));
                }
                Err(e) => return (used, Err(e)),
            }
        }
    }

    /// After a TLS error: moves the alert rustls queued into `out` (best effort). rustls hands
    /// out queued records before it looks at the input again, and it is not let that far (it
    /// would find the same error and queue a second fatal alert).
    fn queue_alert(&mut self, buf: &mut [u8]) {
        for _ in 0..4 {
            if !self.tls.wants_write() {
                return;
            }
            let status = self.tls.process_tls_records(buf);
            let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state else {
                return;
            };
            let mut tmp = [0u8; 64];
            if let Ok(n) = e.encode(&mut tmp) {
                ready_out(&mut self.out);
                self.out.extend_from_slice(&tmp[..n]);
            }
        }
    }
}

/// Runs the TLS handshake on `sock` until it completes and its last flight is sent, within
/// `secs` (on `timer`, which the caller may reuse afterwards); the error says why, for a log
/// line. A record the client sent with its last flight (its first request) stays in `tls` for
/// [`TlsConn::process_buffered`].
pub async fn handshake(
    tls: &mut TlsConn,
    sock: &Async<TcpStream>,
    timer: &mut Timer,
    secs: u64,
) -> Result<(), String> {
    let failed = |e: Fail| format!("TLS handshake failed: {e}");
    timer.set_after(Duration::from_secs(secs));
    loop {
        let flushed = tls
            .flush_to(&mut sock.get_ref())
            .map_err(|e| failed(Fail::Io(e)))?;
        if flushed && !tls.is_handshaking() {
            return Ok(());
        }
        if flushed {
            match tls
                .read_from(&mut sock.get_ref(), usize::MAX, None)
                .map_err(failed)?
            {
                ReadOutcome::Closed => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed during the TLS handshake",
                    );
                    return Err(failed(Fail::Io(eof)));
                }
                ReadOutcome::Data => continue,
                ReadOutcome::WouldBlock => {}
            }
        }
        let ready = std::future::poll_fn(|cx| {
            let io = if flushed {
                sock.poll_readable(cx)
            } else {
                sock.poll_writable(cx)
            };
            if io.is_ready() {
                return Poll::Ready(true);
            }
            Pin::new(&mut *timer).poll(cx).map(|_| false)
        })
        .await;
        if !ready {
            return Err(format!("no TLS handshake within {secs} s: closed"));
        }
    }
}

/// Appends what `f` encrypts to `out`, sized by asking `f` first with an empty slice.
fn encrypt_into(
    out: &mut Vec<u8>,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> io::Result<()> {
    let need = match f(&mut []) {
        Ok(_) => 0,
        Err(EncryptError::InsufficientSize(s)) => s.required_size,
        Err(e) => return Err(io::Error::other(e.to_string())),
    };
    ready_out(out);
    let at = out.len();
    out.resize(at + need, 0);
    match f(&mut out[at..]) {
        Ok(n) => {
            out.truncate(at + n);
            Ok(())
        }
        Err(e) => {
            out.truncate(at);
            Err(io::Error::other(e.to_string()))
        }
    }
}

/// Bytes still missing from the last record in `buf` (records are walked by their 5-byte
/// headers); `None` when every record is complete or the last header is not.
fn rest_of_last_record(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(h) = buf.get(at..at + 5) {
        let end = at + 5 + usize::from(u16::from_be_bytes([h[3], h[4]]));
        if end > buf.len() {
            return Some(end - buf.len());
        }
        at = end;
    }
    None
}

/// One read: `None` would block, `Some(0)` end of stream.
fn read_some(rd: &mut impl Read, buf: &mut [u8]) -> Result<Option<usize>, Fail> {
    loop {
        match rd.read(buf) {
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Fail::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::GroupCa;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::time::SystemTime;

    /// A byte pipe: reads give at most `max` bytes at once, then `WouldBlock` when empty.
    struct Pipe {
        data: Vec<u8>,
        max: usize,
    }

    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.max).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Ok(n)
        }
    }

    fn key(pem: &str) -> PrivateKeyDer<'static> {
        rustls_pemfile::private_key(&mut pem.as_bytes())
            .unwrap()
            .unwrap()
    }

    /// A server (sprig's broker config) and a client with a device certificate of one CA;
    /// also the device certificate's DER.
    fn pair(tls12: bool) -> (TlsConn, ClientConnection, CertificateDer<'static>) {
        let (server, client, der) = configs(tls12);
        let client = ClientConnection::new(client, "localhost".try_into().unwrap()).unwrap();
        (TlsConn::new(server).unwrap(), client, der)
    }

    fn configs(
        tls12: bool,
    ) -> (
        Arc<ServerConfig>,
        Arc<ClientConfig>,
        CertificateDer<'static>,
    ) {
        let ca = GroupCa::create("test CA").unwrap();
        let server = ca
            .issue_server(None, &[], &[], SystemTime::now(), 30)
            .unwrap();
        let device = ca.issue_client("device").unwrap();
        let config =
            super::super::tls::server_config(vec![server.cert_der.clone()], key(&server.key_pem))
                .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13]
        };
        let client =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots)
                .with_client_auth_cert(vec![device.cert_der.clone()], key(&device.key_pem))
                .unwrap();
        (config, Arc::new(client), device.cert_der)
    }

    fn client_bytes(c: &mut ClientConnection) -> Vec<u8> {
        let mut v = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut v).unwrap();
        }
        v
    }

    /// Moves the server's output to the client; the plaintext the client got.
    fn to_client(s: &mut TlsConn, c: &mut ClientConnection) -> Vec<u8> {
        let mut v = Vec::new();
        assert!(s.flush_to(&mut v).unwrap());
        let mut r = &v[..];
        let mut got = Vec::new();
        while !r.is_empty() {
            c.read_tls(&mut r).unwrap();
            c.process_new_packets().unwrap();
            let _ = c.reader().read_to_end(&mut got);
        }
        got
    }

    fn handshake(s: &mut TlsConn, c: &mut ClientConnection) {
        for _ in 0..10 {
            let mut b = client_bytes(c);
            s.receive(&mut b, None).unwrap();
            to_client(s, c);
            if !s.is_handshaking() && !c.is_handshaking() && !c.wants_write() {
                return;
            }
        }
        panic!("no handshake");
    }

    fn collect(s: &mut TlsConn, data: &mut [u8]) -> Vec<u8> {
        let mut got = Vec::new();
        let mut sink = |d: &[u8]| -> Result<(), Close> {
            got.extend_from_slice(d);
            Ok(())
        };
        s.receive(data, Some(&mut sink)).unwrap();
        got
    }

    #[test]
    fn an_idle_connection_holds_no_buffers() {
        for tls12 in [false, true] {
            let (mut s, mut c, der) = pair(tls12);
            handshake(&mut s, &mut c);
            assert_eq!(
                s.peer_certificate_id(),
                Some(crate::pki::certificate_id(&der))
            );
            assert_eq!(s.buffered_capacity(), 0, "after the handshake");
            c.writer().write_all(b"\x10hello").unwrap();
            let mut b = client_bytes(&mut c);
            assert_eq!(collect(&mut s, &mut b), b"\x10hello");
            s.write(b"\x20\x02\0\0").unwrap();
            assert!(s.wants_write());
            assert_eq!(to_client(&mut s, &mut c), b"\x20\x02\0\0");
            assert_eq!(
                s.buffered_capacity(),
                0,
                "after a round trip (tls12 {tls12})"
            );
        }
    }

    #[test]
    fn a_record_cut_by_reads_is_kept_until_complete_then_freed() {
        let (mut s, mut c, _) = pair(false);
        handshake(&mut s, &mut c);
        let msg: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        c.writer().write_all(&msg).unwrap();
        let mut pipe = Pipe {
            data: client_bytes(&mut c),
            max: 1000,
        };
        let mut got = Vec::new();
        let mut most = 0;
        loop {
            let mut sink = |d: &[u8]| -> Result<(), Close> {
                got.extend_from_slice(d);
                Ok(())
            };
            // A budget of one read: what is kept between reads is visible.
            match s.read_from(&mut pipe, 1, Some(&mut sink)).unwrap() {
                ReadOutcome::Data => most = most.max(s.buffered_capacity()),
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Closed => panic!("closed"),
            }
        }
        assert_eq!(got, msg);
        assert!(most > 0, "a cut record was kept");
        assert!(most <= limits::TLS_RECORD_MAX_BYTES, "kept {most} bytes");
        assert_eq!(s.buffered_capacity(), 0);
    }

    #[test]
    fn plaintext_in_the_last_handshake_flight_waits_for_the_session() {
        let (mut s, mut c, _) = pair(false);
        // ClientHello → server flight → client Finished + CONNECT in one buffer.
        let mut b = client_bytes(&mut c);
        s.receive(&mut b, None).unwrap();
        to_client(&mut s, &mut c);
        c.writer().write_all(b"CONNECT").unwrap();
        let mut pipe = Pipe {
            data: client_bytes(&mut c),
            max: usize::MAX,
        };
        let out = s.read_from(&mut pipe, usize::MAX, None).unwrap();
        assert_eq!(out, ReadOutcome::Data);
        assert!(!s.is_handshaking());
        let mut got = Vec::new();
        let mut sink = |d: &[u8]| -> Result<(), Close> {
            got.extend_from_slice(d);
            Ok(())
        };
        assert!(s.process_buffered(Some(&mut sink)).unwrap());
        assert_eq!(got, b"CONNECT");
        assert_eq!(s.buffered_capacity(), 0);
    }

    #[test]
    fn a_large_write_reaches_the_client_and_the_output_is_freed() {
        let (mut s, mut c, _) = pair(true);
        handshake(&mut s, &mut c);
        let msg = vec![7u8; 128 * 1024 + 300];
        s.write(&msg).unwrap();
        assert_eq!(to_client(&mut s, &mut c), msg);
        assert_eq!(s.buffered_capacity(), 0);
    }

    #[test]
    fn a_bad_record_is_a_tls_error_and_the_peer_gets_an_alert() {
        let (mut s, mut c, _) = pair(false);
        handshake(&mut s, &mut c);
        let mut junk = vec![0x17, 0x03, 0x03, 0x00, 0x20];
        junk.extend_from_slice(&[0x55; 32]);
        let r = s.receive(&mut junk, None);
        assert!(matches!(r, Err(Fail::Tls(_))), "{r:?}");
        assert!(s.wants_write(), "an alert is queued");
        let mut v = Vec::new();
        s.flush_to(&mut v).unwrap();
        c.read_tls(&mut &v[..]).unwrap();
        assert!(
            c.process_new_packets().is_err(),
            "the client sees the alert"
        );
    }

    #[test]
    fn sink_errors_stop_the_pump() {
        let (mut s, mut c, _) = pair(false);
        handshake(&mut s, &mut c);
        c.writer().write_all(b"bad").unwrap();
        let mut b = client_bytes(&mut c);
        let mut sink = |_: &[u8]| -> Result<(), Close> { Err(Close::Malformed("bad".into())) };
        let r = s.receive(&mut b, Some(&mut sink));
        assert!(matches!(r, Err(Fail::Sink(Close::Malformed(_)))), "{r:?}");
    }

    #[test]
    fn close_notify_both_ways() {
        let (mut s, mut c, _) = pair(false);
        handshake(&mut s, &mut c);
        c.writer().write_all(b"last").unwrap();
        c.send_close_notify();
        let mut pipe = Pipe {
            data: client_bytes(&mut c),
            max: usize::MAX,
        };
        let mut got = Vec::new();
        let mut sink = |d: &[u8]| -> Result<(), Close> {
            got.extend_from_slice(d);
            Ok(())
        };
        let out = s.read_from(&mut pipe, usize::MAX, Some(&mut sink)).unwrap();
        assert_eq!(out, ReadOutcome::Closed);
        assert_eq!(got, b"last", "data before the close is delivered");
        assert!(s.peer_closed());
        s.close_notify();
        let mut v = Vec::new();
        s.flush_to(&mut v).unwrap();
        c.read_tls(&mut &v[..]).unwrap();
        assert!(c.process_new_packets().unwrap().peer_has_closed());
    }

    #[test]
    fn plain_http_is_a_tls_error() {
        let (mut s, _, _) = pair(false);
        let mut b = b"GET / HTTP/1.0\r\n\r\n".to_vec();
        let r = s.receive(&mut b, None);
        assert!(matches!(r, Err(Fail::Tls(_))), "{r:?}");
        assert_eq!(
            s.buffered_capacity() - s.out.capacity(),
            0,
            "the input is dropped"
        );
        // Closing afterwards neither drives rustls again nor panics.
        s.close_notify();
        assert!(s.write(b"x").is_err());
    }

    /// xorshift64: deterministic noise for the garbage test.
    fn noise(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Feeds `data` in pieces of `1..=max` bytes as reads; whatever comes back, nothing panics
    /// (rustls's debug assertions included: no second fatal alert), and the input buffer stays
    /// within its bound.
    fn feed(s: &mut TlsConn, data: Vec<u8>, max: usize) {
        let mut pipe = Pipe { data, max };
        let mut sink = |_: &[u8]| -> Result<(), Close> { Ok(()) };
        loop {
            let sink: Sink = if s.is_handshaking() {
                None
            } else {
                Some(&mut sink)
            };
            match s.read_from(&mut pipe, 1, sink) {
                Ok(ReadOutcome::Data) => {
                    let bound = limits::TLS_HANDSHAKE_MAX_BYTES + limits::TLS_RECORD_MAX_BYTES;
                    assert!(s.inbuf.capacity() <= bound);
                }
                Ok(_) | Err(_) => break,
            }
        }
        s.close_notify();
        let _ = s.flush_to(&mut Vec::new());
    }

    #[test]
    fn garbage_cut_anywhere_never_panics() {
        let (server, client, _) = configs(false);
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..200 {
            let name = "localhost".try_into().unwrap();
            let mut c = ClientConnection::new(client.clone(), name).unwrap();
            let mut s = TlsConn::new(server.clone()).unwrap();
            let mut data = if round % 2 == 0 {
                client_bytes(&mut c) // a real ClientHello, then damaged
            } else {
                handshake(&mut s, &mut c); // damaged records after a real handshake
                c.writer().write_all(&[0x30; 300]).unwrap();
                client_bytes(&mut c)
            };
            for _ in 0..1 + round % 4 {
                let at = noise(&mut rng) as usize % data.len();
                data[at] ^= 1 << (noise(&mut rng) % 8);
            }
            if round % 3 == 0 {
                let n = noise(&mut rng) as usize % 2000;
                data.extend((0..n).map(|_| noise(&mut rng) as u8));
            }
            if round % 5 == 0 {
                data.truncate(noise(&mut rng) as usize % data.len());
            }
            let max = 1 + noise(&mut rng) as usize % 700;
            feed(&mut s, data, max);
        }
    }

    #[test]
    fn record_walk_finds_what_is_missing() {
        assert_eq!(rest_of_last_record(&[]), None);
        assert_eq!(rest_of_last_record(&[0x17, 3, 3]), None);
        assert_eq!(rest_of_last_record(&[0x17, 3, 3, 0, 10, 1, 2]), Some(8));
        let mut two = vec![0x17, 3, 3, 0, 2, 9, 9, 0x17, 3, 3, 1, 0];
        assert_eq!(rest_of_last_record(&two), Some(256));
        two.truncate(7);
        assert_eq!(rest_of_last_record(&two), None);
    }
}
