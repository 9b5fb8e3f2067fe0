//! The on-disk record of the FileSystem spool, and its CRC-32.
//!
//! Layout (little-endian): `len: u32` (body bytes) | `crc: u32` (CRC-32/ISO-HDLC of the body) |
//! body = `seq: u64` | `qos: u8` | `topic_len: u16` | topic (UTF-8) | payload.
//! A reader that runs out of bytes gets [`DecodeError::Truncated`]: that is how a torn tail
//! (the process killed mid-write) looks, as opposed to damage ([`DecodeError::BadChecksum`],
//! [`DecodeError::Malformed`]).

use crate::limits::{MAX_PAYLOAD_BYTES, SPOOL_MAX_TOPIC_BYTES};

/// Bytes before the body: length and checksum.
pub const HEADER_BYTES: usize = 8;
/// Fixed part of the body: seq, qos, topic length.
pub const BODY_FIXED_BYTES: usize = 11;
/// Largest body a valid record can have.
pub const MAX_BODY_BYTES: usize = BODY_FIXED_BYTES + SPOOL_MAX_TOPIC_BYTES + MAX_PAYLOAD_BYTES;

/// One decoded record, borrowing from the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub seq: u64,
    pub qos: u8,
    pub topic: &'a str,
    pub payload: &'a [u8],
}

/// Why bytes are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends inside the record (a torn write); `need` is the full record size when
    /// the header was readable, else 0.
    Truncated { need: usize },
    /// The body does not match its checksum.
    BadChecksum,
    /// Length, QoS or topic out of range, or the topic is not UTF-8.
    Malformed,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { .. } => f.write_str("record truncated (torn write)"),
            DecodeError::BadChecksum => f.write_str("record checksum mismatch"),
            DecodeError::Malformed => f.write_str("record malformed"),
        }
    }
}

/// Decodes the record at the start of `buf`; returns it and the bytes it took.
/// Never panics, whatever the input (the fuzz target calls this).
pub fn decode_record(buf: &[u8]) -> Result<(Record<'_>, usize), DecodeError> {
    if buf.len() < HEADER_BYTES {
        return Err(DecodeError::Truncated { need: 0 });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if !(BODY_FIXED_BYTES..=MAX_BODY_BYTES).contains(&len) {
        return Err(DecodeError::Malformed);
    }
    let total = HEADER_BYTES + len;
    let Some(body) = buf.get(HEADER_BYTES..total) else {
        return Err(DecodeError::Truncated { need: total });
    };
    if crc32(body) != crc {
        return Err(DecodeError::BadChecksum);
    }
    let rec = decode_body(body)?;
    Ok((rec, total))
}

/// Decodes a checksummed body (`len` and `crc` already checked).
pub fn decode_body(body: &[u8]) -> Result<Record<'_>, DecodeError> {
    if body.len() < BODY_FIXED_BYTES {
        return Err(DecodeError::Malformed);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&body[..8]);
    let qos = body[8];
    let topic_len = u16::from_le_bytes([body[9], body[10]]) as usize;
    if qos > 1 || topic_len == 0 || topic_len > SPOOL_MAX_TOPIC_BYTES {
        return Err(DecodeError::Malformed);
    }
    let Some(topic) = body.get(BODY_FIXED_BYTES..BODY_FIXED_BYTES + topic_len) else {
        return Err(DecodeError::Malformed);
    };
    let topic = std::str::from_utf8(topic).map_err(|_| DecodeError::Malformed)?;
    Ok(Record {
        seq: u64::from_le_bytes(seq),
        qos,
        topic,
        payload: &body[BODY_FIXED_BYTES + topic_len..],
    })
}

/// Appends the encoded record to `out`. The caller has checked the topic and payload sizes.
pub fn encode_record(out: &mut Vec<u8>, seq: u64, qos: u8, topic: &str, payload: &[u8]) {
    let start = out.len();
    let body_len = BODY_FIXED_BYTES + topic.len() + payload.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(qos);
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out[start + HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (ISO-HDLC, the zlib/PNG one), table built at compile time: 1 KiB, no crate.
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn roundtrip_and_every_prefix_is_truncated() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 42, 1, "a/b", b"hello");
        let (rec, used) = decode_record(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            (rec.seq, rec.qos, rec.topic, rec.payload),
            (42, 1, "a/b", &b"hello"[..])
        );
        for cut in 0..buf.len() {
            assert!(matches!(
                decode_record(&buf[..cut]),
                Err(DecodeError::Truncated { .. })
            ));
        }
    }

    #[test]
    fn flipped_bits_are_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, 7, 1, "t", b"payload");
        for i in HEADER_BYTES..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x10;
            assert_eq!(decode_record(&b), Err(DecodeError::BadChecksum), "byte {i}");
        }
        let mut b = buf.clone();
        b[0] = 3; // body length below the fixed part
        assert_eq!(decode_record(&b), Err(DecodeError::Malformed));
    }
}
