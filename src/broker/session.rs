//! One device's MQTT 3.1.1 session rules, sans-IO: decrypted bytes and `now` in; the replies
//! to send, calls into the core (the [`Broker`] port) and a [`Step`] out. [`super::conn`] owns
//! the socket and TLS and does what the step says; this module never touches either, so every
//! rule is unit-tested (and fuzzed: `fuzz/fuzz_targets/broker_session.rs`) without sockets.
//!
//! * **CONNECT** first, within [`limits::CONNECT_TIMEOUT_SECS`] of the handshake. Accepted only
//!   when the certificate id is a group device's AND the client id is that device's thing name;
//!   otherwise the session ends ([`Close::Refused`]) without a CONNACK, as AWS IoT does. Not
//!   MQTT 3.1.1: CONNACK 1, then closed.
//! * **SUBSCRIBE**: each filter granted QoS 0 where the core allows it (the group routes
//!   something it matches to this device, the device's filter cap), else 0x80.
//! * **PUBLISH** intake: QoS 0 and 1 (QoS 2 closes); a valid topic name of at most
//!   [`limits::MAX_LOCAL_TOPIC_BYTES`]; the item is *offered* to the work queue. A QoS 1 PUBLISH
//!   is PUBACKed only once the queue took it. When the queue has no room the session keeps the
//!   item and answers [`Step::Paused`]: the shell stops reading the socket until the queue has
//!   room, then calls [`Session::process`] again, which offers the item first. Nothing the
//!   device was told it delivered is dropped here.
//! * A PUBLISH over [`limits::MAX_LOCAL_PACKET_BYTES`] is skipped unread (counted by the core,
//!   not acknowledged, connection kept); any other oversized packet closes.
//! * **Keep-alive**: silence for 1.5 × keepAlive closes. A paused session's clock stands still
//!   (the device is not silent, we are not listening) and restarts when the item is taken.

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mqttbytes::v4::{
    self, ConnAck, ConnectReturnCode, Packet, PubAck, SubAck, SubscribeReasonCode, UnsubAck,
};
use mqttbytes::{PacketType, Protocol, QoS};

use crate::config::Endpoint;
use crate::limits;
use crate::topic;
use crate::workq::{Deferred, WorkItem};

/// Why a session ended (the shell adds its own: I/O errors, replaced by a newer connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// DISCONNECT from the client.
    Disconnect,
    /// A malformed packet or a protocol violation.
    Malformed(String),
    /// Silent for 1.5 × its keep-alive.
    KeepAlive,
    /// CONNECT refused (or none in time): not a group device, wrong client id, not 3.1.1.
    Refused(String),
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Disconnect => f.write_str("disconnected"),
            Close::Malformed(why) | Close::Refused(why) => f.write_str(why),
            Close::KeepAlive => f.write_str("silent for 1.5 × its keep-alive"),
        }
    }
}

/// What the session needs from the core. The broker's shell implements it over the hub; tests
/// and the fuzz target implement it over plain vectors.
pub trait Broker {
    /// The thing name of the group device with this certificate id.
    fn thing_for_certificate(&self, certificate_id: &str) -> Option<String>;
    /// CONNECT accepted: register the device (a previous connection with its id is replaced).
    fn connected(&mut self, thing: &str, certificate_id: &str);
    /// May the device hold this filter? (It is valid and at most 256 bytes.) `true` = granted.
    fn subscribe(&mut self, thing: &str, filter: &str) -> bool;
    fn unsubscribe(&mut self, filter: &str);
    /// Offers a message to the work queue ([`crate::workq::SharedQueue::offer`]).
    fn offer(&mut self, item: WorkItem) -> Result<(), Deferred>;
    /// A PUBLISH of `len` bytes over the limit was skipped: count and log it.
    fn oversize(&mut self, thing: &str, len: usize);
}

/// What the shell does next (after sending [`Session::output`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Everything complete was handled: read more from the socket.
    Idle,
    /// The per-wake budget is used and complete packets may be waiting: yield, then call
    /// `process` again.
    More,
    /// A message waits for room in the work queue: do not read; call `process` once
    /// [`crate::workq::SharedQueue::room`] completes.
    Paused,
    /// DISCONNECT: flush the output and close.
    Close,
}

/// A PUBLISH the work queue could not take yet.
#[derive(Debug)]
struct Held {
    item: WorkItem,
    /// The packet id to PUBACK once taken (QoS 1).
    pkid: Option<u16>,
}

/// One device connection's MQTT state.
#[derive(Debug)]
pub struct Session {
    certificate_id: String,
    /// Set once CONNECT was accepted.
    thing: Option<String>,
    keep_alive: Option<Duration>,
    last_rx: Instant,
    connect_deadline: Instant,
    /// Plaintext not yet parsed: at most one packet plus one read's worth. Empty (no
    /// allocation) while the device is idle.
    inbuf: BytesMut,
    /// Bytes of an oversized PUBLISH still to be discarded unread.
    skip: usize,
    /// Replies not yet taken by the shell.
    out: BytesMut,
    held: Option<Held>,
}

impl Session {
    /// A session for a client whose TLS handshake just completed with this certificate id.
    pub fn new(certificate_id: String, now: Instant) -> Session {
        Session {
            certificate_id,
            thing: None,
            keep_alive: None,
            last_rx: now,
            connect_deadline: now + Duration::from_secs(limits::CONNECT_TIMEOUT_SECS),
            inbuf: BytesMut::new(),
            skip: 0,
            out: BytesMut::new(),
            held: None,
        }
    }

    /// The thing name, once CONNECT was accepted.
    pub fn thing(&self) -> Option<&str> {
        self.thing.as_deref()
    }

    /// A message waits for room in the work queue (the shell must not read).
    pub fn is_paused(&self) -> bool {
        self.held.is_some()
    }

    /// Replies to send, in order; call [`Session::clear_output`] once they are written.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    pub fn clear_output(&mut self) {
        // Keep the few bytes a PUBACK or PINGRESP needs; give back what a long SUBACK took.
        if self.out.capacity() > limits::SESSION_REPLY_KEEP_BYTES {
            self.out = BytesMut::new();
        } else {
            self.out.clear();
        }
    }

    /// Bytes this session holds in its buffers (input and replies), for footprint checks.
    pub fn buffered_capacity(&self) -> usize {
        self.inbuf.capacity() + self.out.capacity()
    }

    /// Takes decrypted bytes from the device. An oversized PUBLISH is skipped on the way, so
    /// the input buffer never holds more than one packet plus `data`.
    pub fn received(
        &mut self,
        mut data: &[u8],
        now: Instant,
        core: &mut dyn Broker,
    ) -> Result<(), Close> {
        if data.is_empty() {
            return Ok(());
        }
        self.last_rx = now;
        if self.skip > 0 {
            let k = self.skip.min(data.len());
            self.skip -= k;
            data = &data[k..];
        }
        self.inbuf.extend_from_slice(data);
        self.check_oversize(core)
    }

    /// When the device must next show a sign of life: the CONNECT deadline, then 1.5 ×
    /// keep-alive after the last bytes. `None`: no deadline (keep-alive 0, or paused).
    pub fn deadline(&self) -> Option<Instant> {
        match (&self.thing, self.keep_alive) {
            (None, _) => Some(self.connect_deadline),
            _ if self.held.is_some() => None,
            (Some(_), Some(ka)) => {
                Some(self.last_rx + ka * limits::KEEP_ALIVE_GRACE_HALVES as u32 / 2)
            }
            (Some(_), None) => None,
        }
    }

    /// The session's end if its deadline has passed at `now`.
    pub fn expired(&self, now: Instant) -> Option<Close> {
        if self.deadline().is_none_or(|d| now < d) {
            return None;
        }
        Some(match self.thing {
            None => Close::Refused(format!(
                "no MQTT CONNECT within {} s of the TLS handshake",
                limits::CONNECT_TIMEOUT_SECS
            )),
            Some(_) => Close::KeepAlive,
        })
    }

    /// Handles a held message first, then up to [`limits::FRAMES_PER_WAKE`] complete packets.
    /// On `Err` the output may still hold a last reply (CONNACK 1) worth sending.
    pub fn process(&mut self, core: &mut dyn Broker, now: Instant) -> Result<Step, Close> {
        if let Some(Held { item, pkid }) = self.held.take() {
            match core.offer(item) {
                Ok(()) => {
                    // The pause was ours, not the device's silence.
                    self.last_rx = self.last_rx.max(now);
                    if let Some(pkid) = pkid {
                        self.reply(|b| PubAck::new(pkid).write(b))?;
                    }
                }
                Err(Deferred::Wait(item)) => {
                    self.held = Some(Held { item, pkid });
                    return Ok(Step::Paused);
                }
                // Counted by the queue; not acknowledged (it was not taken).
                Err(Deferred::Oversize) => {}
            }
        }
        for _ in 0..limits::FRAMES_PER_WAKE {
            if self.skip > 0 || self.inbuf.is_empty() {
                self.release_idle_buffers();
                return Ok(Step::Idle);
            }
            let packet = match v4::read(&mut self.inbuf, limits::MAX_LOCAL_PACKET_BYTES) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(Step::Idle),
                Err(e) => return Err(Close::Malformed(format!("malformed MQTT packet: {e:?}"))),
            };
            self.check_oversize(core)?;
            match self.handle(packet, core)? {
                None => {}
                Some(step) => return Ok(step),
            }
        }
        Ok(if self.inbuf.is_empty() {
            Step::Idle
        } else {
            Step::More
        })
    }

    /// An idle device keeps no input buffer: it is dropped once empty (a PUBLISH's payload is
    /// a slice of it, so those bytes live on in the queue until delivered, not here).
    fn release_idle_buffers(&mut self) {
        if self.inbuf.is_empty() && self.inbuf.capacity() > 0 {
            self.inbuf = BytesMut::new();
        }
    }

    /// Looks at the fixed header at the front of the input: an oversized PUBLISH switches to
    /// skip mode (refused, counted, connection kept); any other oversized packet closes.
    fn check_oversize(&mut self, core: &mut dyn Broker) -> Result<(), Close> {
        while self.skip == 0 && !self.inbuf.is_empty() {
            match mqttbytes::check(self.inbuf.iter(), limits::MAX_LOCAL_PACKET_BYTES) {
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(len)) => {
                    if self.inbuf[0] >> 4 != PacketType::Publish as u8 {
                        return Err(Close::Malformed(format!(
                            "{len}-byte packet is over the limit"
                        )));
                    }
                    core.oversize(self.thing.as_deref().unwrap_or(""), len);
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
                // A complete packet (or not enough to tell): leave it to `process`.
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    fn reply(
        &mut self,
        write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>,
    ) -> Result<(), Close> {
        write(&mut self.out)
            .map(|_| ())
            .map_err(|e| Close::Malformed(format!("cannot encode a reply: {e:?}")))
    }

    /// One packet; `Some(step)` ends this round of `process`.
    fn handle(&mut self, packet: Packet, core: &mut dyn Broker) -> Result<Option<Step>, Close> {
        // Taken out and put back rather than cloned: a clone was an allocation per packet.
        let Some(thing) = self.thing.take() else {
            return match packet {
                Packet::Connect(c) => self.on_connect(c, core).map(|()| None),
                other => Err(Close::Malformed(format!(
                    "expected CONNECT, got {}",
                    packet_name(&other)
                ))),
            };
        };
        let step = self.handle_connected(&thing, packet, core);
        self.thing = Some(thing);
        step
    }

    /// One packet after CONNECT (`self.thing` is taken out meanwhile: use `thing`).
    fn handle_connected(
        &mut self,
        thing: &str,
        packet: Packet,
        core: &mut dyn Broker,
    ) -> Result<Option<Step>, Close> {
        match packet {
            Packet::Publish(p) => self.on_publish(thing, p, core),
            // MQTT 3.1.1 §3.8.3-3, §3.10.3-2: at least one filter (an empty SUBACK would not
            // even parse on the client's side).
            Packet::Subscribe(s) if s.filters.is_empty() => {
                Err(Close::Malformed("SUBSCRIBE without a topic filter".into()))
            }
            Packet::Unsubscribe(u) if u.topics.is_empty() => Err(Close::Malformed(
                "UNSUBSCRIBE without a topic filter".into(),
            )),
            Packet::Subscribe(s) => {
                let codes = s
                    .filters
                    .iter()
                    .map(|f| {
                        let ok = f.path.len() <= limits::MAX_LOCAL_TOPIC_BYTES
                            && topic::validate_topic_filter(&f.path).is_ok()
                            && core.subscribe(thing, &f.path);
                        // Local delivery is QoS 0 (guide §6.1), whatever was asked.
                        if ok {
                            SubscribeReasonCode::Success(QoS::AtMostOnce)
                        } else {
                            SubscribeReasonCode::Failure
                        }
                    })
                    .collect();
                self.reply(|b| SubAck::new(s.pkid, codes).write(b))?;
                Ok(None)
            }
            Packet::Unsubscribe(u) => {
                for t in &u.topics {
                    core.unsubscribe(t);
                }
                self.reply(|b| UnsubAck::new(u.pkid).write(b))?;
                Ok(None)
            }
            Packet::PingReq => {
                self.reply(|b| v4::PingResp.write(b))?;
                Ok(None)
            }
            Packet::Disconnect => Ok(Some(Step::Close)),
            Packet::Connect(_) => Err(Close::Malformed("a second CONNECT".into())),
            // We never send QoS 1, so a PUBACK is unexpected but harmless.
            Packet::PubAck(_) => Ok(None),
            other => Err(Close::Malformed(format!(
                "{} is not supported (QoS 2 is not part of Greengrass or AWS IoT)",
                packet_name(&other)
            ))),
        }
    }

    fn on_connect(&mut self, c: v4::Connect, core: &mut dyn Broker) -> Result<(), Close> {
        if c.protocol != Protocol::V4 {
            self.reply(|b| {
                ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false).write(b)
            })?;
            return Err(Close::Refused("only MQTT 3.1.1 is supported".into()));
        }
        // Refused without a CONNACK, as AWS IoT does: the AWS IoT Device SDK for Python takes
        // any CONNACK, even "not authorized", as a successful connect() and retries forever;
        // a hang-up makes connect() raise (tests/sdk.rs).
        let thing = match core.thing_for_certificate(&self.certificate_id) {
            None => Err(format!(
                "certificate {} is not the certificate of any device in the group (client id {:?})",
                self.certificate_id, c.client_id
            )),
            Some(t) if t != c.client_id => Err(format!(
                "client id {:?} is not the thing name {:?} of certificate {}",
                c.client_id, t, self.certificate_id
            )),
            Some(t) => Ok(t),
        }
        .map_err(Close::Refused)?;
        // Greengrass keeps no session state for local devices: session present is always 0.
        self.reply(|b| ConnAck::new(ConnectReturnCode::Success, false).write(b))?;
        self.keep_alive = (c.keep_alive > 0).then(|| Duration::from_secs(c.keep_alive.into()));
        core.connected(&thing, &self.certificate_id);
        self.thing = Some(thing);
        Ok(())
    }

    fn on_publish(
        &mut self,
        thing: &str,
        p: v4::Publish,
        core: &mut dyn Broker,
    ) -> Result<Option<Step>, Close> {
        if p.qos == QoS::ExactlyOnce {
            return Err(Close::Malformed("QoS 2 PUBLISH is not supported".into()));
        }
        if let Err(e) = topic::validate_topic_name(&p.topic) {
            return Err(Close::Malformed(format!(
                "PUBLISH topic {:?}: {e}",
                p.topic
            )));
        }
        if p.topic.len() > limits::MAX_LOCAL_TOPIC_BYTES {
            return Err(Close::Malformed(format!(
                "PUBLISH topic is {} bytes, over the {}-byte limit",
                p.topic.len(),
                limits::MAX_LOCAL_TOPIC_BYTES
            )));
        }
        let pkid = (p.qos == QoS::AtLeastOnce).then_some(p.pkid);
        let item = WorkItem {
            source: Endpoint::Device(thing.to_owned()),
            topic: p.topic,
            payload: p.payload,
        };
        match core.offer(item) {
            Ok(()) => {
                if let Some(pkid) = pkid {
                    self.reply(|b| PubAck::new(pkid).write(b))?;
                }
                Ok(None)
            }
            Err(Deferred::Wait(item)) => {
                self.held = Some(Held { item, pkid });
                Ok(Some(Step::Paused))
            }
            // Counted by the queue; not acknowledged: the device was not told it arrived.
            Err(Deferred::Oversize) => Ok(None),
        }
    }
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

/// A [`Broker`] over plain vectors: the unit tests' and the fuzz target's core. One device
/// (`A`, certificate id `cert-a`); the work queue takes `room` items, then defers.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct TestBroker {
    pub room: usize,
    pub taken: Vec<WorkItem>,
    pub filters: Vec<String>,
    pub connected: Vec<String>,
    pub oversize: Vec<usize>,
}

impl Broker for TestBroker {
    fn thing_for_certificate(&self, certificate_id: &str) -> Option<String> {
        (certificate_id == "cert-a").then(|| "A".to_string())
    }
    fn connected(&mut self, thing: &str, _certificate_id: &str) {
        self.connected.push(thing.into());
    }
    fn subscribe(&mut self, _thing: &str, filter: &str) -> bool {
        if filter.starts_with("denied") || self.filters.len() >= limits::SESSION_MAX_FILTERS {
            return false;
        }
        self.filters.push(filter.into());
        true
    }
    fn unsubscribe(&mut self, filter: &str) {
        self.filters.retain(|f| f != filter);
    }
    fn offer(&mut self, item: WorkItem) -> Result<(), Deferred> {
        if item.payload.len() > limits::MAX_PAYLOAD_BYTES {
            return Err(Deferred::Oversize);
        }
        if self.room == 0 {
            return Err(Deferred::Wait(item));
        }
        self.room -= 1;
        self.taken.push(item);
        Ok(())
    }
    fn oversize(&mut self, _thing: &str, len: usize) {
        self.oversize.push(len);
    }
}

#[cfg(test)]
mod tests;
