//! One client connection, sans-IO: bytes in → store operations → response frames out.
//!
//! The connect handshake (version byte, ConnectRequest, token check), then pipelined requests
//! answered by requestId. A read that cannot be served yet is parked (at most
//! `STREAM_MAX_PARKED_READS`) and answered by [`Session::tick`] once enough messages arrived
//! or its timeout passed, so it never delays the other replies on the connection.

use minicbor::Encoder;

use super::store::{Info, Message, Store};
use super::wire::{self, op, Frame, ReadOptions, Request, Response, Status};
use crate::limits;

/// What a session needs from the world for one step.
pub struct Ctx<'a> {
    pub store: &'a mut Store,
    /// Milliseconds since the Unix epoch (ingest times and read deadlines).
    pub now_ms: u64,
    /// Whether a token is a live worker's token (the Lambda runner's check).
    pub token_ok: &'a dyn Fn(&str) -> bool,
    /// `STREAM_MANAGER_AUTHENTICATE_CLIENT`.
    pub authenticate: bool,
    /// Set when a message was appended (other sessions' parked reads may now be served).
    pub appended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Version,
    Connect,
    Ready,
}

struct Parked {
    id: String,
    name: String,
    opts: ReadOptions,
    deadline_ms: u64,
}

/// One connection's protocol state.
pub struct Session {
    state: State,
    buf: Vec<u8>,
    parked: Vec<Parked>,
    /// `tick` stopped at the output bound with reads still answerable.
    tick_cut: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    pub fn new() -> Session {
        Session {
            state: State::Version,
            buf: Vec::new(),
            parked: Vec::new(),
            tick_cut: false,
        }
    }

    /// Whether work is left without new input: a whole frame buffered, or answerable reads
    /// left by `tick`, because one step stops once `STREAM_MAX_READ_RESPONSE_BYTES` of
    /// replies are waiting (so one step never builds more than about two responses' worth).
    /// Call `input(&[])` after writing the output.
    pub fn pending(&self) -> bool {
        self.tick_cut
            || (self.state != State::Version
                && matches!(wire::parse_frame(&self.buf), Ok(Frame::Whole { .. })))
    }

    /// Takes bytes from the client; response frames are appended to `out`. `Err(reason)`:
    /// write `out`, then close the connection.
    pub fn input(&mut self, data: &[u8], ctx: &mut Ctx, out: &mut Vec<u8>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        let mut used = 0;
        let res = loop {
            if out.len() >= limits::STREAM_MAX_READ_RESPONSE_BYTES {
                break Ok(());
            }
            let rest = &self.buf[used..];
            if self.state == State::Version {
                match rest.first() {
                    None => break Ok(()),
                    Some(&wire::CONNECT_VERSION) => {
                        used += 1;
                        self.state = State::Connect;
                        continue;
                    }
                    Some(v) => break Err(format!("connect version {v} is not 1")),
                }
            }
            match wire::parse_frame(rest) {
                Err(e) => break Err(e.to_string()),
                Ok(Frame::Partial) => break Ok(()),
                Ok(Frame::Whole {
                    op,
                    payload,
                    used: n,
                }) => {
                    let payload = payload.to_vec();
                    used += n;
                    if let Err(e) = self.frame(op, &payload, ctx, out) {
                        break Err(e);
                    }
                }
            }
        };
        self.buf.drain(..used);
        // A big frame's buffer is not kept for the life of the connection.
        if self.buf.capacity() > 64 * 1024 && self.buf.len() < 16 * 1024 {
            self.buf.shrink_to(16 * 1024);
        }
        res
    }

    fn frame(
        &mut self,
        op: u8,
        payload: &[u8],
        ctx: &mut Ctx,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let decoded = wire::decode_request(op, payload);
        if self.state == State::Connect {
            return self.connect(op, decoded, ctx, out);
        }
        let (id, req) = match decoded {
            Ok(x) => x,
            Err(r) => {
                let Some(id) = r.request_id else {
                    return Err(format!("op {op}: {} (no requestId to answer)", r.message));
                };
                out.extend(wire::error_frame(op, &id, r.status, &r.message));
                return Ok(());
            }
        };
        let resp = op::response_of(op);
        let reply = |status: Status, m: &str| wire::error_frame(op, &id, status, m);
        let frame = match req {
            Request::Connect { .. } => reply(Status::InvalidRequest, "already connected"),
            Request::Create(def) => match ctx.store.create(def) {
                Ok(()) => Response::new(resp, &id, Status::Success, None, 0).finish(),
                Err(e) => reply(e.status(), &e.to_string()),
            },
            Request::Update(def) => match ctx.store.update(def) {
                Ok(()) => Response::new(resp, &id, Status::Success, None, 0).finish(),
                Err(e) => reply(e.status(), &e.to_string()),
            },
            Request::Delete(name) => match ctx.store.delete(&name) {
                Ok(()) => Response::new(resp, &id, Status::Success, None, 0).finish(),
                Err(e) => reply(e.status(), &e.to_string()),
            },
            Request::Append { name, payload } => {
                match ctx.store.append(&name, &payload, ctx.now_ms) {
                    Ok(seq) => {
                        ctx.appended = true;
                        let mut r = Response::new(resp, &id, Status::Success, None, 1);
                        let _ = r.enc().str("sequenceNumber").and_then(|e| e.u64(seq));
                        r.finish()
                    }
                    Err(e) => reply(e.status(), &e.to_string()),
                }
            }
            Request::List => {
                let names = ctx.store.names();
                let mut r = Response::new(resp, &id, Status::Success, None, 1);
                let _ = r
                    .enc()
                    .str("streams")
                    .and_then(|e| e.array(names.len() as u64));
                for n in &names {
                    let _ = r.enc().str(n);
                }
                r.finish()
            }
            Request::Describe(name) => match ctx.store.info(&name) {
                Ok(info) => {
                    let mut r = Response::new(resp, &id, Status::Success, None, 1);
                    let _ = r.enc().str("messageStreamInfo");
                    encode_info(r.enc(), &info);
                    r.finish()
                }
                Err(e) => reply(e.status(), &e.to_string()),
            },
            Request::Read { name, options } => {
                if let Some(f) = read_now(ctx, &id, &name, options, false) {
                    f
                } else if self.parked.len() >= limits::STREAM_MAX_PARKED_READS {
                    reply(
                        Status::InvalidRequest,
                        &format!(
                            "this connection already waits in {} reads; sprig allows no more",
                            limits::STREAM_MAX_PARKED_READS
                        ),
                    )
                } else {
                    let wait = options.timeout_ms.min(limits::STREAM_MAX_READ_TIMEOUT_MS);
                    self.parked.push(Parked {
                        id,
                        name,
                        opts: options,
                        deadline_ms: ctx.now_ms + wait,
                    });
                    return Ok(());
                }
            }
        };
        out.extend(frame);
        Ok(())
    }

    fn connect(
        &mut self,
        op: u8,
        decoded: Result<(String, Request), wire::Refusal>,
        ctx: &mut Ctx,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let (id, req) = decoded.map_err(|r| format!("bad ConnectRequest: {}", r.message))?;
        let Request::Connect {
            protocol_version,
            other_versions,
            auth_token,
        } = req
        else {
            return Err(format!("expected a ConnectRequest, got op {op}"));
        };
        let version = std::iter::once(&protocol_version)
            .chain(other_versions.iter())
            .find(|v| wire::SUPPORTED_PROTOCOL_VERSIONS.contains(&v.as_str()));
        let refusal = if version.is_none() {
            Some((
                Status::UnsupportedProtocolVersion,
                format!(
                    "protocol version {protocol_version:?} is not supported; sprig speaks {}",
                    wire::SUPPORTED_PROTOCOL_VERSIONS.join(", ")
                ),
            ))
        } else if ctx.authenticate && !auth_token.as_deref().is_some_and(|t| (ctx.token_ok)(t)) {
            Some((
                Status::Unauthorized,
                if auth_token.is_none() {
                    "no authToken: STREAM_MANAGER_AUTHENTICATE_CLIENT is true, so only Lambda functions of the group (AWS_CONTAINER_AUTHORIZATION_TOKEN) may connect".into()
                } else {
                    "the authToken is not a running Lambda function's token".into()
                },
            ))
        } else {
            None
        };
        out.push(wire::CONNECT_VERSION);
        let (status, msg) = match &refusal {
            Some((s, m)) => (*s, Some(m.as_str())),
            None => (Status::Success, None),
        };
        let mut r = Response::new(op::CONNECT_RESPONSE, &id, status, msg, 3);
        let v = version.map_or(wire::PROTOCOL_VERSION, |v| v.as_str());
        let e = r.enc();
        let _ = e.str("protocolVersion").and_then(|e| e.str(v));
        let _ = e
            .str("serverVersion")
            .and_then(|e| e.str(wire::PROTOCOL_VERSION));
        let _ = e
            .str("supportedProtocolVersions")
            .and_then(|e| e.array(wire::SUPPORTED_PROTOCOL_VERSIONS.len() as u64));
        for v in wire::SUPPORTED_PROTOCOL_VERSIONS {
            let _ = e.str(v);
        }
        out.extend(r.finish());
        match refusal {
            Some((_, m)) => Err(m),
            None => {
                self.state = State::Ready;
                Ok(())
            }
        }
    }

    /// Answers the parked reads that can be answered now (enough messages, timed out, or the
    /// stream deleted).
    pub fn tick(&mut self, ctx: &mut Ctx, out: &mut Vec<u8>) {
        let mut i = 0;
        self.tick_cut = false;
        while i < self.parked.len() {
            if out.len() >= limits::STREAM_MAX_READ_RESPONSE_BYTES {
                self.tick_cut = true;
                return;
            }
            let p = &self.parked[i];
            let timed_out = ctx.now_ms >= p.deadline_ms;
            if let Some(f) = read_now(ctx, &p.id, &p.name, p.opts, timed_out) {
                out.extend(f);
                self.parked.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// When the earliest parked read times out (ms since the epoch).
    pub fn next_deadline(&self) -> Option<u64> {
        self.parked.iter().map(|p| p.deadline_ms).min()
    }

    /// Whether reads wait for appends.
    pub fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }
}

/// The response to a read if it can be given now: enough messages, no wait asked, the wait
/// is over (`final_try`), or an error.
fn read_now(ctx: &Ctx, id: &str, name: &str, o: ReadOptions, final_try: bool) -> Option<Vec<u8>> {
    let err = |s: Status, m: &str| Some(wire::error_frame(op::READ, id, s, m));
    if let Err(e) = ctx.store.info(name) {
        return err(e.status(), &e.to_string());
    }
    let avail = ctx.store.available(name, o.start);
    if avail < o.min {
        if o.timeout_ms == 0 || final_try {
            return err(
                Status::NotEnoughMessages,
                &format!(
                    "{avail} message(s) from sequence number {} in stream {name:?}; minMessageCount is {}",
                    o.start, o.min
                ),
            );
        }
        return None;
    }
    match ctx
        .store
        .read(name, o.start, o.max, limits::STREAM_MAX_READ_RESPONSE_BYTES)
    {
        Err(e) => err(Status::MessageStoreReadError, &e.to_string()),
        Ok(msgs) if (msgs.len() as u64) < o.min => err(
            Status::ResponsePayloadTooLarge,
            &format!(
                "{} messages do not fit in one response of at most {} bytes; lower minMessageCount",
                o.min,
                limits::STREAM_MAX_READ_RESPONSE_BYTES
            ),
        ),
        Ok(msgs) => Some(messages_frame(id, name, &msgs)),
    }
}

fn messages_frame(id: &str, name: &str, msgs: &[Message]) -> Vec<u8> {
    let mut r = Response::new(op::response_of(op::READ), id, Status::Success, None, 1);
    let e = r.enc();
    let _ = e.str("messages").and_then(|e| e.array(msgs.len() as u64));
    for m in msgs {
        let _ = e.map(4);
        let _ = e.str("streamName").and_then(|e| e.str(name));
        let _ = e.str("sequenceNumber").and_then(|e| e.u64(m.seq));
        let _ = e.str("ingestTime").and_then(|e| e.u64(m.ingest_ms));
        let _ = e.str("payload").and_then(|e| e.bytes(&m.payload));
    }
    r.finish()
}

fn encode_info(e: &mut Encoder<Vec<u8>>, info: &Info) {
    let _ = e.map(3).and_then(|e| e.str("definition"));
    wire::encode_definition(e, info.definition);
    let _ = e.str("storageStatus").and_then(|e| e.map(3));
    let _ = e
        .str("oldestSequenceNumber")
        .and_then(|e| e.u64(info.oldest));
    let _ = e
        .str("newestSequenceNumber")
        .and_then(|e| e.i64(info.newest));
    let _ = e.str("totalBytes").and_then(|e| e.u64(info.bytes));
    let _ = e
        .str("exportStatuses")
        .and_then(|e| e.array(info.exports.len() as u64));
    for x in info.exports {
        let n = 4 + u64::from(x.last_time_ms > 0) + u64::from(x.error.is_some());
        let _ = e.map(n);
        let _ = e
            .str("exportConfigIdentifier")
            .and_then(|e| e.str(&x.identifier));
        let _ = e
            .str("lastExportedSequenceNumber")
            .and_then(|e| e.i64(x.next as i64 - 1));
        if x.last_time_ms > 0 {
            let _ = e.str("lastExportTime").and_then(|e| e.u64(x.last_time_ms));
        }
        if let Some(m) = &x.error {
            let _ = e.str("errorMessage").and_then(|e| e.str(m));
        }
        let _ = e
            .str("exportedBytesFromStream")
            .and_then(|e| e.u64(x.bytes));
        let _ = e
            .str("exportedMessagesCount")
            .and_then(|e| e.u64(x.messages));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::wire::testing::{self as req, cbor, frame, memory_definition, request};
    use crate::streams::wire::Frame;
    use minicbor::Decoder;

    fn connect(token: Option<&str>) -> Vec<u8> {
        let mut v = vec![1];
        v.extend(request(op::CONNECT, |e| {
            e.map(2 + u64::from(token.is_some())).unwrap();
            e.str("requestId").unwrap().str("c").unwrap();
            e.str("protocolVersion").unwrap().str("1.1.0").unwrap();
            if let Some(t) = token {
                e.str("authToken").unwrap().str(t).unwrap();
            }
        }));
        v
    }

    /// (op, requestId, status) of every frame in `out`.
    fn replies(out: &[u8]) -> Vec<(u8, String, u8)> {
        let mut v = Vec::new();
        let mut rest = out;
        while let Ok(Frame::Whole { op, payload, used }) = wire::parse_frame(rest) {
            let mut d = Decoder::new(payload);
            d.map().unwrap();
            d.str().unwrap();
            let id = d.str().unwrap().to_owned();
            d.str().unwrap();
            v.push((op, id, d.u8().unwrap()));
            rest = &rest[used..];
        }
        v
    }

    struct T {
        store: Store,
        _dir: crate::streams::store::tests_support::Tmp,
    }

    fn store() -> T {
        let dir = crate::streams::store::tests_support::Tmp::new("session");
        T {
            store: Store::open(&dir.0, 1 << 20),
            _dir: dir,
        }
    }

    fn step(
        s: &mut Session,
        st: &mut Store,
        auth: bool,
        now: u64,
        data: &[u8],
    ) -> (Result<(), String>, Vec<u8>) {
        let live = |t: &str| t == "live";
        let mut ctx = Ctx {
            store: st,
            now_ms: now,
            token_ok: &live,
            authenticate: auth,
            appended: false,
        };
        let mut out = Vec::new();
        let r = s.input(data, &mut ctx, &mut out);
        s.tick(&mut ctx, &mut out);
        (r, out)
    }

    #[test]
    fn handshake_checks_the_token_when_asked() {
        let mut t = store();
        for (auth, token, ok) in [
            (true, None, false),
            (true, Some("dead"), false),
            (true, Some("live"), true),
            (false, None, true),
        ] {
            let mut s = Session::new();
            let (r, out) = step(&mut s, &mut t.store, auth, 0, &connect(token));
            assert_eq!(r.is_ok(), ok, "{auth} {token:?}");
            assert_eq!(out[0], 1, "the connect version byte comes first");
            let want = if ok { 0 } else { Status::Unauthorized as u8 };
            assert_eq!(
                replies(&out[1..]),
                [(op::CONNECT_RESPONSE, "c".to_string(), want)]
            );
        }
        let mut s = Session::new();
        assert!(step(&mut s, &mut t.store, false, 0, &[2]).0.is_err());
    }

    #[test]
    fn a_parked_read_does_not_hold_back_later_replies() {
        let mut t = store();
        let mut s = Session::new();
        let _ = step(&mut s, &mut t.store, false, 0, &connect(None));
        let create = request(op::CREATE, |e| {
            e.map(2).unwrap();
            e.str("requestId").unwrap().str("1").unwrap();
            e.str("definition").unwrap();
            memory_definition(e, "s");
        });
        let read = frame(
            op::READ,
            &req::read("2", "s", &[("readTimeoutMillis", 5000)]),
        );
        let append = |id: &str| frame(op::APPEND, &req::append(id, "s", b"x"));
        // Create, a read that must wait, and one byte of the next request, in one segment.
        let mut data = [create, read].concat();
        let a3 = append("3");
        data.push(a3[0]);
        let (r, out) = step(&mut s, &mut t.store, false, 1000, &data);
        assert!(r.is_ok());
        assert_eq!(replies(&out), [(7, "1".to_string(), 0)]);
        assert_eq!(s.next_deadline(), Some(6000));
        // The append is answered, then the parked read (tick after the append).
        let (_, out) = step(&mut s, &mut t.store, false, 1001, &a3[1..]);
        assert_eq!(
            replies(&out),
            [(9, "3".to_string(), 0), (10, "2".to_string(), 0)]
        );
        assert!(!s.has_parked());
        // A read that times out gets NotEnoughMessages.
        let read2 = frame(
            op::READ,
            &req::read(
                "4",
                "s",
                &[
                    ("desiredStartSequenceNumber", 1),
                    ("readTimeoutMillis", 100),
                ],
            ),
        );
        let (_, out) = step(&mut s, &mut t.store, false, 2000, &read2);
        assert!(out.is_empty());
        let (_, out) = step(&mut s, &mut t.store, false, 2100, &[]);
        assert_eq!(
            replies(&out),
            [(10, "4".to_string(), Status::NotEnoughMessages as u8)]
        );
    }

    #[test]
    fn one_step_builds_a_bounded_amount_of_replies() {
        let mut t = store();
        let mut d = wire::decode_definition(&cbor(|e| memory_definition(e, "big"))).unwrap();
        d.max_size = 1 << 20;
        t.store.create(d).unwrap();
        t.store.append("big", &vec![1; 400 * 1024], 0).unwrap();
        let mut s = Session::new();
        let _ = step(&mut s, &mut t.store, false, 0, &connect(None));
        let reads: Vec<u8> = (0..6)
            .flat_map(|i| frame(op::READ, &req::read(&i.to_string(), "big", &[])))
            .collect();
        let (_, out) = step(&mut s, &mut t.store, false, 0, &reads);
        let first = replies(&out).len();
        assert!((1..6).contains(&first), "{first}");
        assert!(s.pending());
        let mut total = first;
        while s.pending() {
            let (_, out) = step(&mut s, &mut t.store, false, 0, &[]);
            total += replies(&out).len();
        }
        assert_eq!(total, 6);
    }
}
