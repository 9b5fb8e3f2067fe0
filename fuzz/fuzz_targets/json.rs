//! sprig's JSON reader on arbitrary bytes: never panics, never recurses past its depth limit,
//! and what it accepts the writer writes back in a form the reader accepts again, unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sprig::json;
use sprig::limits::{MAX_GROUP_JSON_BYTES, MAX_JSON_DEPTH};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = json::parse(data, MAX_GROUP_JSON_BYTES, MAX_JSON_DEPTH) else { return };
    let text = json::to_string(&v);
    // A bigger limit: escaping can make the written form longer than the input.
    let again = json::parse(text.as_bytes(), usize::MAX, MAX_JSON_DEPTH)
        .unwrap_or_else(|e| panic!("writer output not readable: {e}\n{text}"));
    assert_eq!(json::to_string(&again), text, "write(read(write(v))) != write(v)");
});
