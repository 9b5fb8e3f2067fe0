use super::testing::{append, cbor, frame, read};
use super::*;

#[test]
fn frames_partial_whole_and_bad() {
    let f = frame(4, b"\xa0");
    for cut in 0..f.len() {
        assert_eq!(parse_frame(&f[..cut]), Ok(Frame::Partial));
    }
    assert_eq!(
        parse_frame(&f),
        Ok(Frame::Whole {
            op: 4,
            payload: b"\xa0",
            used: 6
        })
    );
    assert_eq!(
        parse_frame(&0i32.to_be_bytes()),
        Err(FrameError::BadLength(0))
    );
    assert_eq!(
        parse_frame(&(-3i32).to_be_bytes()),
        Err(FrameError::BadLength(-3))
    );
    let big = (limits::STREAM_MAX_FRAME_BYTES as i32 + 1).to_be_bytes();
    assert!(matches!(parse_frame(&big), Err(FrameError::TooLarge(_))));
}

#[test]
fn append_request_and_its_refusals() {
    let p = append("r1", "s 1,a.b-c_d", b"hi");
    assert_eq!(
        decode_request(op::APPEND, &p),
        Ok((
            "r1".into(),
            Request::Append {
                name: "s 1,a.b-c_d".into(),
                payload: b"hi".to_vec()
            }
        ))
    );
    let bad_name = append("r2", "a/b", b"hi");
    let r = decode_request(op::APPEND, &bad_name).unwrap_err();
    assert_eq!(
        (r.request_id.as_deref(), r.status),
        (Some("r2"), Status::InvalidRequest)
    );
    assert!(r.message.contains("'/'"), "{}", r.message);
    let big = vec![0u8; limits::STREAM_MAX_MESSAGE_BYTES + 1];
    let too_big = append("r3", "s", &big);
    assert_eq!(
        decode_request(op::APPEND, &too_big).unwrap_err().status,
        Status::RequestPayloadTooLarge
    );
    // Not a map, or no id: nothing to answer.
    assert_eq!(
        decode_request(op::APPEND, b"\x01").unwrap_err().request_id,
        None
    );
    let unknown = cbor(|e| {
        e.map(1).unwrap();
        e.str("requestId").unwrap().str("r4").unwrap();
    });
    assert_eq!(
        decode_request(99, &unknown).unwrap_err().status,
        Status::UnknownOperation
    );
    assert_eq!(op::response_of(99), op::UNKNOWN_OPERATION_ERROR);
}

#[test]
fn definition_defaults_ranges_and_round_trip() {
    let p = cbor(|e| {
        e.map(2).unwrap();
        e.str("name").unwrap().str("s").unwrap();
        e.str("strategyOnFull").unwrap().u8(1).unwrap();
    });
    let d = decode_definition(&p).unwrap();
    assert_eq!(
        (
            d.max_size,
            d.segment_size,
            d.ttl_ms,
            d.persistence,
            d.flush_on_write
        ),
        (256 << 20, 16 << 20, None, Persistence::File, false)
    );
    assert_eq!(d.strategy, Strategy::OverwriteOldestData);
    let mut e = Encoder::new(Vec::new());
    encode_definition(&mut e, &d);
    assert_eq!(decode_definition(&e.into_writer()).unwrap(), d);
    let small = cbor(|e| {
        e.map(3).unwrap();
        e.str("name").unwrap().str("s").unwrap();
        e.str("strategyOnFull").unwrap().u8(0).unwrap();
        e.str("maxSize").unwrap().u64(1023).unwrap();
    });
    assert!(decode_definition(&small)
        .unwrap_err()
        .contains("maxSize is 1023"));
    let no_strategy = cbor(|e| {
        e.map(1).unwrap();
        e.str("name").unwrap().str("s").unwrap();
    });
    assert!(decode_definition(&no_strategy)
        .unwrap_err()
        .contains("strategyOnFull"));
}

#[test]
fn exports_http_and_unsupported_kinds() {
    let p = cbor(|e| {
        e.map(3).unwrap();
        e.str("name").unwrap().str("s").unwrap();
        e.str("strategyOnFull").unwrap().u8(0).unwrap();
        e.str("exportDefinition").unwrap().map(2).unwrap();
        e.str("http").unwrap().array(1).unwrap().map(4).unwrap();
        e.str("identifier").unwrap().str("web").unwrap();
        e.str("uri").unwrap().str("http://127.0.0.1:9/x").unwrap();
        e.str("batchSize").unwrap().u32(10).unwrap();
        e.str("exportFormat").unwrap().u8(1).unwrap();
        e.str("kinesis").unwrap().array(1).unwrap().map(2).unwrap();
        e.str("identifier").unwrap().str("k").unwrap();
        e.str("kinesisStreamName").unwrap().str("K").unwrap();
    });
    let d = decode_definition(&p).unwrap();
    assert_eq!(d.http.len(), 1);
    assert_eq!(
        (
            d.http[0].batch_size,
            d.http[0].format,
            d.http[0].batch_interval_ms
        ),
        (10, ExportFormat::JsonBatched, None)
    );
    assert_eq!(d.unsupported, vec![("Kinesis", "k".to_string())]);
    // describe echoes the export definition as received
    let mut e = Encoder::new(Vec::new());
    encode_definition(&mut e, &d);
    let again = decode_definition(&e.into_writer()).unwrap();
    assert_eq!(again, d);
}

#[test]
fn read_options_defaults_and_min_over_max() {
    let p = read("r", "s", &[]);
    let (_, r) = decode_request(op::READ, &p).unwrap();
    assert_eq!(
        r,
        Request::Read {
            name: "s".into(),
            options: ReadOptions {
                start: 0,
                min: 1,
                max: 1,
                timeout_ms: 0
            }
        }
    );
    let p = read("r", "s", &[("minMessageCount", 5), ("maxMessageCount", 2)]);
    assert!(decode_request(op::READ, &p)
        .unwrap_err()
        .message
        .contains("minMessageCount"));
}

#[test]
fn response_frame_layout() {
    let f = error_frame(op::APPEND, "r9", Status::ResourceNotFound, "gone");
    let Ok(Frame::Whole { op, payload, used }) = parse_frame(&f) else {
        panic!("{f:?}")
    };
    assert_eq!((op, used), (9, f.len()));
    let mut d = Decoder::new(payload);
    assert_eq!(d.map().unwrap(), Some(3));
    assert_eq!((d.str().unwrap(), d.str().unwrap()), ("requestId", "r9"));
    assert_eq!((d.str().unwrap(), d.u8().unwrap()), ("status", 5));
    assert_eq!(
        (d.str().unwrap(), d.str().unwrap()),
        ("errorMessage", "gone")
    );
}
