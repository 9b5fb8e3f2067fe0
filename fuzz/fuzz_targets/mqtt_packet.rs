//! The broker's packet path after TLS: bytes from a device are framed with `mqttbytes::check`
//! against sprig's packet limit and decoded with `mqttbytes::v4::read`, frame after frame, as
//! the connection loop does; topic names and filters in what decodes go through sprig's
//! validation. Errors end the connection, never the process.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mqttbytes::v4::{self, Packet};
use sprig::topic::{validate_topic_filter, validate_topic_name};

/// The broker's frame limit: the largest payload plus room for the header and topic.
const MAX_PACKET: usize = sprig::limits::MAX_PAYLOAD_BYTES + 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        match mqttbytes::check(buf.iter(), MAX_PACKET) {
            Ok(_) => {}
            Err(_) => return, // incomplete, oversize or malformed header: wait or close
        }
        match v4::read(&mut buf, MAX_PACKET) {
            Ok(Packet::Publish(p)) => {
                let _ = validate_topic_name(&p.topic);
            }
            Ok(Packet::Subscribe(s)) => {
                for f in &s.filters {
                    let _ = validate_topic_filter(&f.path);
                }
            }
            Ok(Packet::Unsubscribe(u)) => {
                for t in &u.topics {
                    let _ = validate_topic_filter(t);
                }
            }
            Ok(Packet::Connect(c)) => {
                let _ = c.client_id.len();
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
});
