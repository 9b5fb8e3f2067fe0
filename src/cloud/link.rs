//! One MQTT 3.1.1 client session to the cloud, sans-IO: bytes and `now` in, bytes to send and
//! deliveries out. The task owns the socket; a new `Link` is made for every connection.
//!
//! * CONNECT (keepAlive, cleanSession), then SUBSCRIBE its share of cloud-sourced filters.
//! * The publisher connection (`-c00`) sends spooled messages at QoS 1, up to
//!   [`CLOUD_MAX_INFLIGHT`] at a time, in spool order; each leaves the spool on its PUBACK.
//!   After a reconnect everything unacknowledged is sent again from the spool head, so order is
//!   kept and delivery is at-least-once.
//! * PUBLISH from the cloud is handed to `deliver`; a QoS 1 one is PUBACKed only if `deliver`
//!   accepted it (it is in the work queue).
//! * PINGREQ after keepAlive seconds without sending; a missing PINGRESP, PUBACK or SUBACK
//!   after mqttOperationTimeout ends the session (the task reconnects).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mqttbytes::v4::{self, Packet};
use mqttbytes::QoS;

use crate::limits::{CLOUD_CONNACK_TIMEOUT_SECS, CLOUD_MAX_INFLIGHT, CLOUD_MAX_PACKET_BYTES};
use crate::spool::Spool;

/// What a session needs to know.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub client_id: String,
    pub keep_alive: u16,
    pub clean_session: bool,
    /// Cloud-sourced topic filters this connection subscribes to.
    pub filters: Vec<String>,
    /// QoS for those subscriptions (1 with persistent sessions).
    pub sub_qos: u8,
    /// Sends the spool (only `-c00`).
    pub publisher: bool,
    pub op_timeout: Duration,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    Refused(String),
    Timeout(&'static str),
    Protocol(String),
    SubscriptionRejected(String),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Refused(why) => write!(f, "the broker refused the connection: {why}"),
            LinkError::Timeout(what) => write!(f, "no {what} within the timeout"),
            LinkError::Protocol(why) => write!(f, "MQTT protocol error: {why}"),
            LinkError::SubscriptionRejected(filter) => {
                write!(f, "the broker rejected the subscription to {filter:?}")
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnAck,
    Connected,
}

/// One message the cloud sent us.
pub struct Inbound<'a> {
    pub topic: &'a str,
    pub payload: Bytes,
    pub qos: u8,
}

pub struct Link {
    cfg: LinkConfig,
    state: State,
    out: BytesMut,
    inbuf: BytesMut,
    next_pkid: u16,
    /// (pkid, spool seq, sent at), oldest first.
    inflight: VecDeque<(u16, u64, Instant)>,
    last_sent_seq: Option<u64>,
    /// SUBSCRIBE packets waiting for SUBACK: (pkid, first filter index, count, sent at).
    pending_subs: VecDeque<(u16, usize, usize, Instant)>,
    subscribed: bool,
    ping_sent: Option<Instant>,
    connect_sent: Instant,
    last_tx: Instant,
    /// Spool sequence numbers PUBACKed and not yet applied to the spool (see [`Link::apply_acks`]).
    acked_seqs: Vec<u64>,
    /// Messages PUBACKed upstream on this session.
    pub acked: u64,
}

impl Link {
    /// A new session; CONNECT is queued at once.
    pub fn new(cfg: LinkConfig, now: Instant) -> Link {
        let mut l = Link {
            cfg,
            state: State::AwaitConnAck,
            out: BytesMut::new(),
            inbuf: BytesMut::new(),
            next_pkid: 0,
            inflight: VecDeque::with_capacity(CLOUD_MAX_INFLIGHT),
            last_sent_seq: None,
            pending_subs: VecDeque::new(),
            subscribed: false,
            ping_sent: None,
            connect_sent: now,
            last_tx: now,
            acked_seqs: Vec::with_capacity(CLOUD_MAX_INFLIGHT),
            acked: 0,
        };
        let mut c = v4::Connect::new(l.cfg.client_id.clone());
        c.keep_alive = l.cfg.keep_alive;
        c.clean_session = l.cfg.clean_session;
        l.write(|b| c.write(b));
        l
    }

    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// All subscriptions acknowledged.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// Bytes to send now (the caller writes them all).
    pub fn take_output(&mut self) -> BytesMut {
        self.out.split()
    }

    fn write(&mut self, f: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) {
        // Our own packets are well-formed; an encoding error would be a bug, not input.
        if let Err(e) = f(&mut self.out) {
            log::error!("cloud: cannot encode a packet: {e:?}");
        }
    }

    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid % u16::MAX + 1;
        self.next_pkid
    }

    /// Feeds received bytes. `deliver` gets each message from the cloud and says whether it
    /// was accepted (queued locally); it runs without the spool borrowed, so it may publish.
    /// Then call [`Link::apply_acks`].
    pub fn received(
        &mut self,
        data: &[u8],
        now: Instant,
        deliver: &mut dyn FnMut(Inbound<'_>) -> bool,
    ) -> Result<(), LinkError> {
        self.inbuf.extend_from_slice(data);
        loop {
            let packet = match v4::read(&mut self.inbuf, CLOUD_MAX_PACKET_BYTES) {
                Ok(p) => p,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(()),
                Err(e) => return Err(LinkError::Protocol(format!("{e:?}"))),
            };
            self.handle(packet, now, deliver)?;
        }
    }

    /// Removes the PUBACKed messages from the spool.
    pub fn apply_acks(&mut self, spool: &mut Spool) {
        for seq in self.acked_seqs.drain(..) {
            spool.ack(seq);
        }
    }

    fn handle(
        &mut self,
        packet: Packet,
        now: Instant,
        deliver: &mut dyn FnMut(Inbound<'_>) -> bool,
    ) -> Result<(), LinkError> {
        match (self.state, packet) {
            (State::AwaitConnAck, Packet::ConnAck(ack)) => {
                if ack.code != v4::ConnectReturnCode::Success {
                    return Err(LinkError::Refused(format!("{:?}", ack.code)));
                }
                self.state = State::Connected;
                self.subscribe(now);
                Ok(())
            }
            (State::AwaitConnAck, p) => {
                Err(LinkError::Protocol(format!("expected CONNACK, got {p:?}")))
            }
            (State::Connected, Packet::PubAck(ack)) => {
                // Acks come in order on one connection, but take any in-flight one.
                if let Some(i) = self.inflight.iter().position(|(id, _, _)| *id == ack.pkid) {
                    if let Some((_, seq, _)) = self.inflight.remove(i) {
                        self.acked_seqs.push(seq);
                        self.acked += 1;
                    }
                }
                Ok(())
            }
            (State::Connected, Packet::SubAck(ack)) => {
                let Some(i) = self
                    .pending_subs
                    .iter()
                    .position(|(id, ..)| *id == ack.pkid)
                else {
                    return Ok(());
                };
                let Some((_, first, count, _)) = self.pending_subs.remove(i) else {
                    return Ok(());
                };
                for (k, rc) in ack.return_codes.iter().enumerate().take(count) {
                    if *rc == v4::SubscribeReasonCode::Failure {
                        let filter = self.cfg.filters.get(first + k).cloned().unwrap_or_default();
                        return Err(LinkError::SubscriptionRejected(filter));
                    }
                }
                self.subscribed = self.pending_subs.is_empty();
                Ok(())
            }
            (State::Connected, Packet::Publish(p)) => {
                let qos = match p.qos {
                    QoS::AtMostOnce => 0,
                    _ => 1,
                };
                let accepted = deliver(Inbound {
                    topic: &p.topic,
                    payload: p.payload.clone(),
                    qos,
                });
                if qos == 1 && accepted {
                    let ack = v4::PubAck::new(p.pkid);
                    self.write(|b| ack.write(b));
                    self.last_tx = now;
                }
                Ok(())
            }
            (State::Connected, Packet::PingResp) => {
                self.ping_sent = None;
                Ok(())
            }
            (State::Connected, Packet::UnsubAck(_)) => Ok(()),
            (_, p) => Err(LinkError::Protocol(format!("unexpected {p:?}"))),
        }
    }

    fn subscribe(&mut self, now: Instant) {
        let qos = if self.cfg.sub_qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        // One SUBSCRIBE per batch of ten filters keeps packets small.
        let mut first = 0;
        while first < self.cfg.filters.len() {
            let count = (self.cfg.filters.len() - first).min(10);
            let mut sub = v4::Subscribe::empty_subscribe();
            for f in &self.cfg.filters[first..first + count] {
                sub.add(f.clone(), qos);
            }
            sub.pkid = self.pkid();
            self.pending_subs.push_back((sub.pkid, first, count, now));
            self.write(|b| sub.write(b));
            first += count;
        }
        self.subscribed = self.pending_subs.is_empty();
        self.last_tx = now;
    }

    /// Sends what is due and checks timers. Returns when to call again at the latest.
    pub fn poll(&mut self, now: Instant, spool: &mut Spool) -> Result<Instant, LinkError> {
        let op = self.cfg.op_timeout;
        if self.state == State::AwaitConnAck {
            let deadline = self.connect_sent + Duration::from_secs(CLOUD_CONNACK_TIMEOUT_SECS);
            if now >= deadline {
                return Err(LinkError::Timeout("CONNACK"));
            }
            return Ok(deadline);
        }
        if self.cfg.publisher {
            // The spool may have dropped in-flight messages to make room; forget their acks.
            while self.inflight.len() < CLOUD_MAX_INFLIGHT {
                let Some((seq, msg)) = spool.next_after(self.last_sent_seq) else {
                    break;
                };
                let mut p = v4::Publish::from_bytes(msg.topic, QoS::AtLeastOnce, msg.payload);
                p.pkid = self.pkid();
                self.write(|b| p.write(b));
                self.inflight.push_back((p.pkid, seq, now));
                self.last_sent_seq = Some(seq);
                self.last_tx = now;
            }
        }
        let mut next = now + Duration::from_secs(u64::from(self.cfg.keep_alive.max(1)));
        if let Some(&(_, _, sent)) = self.inflight.front() {
            if now >= sent + op {
                return Err(LinkError::Timeout("PUBACK"));
            }
            next = next.min(sent + op);
        }
        if let Some(&(_, _, _, sent)) = self.pending_subs.front() {
            if now >= sent + op {
                return Err(LinkError::Timeout("SUBACK"));
            }
            next = next.min(sent + op);
        }
        if let Some(sent) = self.ping_sent {
            if now >= sent + op {
                return Err(LinkError::Timeout("PINGRESP"));
            }
            next = next.min(sent + op);
        } else if self.cfg.keep_alive > 0 {
            let due = self.last_tx + Duration::from_secs(u64::from(self.cfg.keep_alive));
            if now >= due {
                self.write(|b| v4::PingReq.write(b));
                self.ping_sent = Some(now);
                self.last_tx = now;
                next = next.min(now + op);
            } else {
                next = next.min(due);
            }
        }
        Ok(next)
    }
}

/// Exponential backoff with jitter, capped (mqttMaxConnectionRetryInterval).
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            attempt: 0,
            base,
            cap: cap.max(base),
        }
    }

    /// The wait before the next attempt: a uniformly random point in the upper half of
    /// `min(cap, base * 2^attempt)`, so reconnecting cores spread out but still back off.
    pub fn next_delay(&mut self, random: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let ceiling = exp.min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(f64::from(random) / f64::from(u32::MAX))
    }

    /// Connected: start again from the base delay.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(filters: &[&str], publisher: bool) -> LinkConfig {
        LinkConfig {
            client_id: "core-c00".into(),
            keep_alive: 30,
            clean_session: true,
            filters: filters.iter().map(|s| s.to_string()).collect(),
            sub_qos: 0,
            publisher,
            op_timeout: Duration::from_secs(5),
        }
    }

    fn packets(buf: &mut BytesMut) -> Vec<Packet> {
        let mut v = Vec::new();
        while let Ok(p) = v4::read(buf, 1 << 20) {
            v.push(p);
        }
        v
    }

    fn encode(p: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> BytesMut {
        let mut b = BytesMut::new();
        p(&mut b).unwrap();
        b
    }

    #[test]
    fn publishes_in_order_and_acks_spool_on_puback() {
        let t0 = Instant::now();
        let mut spool = Spool::memory(1 << 20);
        for i in 0..20 {
            spool
                .push(&format!("t/{i}"), Bytes::from_static(b"x"), 1)
                .unwrap();
        }
        let mut link = Link::new(cfg(&["c/#"], true), t0);
        assert!(matches!(
            packets(&mut link.take_output())[..],
            [Packet::Connect(_)]
        ));
        let connack = encode(|b| v4::ConnAck::new(v4::ConnectReturnCode::Success, false).write(b));
        link.received(&connack, t0, &mut |_| true).unwrap();
        link.poll(t0, &mut spool).unwrap();
        let sent = packets(&mut link.take_output());
        let Packet::Subscribe(_) = &sent[0] else {
            panic!("{sent:?}")
        };
        let pubs: Vec<_> = sent[1..]
            .iter()
            .map(|p| match p {
                Packet::Publish(p) => (p.pkid, p.topic.clone()),
                p => panic!("{p:?}"),
            })
            .collect();
        assert_eq!(pubs.len(), CLOUD_MAX_INFLIGHT);
        assert_eq!(pubs[0].1, "t/0");
        // Ack the first two: they leave the spool and two more go out.
        for (pkid, _) in &pubs[..2] {
            link.received(
                &encode(|b| v4::PubAck::new(*pkid).write(b)),
                t0,
                &mut |_| true,
            )
            .unwrap();
        }
        link.apply_acks(&mut spool);
        assert_eq!(spool.stats().messages, 18);
        link.poll(t0, &mut spool).unwrap();
        let more = packets(&mut link.take_output());
        assert_eq!(more.len(), 2);
        // No ack within the operation timeout: the session ends; a new one resends from the head.
        assert_eq!(
            link.poll(t0 + Duration::from_secs(6), &mut spool),
            Err(LinkError::Timeout("PUBACK"))
        );
        let mut link = Link::new(cfg(&[], true), t0);
        link.take_output();
        link.received(&connack, t0, &mut |_| true).unwrap();
        link.poll(t0, &mut spool).unwrap();
        let Packet::Publish(p) = &packets(&mut link.take_output())[0] else {
            panic!()
        };
        assert_eq!(p.topic, "t/2");
    }

    #[test]
    fn inbound_qos1_acked_only_when_accepted() {
        let t0 = Instant::now();
        let mut link = Link::new(cfg(&["c/#"], false), t0);
        link.take_output();
        link.received(
            &encode(|b| v4::ConnAck::new(v4::ConnectReturnCode::Success, true).write(b)),
            t0,
            &mut |_| true,
        )
        .unwrap();
        link.take_output();
        let mut p = v4::Publish::new("c/1", QoS::AtLeastOnce, b"hi".to_vec());
        p.pkid = 7;
        let data = encode(|b| p.write(b));
        let mut got = Vec::new();
        link.received(&data, t0, &mut |m| {
            got.push(m.topic.to_owned());
            true
        })
        .unwrap();
        assert!(matches!(
            packets(&mut link.take_output())[..],
            [Packet::PubAck(v4::PubAck { pkid: 7 })]
        ));
        link.received(&data, t0, &mut |_| false).unwrap();
        assert!(
            packets(&mut link.take_output()).is_empty(),
            "refused message is not acked"
        );
        assert_eq!(got, ["c/1"]);
    }

    #[test]
    fn refused_connack_and_garbage_end_the_session() {
        let t0 = Instant::now();
        let mut spool = Spool::memory(1 << 20);
        let mut link = Link::new(cfg(&[], true), t0);
        let refused =
            encode(|b| v4::ConnAck::new(v4::ConnectReturnCode::NotAuthorized, false).write(b));
        assert!(matches!(
            link.received(&refused, t0, &mut |_| true),
            Err(LinkError::Refused(_))
        ));
        let mut link = Link::new(cfg(&[], true), t0);
        assert!(link
            .received(&[0xff, 0xff, 0xff, 0xff, 0xff], t0, &mut |_| true)
            .is_err());
        assert_eq!(
            Link::new(cfg(&[], true), t0).poll(
                t0 + Duration::from_secs(CLOUD_CONNACK_TIMEOUT_SECS),
                &mut spool
            ),
            Err(LinkError::Timeout("CONNACK"))
        );
    }

    #[test]
    fn keepalive_ping() {
        let t0 = Instant::now();
        let mut spool = Spool::memory(1 << 20);
        let mut link = Link::new(cfg(&[], false), t0);
        link.take_output();
        link.received(
            &encode(|b| v4::ConnAck::new(v4::ConnectReturnCode::Success, false).write(b)),
            t0,
            &mut |_| true,
        )
        .unwrap();
        let next = link.poll(t0, &mut spool).unwrap();
        assert_eq!(next, t0 + Duration::from_secs(30));
        link.poll(next, &mut spool).unwrap();
        assert!(matches!(
            packets(&mut link.take_output())[..],
            [Packet::PingReq]
        ));
        assert_eq!(
            link.poll(next + Duration::from_secs(5), &mut spool),
            Err(LinkError::Timeout("PINGRESP"))
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let d: Vec<Duration> = (0..10).map(|_| b.next_delay(u32::MAX)).collect();
        assert_eq!(d[0], Duration::from_secs(1));
        assert_eq!(d[3], Duration::from_secs(8));
        assert_eq!(d[9], Duration::from_secs(60));
        assert_eq!(b.next_delay(0), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(0), Duration::from_millis(500));
    }
}
