//! One serialized value, as a `DUMP` payload carries it (type byte + value
//! bytes), wrapped in a minimal well-formed RDB (header, one key, end
//! marker, correct CRC-64) so every input reaches the value walk and the
//! decoder used by command replay, and not only those that guess the
//! framing and checksum. Input: a version byte, a type byte, the value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redback::rdb::{Item, Parser, crc64, decode, validate};

/// Redis RDB versions 1–12 and Valkey 9's 80.
fn header(pick: u8) -> Vec<u8> {
    match pick % 13 {
        12 => b"VALKEY080".to_vec(),
        v => format!("REDIS{:04}", v + 1).into_bytes(),
    }
}

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    let [pick, rdb_type, value @ ..] = data else {
        return;
    };
    let mut file = header(*pick);
    file.push(*rdb_type);
    file.extend_from_slice(&[1, b'k']);
    file.extend_from_slice(value);
    file.push(0xff);
    let crc = crc64(0, &file);
    file.extend_from_slice(&crc.to_le_bytes());

    let validated = validate(&file[..]);
    let Ok(mut parser) = Parser::new(&file[..]) else {
        return;
    };
    let version = parser.version();
    loop {
        match parser.next() {
            Ok(Some(Item::Key(entry))) => {
                let payload = entry.dump_payload(version);
                let (body, crc) = payload.split_at(payload.len() - 8);
                assert_eq!(crc64(0, body).to_le_bytes(), crc);
                let _ = decode(&entry, version);
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                assert!(
                    validated.is_ok(),
                    "the parser accepted what validate refused"
                );
                break;
            }
            Err(_) => {
                assert!(
                    validated.is_err(),
                    "validate accepted what the parser refused"
                );
                break;
            }
        }
    }
});
