//! Request builders shared by the stream manager's unit tests (`wire`, `session`): the CBOR
//! maps and frames the stock client sends.

use minicbor::Encoder;

/// The CBOR that `f` writes.
pub fn cbor(f: impl FnOnce(&mut Encoder<Vec<u8>>)) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    f(&mut e);
    e.into_writer()
}

/// A frame: length (op byte + payload), op, payload.
pub fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = ((payload.len() + 1) as i32).to_be_bytes().to_vec();
    v.push(op);
    v.extend_from_slice(payload);
    v
}

/// The frame of an `op` request whose CBOR payload `f` writes.
pub fn request(op: u8, f: impl FnOnce(&mut Encoder<Vec<u8>>)) -> Vec<u8> {
    frame(op, &cbor(f))
}

/// An append request's payload.
pub fn append(request_id: &str, name: &str, payload: &[u8]) -> Vec<u8> {
    cbor(|e| {
        e.map(3).unwrap();
        e.str("requestId").unwrap().str(request_id).unwrap();
        e.str("name").unwrap().str(name).unwrap();
        e.str("payload").unwrap().bytes(payload).unwrap();
    })
}

/// A read request's payload; `options` (key, value) go into `readMessagesOptions`, which is
/// left out when there are none.
pub fn read(request_id: &str, stream: &str, options: &[(&str, u64)]) -> Vec<u8> {
    cbor(|e| {
        e.map(2 + u64::from(!options.is_empty())).unwrap();
        e.str("requestId").unwrap().str(request_id).unwrap();
        e.str("streamName").unwrap().str(stream).unwrap();
        if !options.is_empty() {
            e.str("readMessagesOptions").unwrap();
            e.map(options.len() as u64).unwrap();
            for (k, v) in options {
                e.str(k).unwrap().u64(*v).unwrap();
            }
        }
    })
}

/// A `MessageStreamDefinition` of a Memory stream that rejects new data when full.
pub fn memory_definition(e: &mut Encoder<Vec<u8>>, name: &str) {
    e.map(3).unwrap();
    e.str("name").unwrap().str(name).unwrap();
    e.str("strategyOnFull").unwrap().u8(0).unwrap();
    e.str("persistence").unwrap().u8(1).unwrap();
}
