//! The RDB parser on arbitrary bytes, the way a backup (validate) and a
//! restore (parse, select keys, cut DUMP payloads, decode for replay) read
//! it. Corrupt input must be an error, never a panic, a hang or an
//! allocation larger than the bytes read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redback::rdb::{Item, Parser, crc64, decode, validate};

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    // The backup's path: structure, end marker, checksum, statistics.
    let validated = validate(data);

    // The restore's path: every key's value captured, half of them selected.
    let Ok(mut parser) = Parser::new(data) else {
        assert!(
            validated.is_err(),
            "validate accepted a header Parser refused"
        );
        return;
    };
    let version = parser.version();
    let mut n = 0u64;
    let mut select = |_db: u64, key: &[u8]| {
        n += 1;
        n % 2 == 1 || key.first() == Some(&b'k')
    };
    let ended_well = loop {
        match parser.next_selecting(&mut select) {
            Ok(Some(Item::Key(entry))) if entry.selected => {
                let payload = entry.dump_payload(version);
                // A DUMP payload: type byte, value, version, CRC-64 of all before.
                assert_eq!(payload.len(), entry.value.len() + 11);
                assert_eq!(payload[0], entry.rdb_type);
                let (body, crc) = payload.split_at(payload.len() - 8);
                assert_eq!(crc64(0, body).to_le_bytes(), crc);
                let _ = decode(&entry, version);
            }
            Ok(Some(_)) => {}
            Ok(None) => break true,
            Err(_) => {
                // Any error is final.
                assert!(parser.next().is_err());
                break false;
            }
        }
    };
    // Both passes read the same file the same way.
    assert_eq!(
        ended_well,
        validated.is_ok(),
        "validate and the parser disagree"
    );
});
