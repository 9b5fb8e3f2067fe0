//! One device connection: TLS handshake, CONNECT with certificate auth, then the MQTT 3.1.1
//! loop (PUBLISH in, SUBSCRIBE checked against the router, PUBLISH out from the outbox).
//!
//! Every wait is bounded: handshake and CONNECT by timeouts, silence by keep-alive × 1.5.
//! Backpressure: while the socket will not take our bytes we neither read from it nor pull
//! from its outbox, so its outbox fills and the dispatcher drops (and counts) for it alone.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use bytes::{Buf, BytesMut};
use futures_lite::future;
use mqttbytes::v4::{
    self, ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode, UnsubAck,
};
use mqttbytes::{PacketType, Protocol, QoS};
use rustls::{ServerConfig, ServerConnection};

use super::hub::{Hub, Outbox};
use super::tls::{ReadOutcome, TlsStream};
use crate::config::Endpoint;
use crate::limits;
use crate::topic;
use crate::workq::{Refused, WorkItem};

/// Why a connection ended; logged once, counted in the hub's stats.
enum End {
    /// The client closed or sent DISCONNECT.
    Normal,
    Io(io::Error),
    Malformed(String),
    KeepAlive,
    Refused(String),
    Replaced,
}

/// Decrements the connection count however the task ends (also when it is dropped).
struct Slot(Rc<Hub>);

impl Drop for Slot {
    fn drop(&mut self) {
        let c = &self.0.stats.connections;
        c.set(c.get().saturating_sub(1));
    }
}

/// Serves one accepted socket until it closes. The caller has counted it in `connections`.
pub async fn serve(
    hub: Rc<Hub>,
    sock: Async<TcpStream>,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
) {
    let _slot = Slot(hub.clone());
    let tls = match ServerConnection::new(config) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{peer}: cannot start TLS: {e}");
            return;
        }
    };
    // sprig bounds what it hands rustls itself (one outbox batch of at most
    // TLS_BYTES_PER_WAKE plus one frame, only once everything before it was flushed), and a
    // frame of 128 KiB must fit whole: rustls's own 64 KiB cap would refuse it.
    let mut tls = tls;
    tls.set_buffer_limit(None);
    let mut s = TlsStream { sock, tls };
    if let Err(why) = s.handshake_within(limits::TLS_HANDSHAKE_TIMEOUT_SECS).await {
        bump(&hub.stats.refused_handshake);
        log::info!("{peer}: {why}");
        return;
    }
    let Some(cert_id) = s.peer_certificate_id() else {
        bump(&hub.stats.refused_auth);
        log::info!("{peer}: refused: no client certificate");
        return;
    };
    let mut c = Conn {
        hub: hub.clone(),
        s,
        peer,
        cert_id,
        inbuf: BytesMut::with_capacity(4096),
        skip: 0,
        device: None,
        keep_alive: None,
        last_rx: Instant::now(),
        connect_deadline: Instant::now() + Duration::from_secs(limits::CONNECT_TIMEOUT_SECS),
    };
    let end = c.run().await;
    let who = c
        .device
        .as_ref()
        .map(|o| o.thing_name.clone())
        .unwrap_or_default();
    if let Some(ob) = c.device.take() {
        hub.unregister(&ob);
    }
    // Best effort: tell the peer we are closing, without waiting.
    c.s.tls.send_close_notify();
    let _ = c.s.flush();
    match end {
        End::Normal => log::info!("{peer} {who}: disconnected"),
        End::Io(e) => log::info!("{peer} {who}: connection lost: {e}"),
        End::Malformed(why) => {
            bump(&hub.stats.closed_malformed);
            log::warn!("{peer} {who}: closed: {why}");
        }
        End::KeepAlive => {
            bump(&hub.stats.closed_keep_alive);
            log::info!("{peer} {who}: closed: silent for 1.5 × its keep-alive");
        }
        End::Refused(why) => {
            bump(&hub.stats.refused_auth);
            log::warn!("{peer}: refused: {why}");
        }
        End::Replaced => {
            log::info!("{peer} {who}: closed: a new connection with the same client id took over, or a deployment removed the device")
        }
    }
}

fn bump(c: &std::cell::Cell<u64>) {
    c.set(c.get() + 1);
}

/// What woke the connection up.
enum Wake {
    Readable,
    Writable,
    Outbox,
    Timer,
}

struct Conn {
    hub: Rc<Hub>,
    s: TlsStream,
    peer: SocketAddr,
    cert_id: String,
    /// Plaintext MQTT bytes not yet parsed; at most one packet plus one read's worth.
    inbuf: BytesMut,
    /// Bytes of an oversized PUBLISH still to be discarded unread.
    skip: usize,
    /// Set once CONNECT was accepted.
    device: Option<Rc<Outbox>>,
    keep_alive: Option<Duration>,
    last_rx: Instant,
    connect_deadline: Instant,
}

impl Conn {
    async fn run(&mut self) -> End {
        // The client's first packets may have come in the same read as its last handshake
        // flight: rustls holds them decrypted and the socket will not wake us for them.
        if let Err(end) = self.drain_plaintext() {
            return end;
        }
        let mut closing = false;
        loop {
            // 1. Parse what we have, within the per-wake budget, unless the socket is backed up.
            let mut more_frames = false;
            if !closing && !self.s.tls.wants_write() {
                match self.process_frames() {
                    Ok(Step::Continue(more)) => more_frames = more,
                    Ok(Step::Close) => closing = true,
                    Err(end) => {
                        let _ = self.s.flush();
                        return end;
                    }
                }
            }
            if let Some(ob) = &self.device {
                if ob.replaced.get() {
                    return End::Replaced;
                }
                // 2. Move outbox frames into TLS, only when TLS has flushed everything (bounds
                //    what rustls buffers to one batch).
                if !self.s.tls.wants_write() {
                    let mut batch = 0;
                    while batch < limits::TLS_BYTES_PER_WAKE {
                        let Some(f) = ob.take() else { break };
                        batch += f.len();
                        if let Err(e) = self.s.tls.writer().write_all(&f) {
                            return End::Io(e);
                        }
                    }
                }
            }
            // 3. Send.
            let flushed = match self.s.flush() {
                Ok(f) => f,
                Err(e) => return End::Io(e),
            };
            if closing && flushed {
                return End::Normal;
            }
            if more_frames && flushed {
                future::yield_now().await;
                continue;
            }
            // 4. Wait for the next thing to do.
            let deadline = self.deadline();
            let want_outbox = flushed && self.device.as_ref().is_some_and(|o| !o.has_frames());
            let outbox_ready = self.device.as_ref().is_some_and(|o| o.has_frames()) && flushed;
            if outbox_ready {
                future::yield_now().await;
                continue;
            }
            let wake = {
                let readable = async {
                    if flushed && !closing {
                        // An error shows up again on the read that follows.
                        let _ = self.s.sock.readable().await;
                        Wake::Readable
                    } else {
                        future::pending().await
                    }
                };
                let writable = async {
                    if !flushed {
                        let _ = self.s.sock.writable().await;
                        Wake::Writable
                    } else {
                        future::pending().await
                    }
                };
                let outbox = async {
                    match (&self.device, want_outbox) {
                        (Some(o), true) => {
                            o.wake.notified().await;
                            Wake::Outbox
                        }
                        _ => future::pending().await,
                    }
                };
                let timer = async {
                    Timer::at(deadline).await;
                    Wake::Timer
                };
                future::or(future::or(readable, writable), future::or(outbox, timer)).await
            };
            match wake {
                Wake::Readable => match self.s.read_some(limits::TLS_BYTES_PER_WAKE) {
                    // The peer may have sent its last packets together with the close
                    // (mosquitto_pub: PUBLISH, DISCONNECT, close_notify): handle them first.
                    Ok(ReadOutcome::Closed) => {
                        if let Err(end) = self.drain_plaintext() {
                            return end;
                        }
                        loop {
                            match self.process_frames() {
                                Ok(Step::Continue(true)) => {}
                                Ok(_) => return End::Normal,
                                Err(end) => return end,
                            }
                        }
                    }
                    Ok(ReadOutcome::Data) => {
                        if let Err(end) = self.drain_plaintext() {
                            return end;
                        }
                    }
                    Ok(ReadOutcome::WouldBlock) => {}
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        return End::Malformed(format!("TLS error: {e}"))
                    }
                    Err(e) => return End::Io(e),
                },
                Wake::Writable | Wake::Outbox => {}
                Wake::Timer => {
                    let now = Instant::now();
                    if now >= self.deadline() {
                        return match self.device {
                            None => End::Refused(format!(
                                "no MQTT CONNECT within {} s of the TLS handshake",
                                limits::CONNECT_TIMEOUT_SECS
                            )),
                            Some(_) => End::KeepAlive,
                        };
                    }
                }
            }
        }
    }

    /// When the connection must have shown a sign of life.
    fn deadline(&self) -> Instant {
        match (&self.device, self.keep_alive) {
            (None, _) => self.connect_deadline,
            (Some(_), Some(ka)) => self.last_rx + ka * limits::KEEP_ALIVE_GRACE_HALVES as u32 / 2,
            // Keep-alive 0: no timeout; wake up now and then anyway.
            (Some(_), None) => Instant::now() + Duration::from_secs(3600),
        }
    }

    /// Moves decrypted bytes from rustls into `inbuf`, discarding the rest of an oversized
    /// PUBLISH on the way, so `inbuf` never holds more than one packet plus one read.
    fn drain_plaintext(&mut self) -> Result<(), End> {
        let mut chunk = [0u8; 4096];
        loop {
            let n = match self.s.tls.reader().read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(End::Io(e)),
            };
            self.last_rx = Instant::now();
            let mut data = &chunk[..n];
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
            }
            self.inbuf.extend_from_slice(data);
            self.check_oversize()?;
        }
    }

    /// Looks at the fixed header at the front of `inbuf`: an oversized PUBLISH switches to skip
    /// mode (refused, counted, logged, connection kept); any other oversized packet closes.
    fn check_oversize(&mut self) -> Result<(), End> {
        while self.skip == 0 && !self.inbuf.is_empty() {
            match mqttbytes::check(self.inbuf.iter(), limits::MAX_LOCAL_PACKET_BYTES) {
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(len)) => {
                    let is_publish = self.inbuf[0] >> 4 == PacketType::Publish as u8;
                    if !is_publish {
                        return Err(End::Malformed(format!(
                            "{len}-byte packet is over the limit"
                        )));
                    }
                    bump(&self.hub.stats.dropped_oversize);
                    log::warn!(
                        "{} {}: refused a {len}-byte PUBLISH: payloads over {} bytes are not accepted",
                        self.peer,
                        self.name(),
                        limits::MAX_PAYLOAD_BYTES
                    );
                    // Header length: 1 type byte + the remaining-length bytes.
                    let hdr = 1
                        + self.inbuf[1..]
                            .iter()
                            .take(4)
                            .take_while(|b| *b & 0x80 != 0)
                            .count()
                        + 1;
                    let total = hdr + len;
                    let have = self.inbuf.len().min(total);
                    self.inbuf.advance(have);
                    self.skip = total - have;
                }
                // A complete packet is waiting: leave it to process_frames.
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    fn name(&self) -> &str {
        self.device
            .as_ref()
            .map(|o| o.thing_name.as_str())
            .unwrap_or("")
    }

    /// Handles up to FRAMES_PER_WAKE complete packets from `inbuf`.
    fn process_frames(&mut self) -> Result<Step, End> {
        for _ in 0..limits::FRAMES_PER_WAKE {
            if self.skip > 0 || self.inbuf.is_empty() {
                return Ok(Step::Continue(false));
            }
            let packet = match v4::read(&mut self.inbuf, limits::MAX_LOCAL_PACKET_BYTES) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(Step::Continue(false)),
                Err(e) => return Err(End::Malformed(format!("malformed MQTT packet: {e:?}"))),
            };
            self.check_oversize()?;
            if let Step::Close = self.handle(packet)? {
                return Ok(Step::Close);
            }
        }
        Ok(Step::Continue(!self.inbuf.is_empty()))
    }

    fn send(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>,
    ) -> Result<(), End> {
        let mut buf = BytesMut::with_capacity(8);
        write(&mut buf).map_err(|e| End::Malformed(format!("cannot encode a reply: {e:?}")))?;
        self.s.tls.writer().write_all(&buf).map_err(End::Io)
    }

    fn handle(&mut self, packet: Packet) -> Result<Step, End> {
        let Some(ob) = self.device.clone() else {
            return match packet {
                Packet::Connect(c) => self.on_connect(c),
                other => Err(End::Malformed(format!(
                    "expected CONNECT, got {:?}",
                    packet_name(&other)
                ))),
            };
        };
        match packet {
            Packet::Publish(p) => self.on_publish(&ob, p),
            Packet::Subscribe(s) => {
                let mut codes = Vec::with_capacity(s.filters.len());
                for f in &s.filters {
                    let ok = f.path.len() <= limits::MAX_LOCAL_TOPIC_BYTES
                        && self.hub.router.may_subscribe(&ob.thing_name, &f.path)
                        && ob.add_filter(&f.path);
                    if ok {
                        // Local delivery is QoS 0 (guide §6.1), whatever was asked.
                        codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
                    } else {
                        log::info!(
                            "{} {}: SUBSCRIBE {:?} refused (0x80): no subscription of the group routes it to this device",
                            self.peer,
                            ob.thing_name,
                            f.path
                        );
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                self.send(|b| SubAck::new(s.pkid, codes).write(b))?;
                Ok(Step::Continue(false))
            }
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    ob.remove_filter(t);
                }
                self.send(|b| UnsubAck::new(u.pkid).write(b))?;
                Ok(Step::Continue(false))
            }
            Packet::PingReq => {
                self.send(|b| v4::PingResp.write(b))?;
                Ok(Step::Continue(false))
            }
            Packet::Disconnect => Ok(Step::Close),
            Packet::Connect(_) => Err(End::Malformed("a second CONNECT".into())),
            // We never send QoS 1, so a PUBACK is unexpected but harmless.
            Packet::PubAck(_) => Ok(Step::Continue(false)),
            other => Err(End::Malformed(format!(
                "{} is not supported (QoS 2 is not part of Greengrass or AWS IoT)",
                packet_name(&other)
            ))),
        }
    }

    fn on_connect(&mut self, c: v4::Connect) -> Result<Step, End> {
        if c.protocol != Protocol::V4 {
            self.send(|b| ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false).write(b))?;
            return Err(End::Refused("only MQTT 3.1.1 is supported".into()));
        }
        let thing = match self.hub.device_for_certificate(&self.cert_id) {
            None => Err(format!(
                "certificate {} is not the certificate of any device in the group (client id {:?})",
                self.cert_id, c.client_id
            )),
            Some(t) if t != c.client_id => Err(format!(
                "client id {:?} is not the thing name {:?} of certificate {}",
                c.client_id, t, self.cert_id
            )),
            Some(t) => Ok(t.to_string()),
        };
        let thing = match thing {
            Ok(t) => t,
            Err(why) => {
                // Closed without a CONNACK, as AWS IoT does: the AWS IoT Device SDK for Python
                // takes any CONNACK, even "not authorized", as a successful connect() and
                // retries forever; a hang-up makes connect() raise (tests/sdk.rs).
                return Err(End::Refused(why));
            }
        };
        // Greengrass keeps no session state for local devices: session present is always 0.
        self.send(|b| ConnAck::new(ConnectReturnCode::Success, false).write(b))?;
        self.keep_alive = (c.keep_alive > 0).then(|| Duration::from_secs(c.keep_alive.into()));
        let ob = Rc::new(Outbox::new(&thing));
        self.hub.register(ob.clone());
        log::info!(
            "{} {}: connected (certificate {})",
            self.peer,
            thing,
            &self.cert_id[..12]
        );
        self.device = Some(ob);
        Ok(Step::Continue(false))
    }

    fn on_publish(&mut self, ob: &Outbox, p: v4::Publish) -> Result<Step, End> {
        if p.qos == QoS::ExactlyOnce {
            return Err(End::Malformed("QoS 2 PUBLISH is not supported".into()));
        }
        if let Err(e) = topic::validate_topic_name(&p.topic) {
            return Err(End::Malformed(format!("PUBLISH topic {:?}: {e}", p.topic)));
        }
        if p.topic.len() > limits::MAX_LOCAL_TOPIC_BYTES {
            return Err(End::Malformed(format!(
                "PUBLISH topic is {} bytes, over the {}-byte limit",
                p.topic.len(),
                limits::MAX_LOCAL_TOPIC_BYTES
            )));
        }
        let item = WorkItem {
            source: Endpoint::Device(ob.thing_name.clone()),
            topic: p.topic,
            payload: p.payload,
        };
        // Queue full or oversize: the item is dropped and counted by the queue. The PUBACK is
        // sent anyway — it acknowledges receipt by the core; see ARCHITECTURE.md.
        match self.hub.queue.push(item) {
            Ok(()) | Err(Refused::Full) | Err(Refused::Oversize) => {}
        }
        if p.qos == QoS::AtLeastOnce {
            self.send(|b| PubAck::new(p.pkid).write(b))?;
        }
        Ok(Step::Continue(false))
    }
}

enum Step {
    /// Keep going; `true` when more complete packets may be waiting.
    Continue(bool),
    /// Flush and close (DISCONNECT).
    Close,
}

fn packet_name(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}
