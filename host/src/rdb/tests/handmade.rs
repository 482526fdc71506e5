//! Hand-made files for what no installed server writes: Redis 2.x–6.x
//! encodings, Redis 7.4 hash field TTLs, Valkey 9, modules, functions of
//! the 7.0 release candidates; and the error messages users will read.

use super::build::{RdbFile, cat, len, string};
use crate::rdb::encodings::build as enc;
use crate::rdb::lzf;
use crate::rdb::*;

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn parse(data: &[u8]) -> Result<(Vec<Item>, u32), RdbError> {
    let mut p = Parser::new(data)?;
    let mut items = Vec::new();
    while let Some(i) = p.next()? {
        items.push(i);
    }
    Ok((items, p.version()))
}

fn decoded(data: &[u8]) -> Vec<(Vec<u8>, Value, KeyEntry)> {
    let (items, version) = parse(data).unwrap_or_else(|e| panic!("{e}"));
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Key(k) => Some((
                k.key.clone(),
                decode(&k, version).unwrap_or_else(|e| panic!("{e}")),
                k,
            )),
            _ => None,
        })
        .collect()
}

fn strs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| b(s)).collect()
}

fn file_redis_2x() -> Vec<u8> {
    let mut f = RdbFile::redis(4);
    f.select(0);
    f.raw(&[253]).raw(&1_700_000_000i32.to_le_bytes());
    f.key(0, b"s", &string(b"v"));
    f.key(1, b"l", &cat(&[&len(2), &string(b"a"), &[0xc0, 5]]));
    f.key(2, b"set", &cat(&[&len(1), &string(b"m")]));
    // Old sorted set: scores as text, with the special infinity bytes.
    f.key(
        3,
        b"z",
        &cat(&[
            &len(3),
            &string(b"a"),
            &[3],
            b"1.5",
            &string(b"b"),
            &[254],
            &string(b"c"),
            &[255],
        ]),
    );
    f.key(4, b"h", &cat(&[&len(1), &string(b"f"), &string(b"v")]));
    f.key(
        9,
        b"zm",
        &string(&enc::zipmap(&[(b"f1", b"v1"), (b"f2", b"")])),
    );
    f.key(10, b"zl", &string(&enc::ziplist(&[b"x", b"7", b"-300"])));
    f.key(11, b"is", &string(&enc::intset(2, &[-1, 5])));
    f.key(
        12,
        b"zz",
        &string(&enc::ziplist(&[b"m", b"2", b"n", b"0.25"])),
    );
    f.key(
        13,
        b"hz",
        &string(&enc::ziplist(&[b"f", b"v", b"g", b"12"])),
    );
    f.finish()
}

#[test]
fn redis_2x_encodings_without_checksum() {
    let data = file_redis_2x();
    let got = decoded(&data);
    let values: Vec<Value> = got.iter().map(|g| g.1.clone()).collect();
    assert_eq!(
        values,
        vec![
            Value::String(b("v")),
            Value::List(strs(&["a", "5"])),
            Value::Set(strs(&["m"])),
            Value::ZSet(vec![
                (b("a"), 1.5),
                (b("b"), f64::INFINITY),
                (b("c"), f64::NEG_INFINITY)
            ]),
            Value::Hash(vec![(b("f"), b("v"), None)]),
            Value::Hash(vec![(b("f1"), b("v1"), None), (b("f2"), b(""), None)]),
            Value::List(strs(&["x", "7", "-300"])),
            Value::Set(strs(&["-1", "5"])),
            Value::ZSet(vec![(b("m"), 2.0), (b("n"), 0.25)]),
            Value::Hash(vec![(b("f"), b("v"), None), (b("g"), b("12"), None)]),
        ]
    );
    assert_eq!(got[0].2.expire_at_ms, Some(1_700_000_000_000));
    assert_eq!(got[1].2.expire_at_ms, None);
    let mut p = Parser::new(&data[..]).unwrap();
    while p.next().unwrap().is_some() {}
    assert_eq!(p.checksum(), None);
}

/// A module value: id, then int, uint, float, double, string, EOF.
fn module_value() -> Vec<u8> {
    cat(&[
        &len(0x1234 << 10 | 3),
        &len(1),
        &len(10),
        &len(2),
        &len(20),
        &len(3),
        &1.5f32.to_le_bytes(),
        &len(4),
        &2.5f64.to_le_bytes(),
        &len(5),
        &string(b"blob"),
        &len(0),
    ])
}

fn file_redis_6() -> Vec<u8> {
    let mut f = RdbFile::redis(9);
    f.aux("redis-ver", "6.0.0");
    // A module AUX record (before the keyspace) of module id 0x1234.
    f.raw(&[247]).raw(&len(0x1234)).raw(&cat(&[
        &len(2),
        &len(1),
        &len(5),
        &string(b"aux"),
        &len(0),
    ]));
    f.select(3);
    f.raw(&[251]).raw(&len(3)).raw(&len(0));
    f.raw(&[248]).raw(&len(77)); // LRU idle
    // Quicklist of ziplists, the second node LZF-compressed.
    let node2 = enc::ziplist(&[b"cccccccccccccccccccc", b"cccccccccccccccccccc"]);
    let c2 = lzf::compress_for_tests(&node2);
    f.key(
        14,
        b"ql",
        &cat(&[
            &len(2),
            &string(&enc::ziplist(&[b"a", b"b"])),
            &[0xc3],
            &len(c2.len() as u64),
            &len(node2.len() as u64),
            &c2,
        ]),
    );
    f.raw(&[249, 9]); // LFU counter
    f.key(
        5,
        b"z2",
        &cat(&[&len(1), &string(b"m"), &2.5f64.to_le_bytes()]),
    );
    f.key(7, b"mod", &module_value());
    f.finish()
}

#[test]
fn redis_4_to_6_quicklists_modules_aux() {
    let data = file_redis_6();
    let (items, _) = parse(&data).unwrap();
    assert_eq!(
        items[0],
        Item::Aux {
            key: b("redis-ver"),
            value: b("6.0.0")
        }
    );
    let Item::ModuleAux {
        module_id,
        when,
        raw,
    } = &items[1]
    else {
        panic!("{:?}", items[1])
    };
    assert_eq!((*module_id, *when), (0x1234, 1));
    assert_eq!(raw.last(), Some(&0));
    assert_eq!(items[2], Item::SelectDb(3));
    assert_eq!(
        items[3],
        Item::ResizeDb {
            db_size: 3,
            expires_size: 0
        }
    );
    let got = decoded(&data);
    assert_eq!(got[0].2.idle_secs, Some(77));
    assert_eq!(
        got[0].1,
        Value::List(strs(&[
            "a",
            "b",
            "cccccccccccccccccccc",
            "cccccccccccccccccccc"
        ]))
    );
    assert_eq!(got[1].2.freq, Some(9));
    assert_eq!(got[1].2.idle_secs, None);
    assert_eq!(got[1].1, Value::ZSet(vec![(b("m"), 2.5)]));
    assert_eq!(got[2].2.kind, ValueKind::Module);
    assert_eq!(got[2].2.value, module_value());
    assert_eq!(
        got[2].1,
        Value::Module {
            module_id: 0x1234 << 10 | 3,
            raw: module_value()
        }
    );
}

const MIN_EXPIRE: i64 = 1_800_000_000_000;

fn file_redis_7_4() -> Vec<u8> {
    let mut f = RdbFile::redis(12);
    f.select(0);
    f.raw(&[244]).raw(&len(100)).raw(&len(4)).raw(&len(1));
    // 22 (7.4 RC): absolute TTLs; 24: TTLs relative to the minimum, + 1.
    f.key(
        22,
        b"h22",
        &cat(&[
            &len(2),
            &len(0),
            &string(b"a"),
            &string(b"1"),
            &len(5000),
            &string(b"b"),
            &string(b"2"),
        ]),
    );
    f.key(
        24,
        b"h24",
        &cat(&[
            &MIN_EXPIRE.to_le_bytes(),
            &len(2),
            &len(1),
            &string(b"a"),
            &string(b"1"),
            &len(0),
            &string(b"b"),
            &string(b"2"),
        ]),
    );
    let lp = enc::listpack(&[b"f", b"v", b"0", b"g", b"w", b"1800000000500"]);
    f.key(23, b"h23", &string(&lp));
    f.key(25, b"h25", &cat(&[&MIN_EXPIRE.to_le_bytes(), &string(&lp)]));
    f.finish()
}

#[test]
fn redis_7_4_hash_field_ttls_and_slot_info() {
    let data = file_redis_7_4();
    let (items, _) = parse(&data).unwrap();
    assert_eq!(
        items[1],
        Item::SlotInfo {
            slot_id: 100,
            slot_size: 4,
            expires_slot_size: 1
        }
    );
    let got = decoded(&data);
    let hash = |v: &Value| match v {
        Value::Hash(h) => h.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        hash(&got[0].1),
        vec![(b("a"), b("1"), None), (b("b"), b("2"), Some(5000))]
    );
    assert_eq!(
        hash(&got[1].1),
        vec![(b("a"), b("1"), Some(MIN_EXPIRE)), (b("b"), b("2"), None)]
    );
    let lp_want = vec![
        (b("f"), b("v"), None),
        (b("g"), b("w"), Some(1_800_000_000_500)),
    ];
    assert_eq!(hash(&got[2].1), lp_want);
    assert_eq!(hash(&got[3].1), lp_want);
    let stats = validate(&data[..]).unwrap();
    assert_eq!(stats.by_type["hash-ttl"].keys, 1);
    assert_eq!(stats.by_kind["hash"].keys, 4);
}

fn file_valkey_9() -> Vec<u8> {
    let mut f = RdbFile::valkey(80);
    f.aux("valkey-ver", "9.0.0");
    f.raw(&[243]).raw(&string(&[b'j'; 40])).raw(&len(2));
    f.raw(&cat(&[&len(0), &len(100), &len(200), &len(16383)]));
    f.select(0);
    f.key(
        22,
        b"h",
        &cat(&[
            &len(2),
            &string(b"a"),
            &string(b"1"),
            &(-1i64).to_le_bytes(),
            &string(b"b"),
            &string(b"2"),
            &77i64.to_le_bytes(),
        ]),
    );
    f.finish()
}

#[test]
fn valkey_9_hash_ttls_and_slot_import() {
    let data = file_valkey_9();
    let (items, version) = parse(&data).unwrap();
    assert_eq!(version, 80);
    assert_eq!(
        items[1],
        Item::SlotImport {
            job_name: vec![b'j'; 40],
            ranges: vec![(0, 100), (200, 16383)]
        }
    );
    let got = decoded(&data);
    assert_eq!(
        got[0].1,
        Value::Hash(vec![(b("a"), b("1"), None), (b("b"), b("2"), Some(77))])
    );
    // The same bytes under the Redis flavour mean something else (22 is the
    // 7.4 RC hash there), and 243 is no Redis opcode.
    let mut as_redis = data.clone();
    as_redis[..9].copy_from_slice(b"REDIS0012");
    let e = parse(&as_redis).unwrap_err();
    assert!(e.to_string().contains("unknown opcode 243"), "{e}");
}

#[test]
fn functions_of_7_0_release_candidates() {
    let mut f = RdbFile::redis(10);
    f.raw(&[246]).raw(&cat(&[
        &string(b"lib"),
        &string(b"LUA"),
        &len(1),
        &string(b"desc"),
        &string(b"return 1"),
    ]));
    f.raw(&[246]).raw(&cat(&[
        &string(b"lib2"),
        &string(b"LUA"),
        &len(0),
        &string(b"return 2"),
    ]));
    let (items, _) = parse(&f.finish()).unwrap();
    assert_eq!(
        items,
        vec![
            Item::FunctionPreGa {
                name: b("lib"),
                engine: b("LUA"),
                description: Some(b("desc")),
                code: b("return 1")
            },
            Item::FunctionPreGa {
                name: b("lib2"),
                engine: b("LUA"),
                description: None,
                code: b("return 2")
            },
        ]
    );
}

#[test]
fn error_messages_name_offset_and_place() {
    let mut f = RdbFile::redis(10);
    f.select(0);
    f.key(0, b"foo", &string(b"bar"));
    f.raw(&[99]);
    let e = parse(&f.finish()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDB corrupt at byte 20: unknown value type 99 after key `foo` (db 0) (this redback reads \
         Redis RDB versions 1–12 and Valkey RDB version 80; this file is version 10)"
    );

    let mut f = RdbFile::redis(10);
    f.select(2);
    f.key(16, b"k\x01", &cat(&[&len(100), b"short"]));
    let e = parse(&f.bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDB truncated at byte 22: the file ends inside key `k\\x01` (db 2, value type 16 hash-listpack)"
    );

    let mut f = RdbFile::redis(10);
    f.key(0, b"foo", &string(b"bar"));
    let e = parse(&f.bytes).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDB truncated at byte 18: the file ends after key `foo` (db 0), without the end-of-file marker"
    );

    let mut data = RdbFile::redis(10).key(0, b"a", &string(b"b")).finish();
    let n = data.len();
    data[n - 1] ^= 1;
    let e = parse(&data).unwrap_err();
    assert!(
        matches!(e, RdbError::ChecksumMismatch { offset: 15, .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("RDB checksum mismatch: file says "),
        "{e}"
    );
    // A stored checksum of 0 means the writer had checksums off.
    data[n - 8..].fill(0);
    assert!(parse(&data).is_ok());
    data.push(b'x');
    let e = parse(&data).unwrap_err();
    assert_eq!(e.offset(), 23);
    assert!(
        e.to_string()
            .contains("data continues after the end of the RDB"),
        "{e}"
    );

    for (head, want) in [
        (&b"REDIS0013"[..], "RDB version 13"),
        (b"VALKEY081", "RDB version 81"),
        (b"REDIS0000", "RDB version 0"),
        (b"HELLO0001", "not an RDB file"),
        (b"REDIS00x1", "no numeric version"),
    ] {
        let e = parse(&cat(&[head, &[255]])).unwrap_err();
        assert!(e.to_string().contains(want), "{e}");
        assert_eq!(e.offset(), 0);
    }
    let e = parse(b"REDIS").unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDB truncated at byte 5: the file ends inside the 9-byte header"
    );

    let e = parse(&RdbFile::redis(8).key(6, b"m", &[]).finish()).unwrap_err();
    assert!(matches!(e, RdbError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("4.0 release-candidate"), "{e}");
}

#[test]
fn absurd_lengths_never_allocate() {
    // A key claiming 2^64-1 bytes, an LZF string claiming 2^40 from 3
    // bytes, a list claiming 2^62 elements: errors, at once, no allocation.
    let huge = cat(&[&[0x81], &u64::MAX.to_be_bytes()]);
    let e = parse(&cat(&[b"REDIS0010", &[0], &huge, b"abc"])).unwrap_err();
    assert!(matches!(e, RdbError::Truncated { offset: 22, .. }), "{e}");
    let lzf = cat(&[&[0xc3], &len(3), &len(1 << 40), b"abc"]);
    let e = parse(&cat(&[b"REDIS0010", &[0], &lzf, &string(b"v")])).unwrap_err();
    assert!(matches!(e, RdbError::Corrupt { offset: 10, .. }), "{e}");
    let e = parse(&cat(&[
        b"REDIS0010",
        &[1],
        &string(b"k"),
        &len(1 << 62),
        &string(b"a"),
    ]))
    .unwrap_err();
    assert!(matches!(e, RdbError::Truncated { .. }), "{e}");
    // Decoding a value whose blob lies about its counts.
    let mut f = RdbFile::redis(10);
    let mut lp = enc::listpack(&[b"a", b"b"]);
    lp[4] = 0xfe;
    f.key(20, b"s", &string(&lp));
    let (items, v) = parse(&f.finish()).unwrap();
    let Item::Key(k) = &items[0] else { panic!() };
    let e = decode(k, v).unwrap_err();
    assert!(e.to_string().contains("listpack header counts"), "{e}");
    assert_eq!(e.offset(), k.value_offset);
}

/// Every hand-made file, cut at every length and with bytes changed at
/// every offset (checksum recomputed, so the damage reaches the value
/// walkers and decoders): errors, never panics.
#[test]
fn damaged_hand_made_files_never_panic() {
    for data in [
        file_redis_2x(),
        file_redis_6(),
        file_redis_7_4(),
        file_valkey_9(),
    ] {
        let version: u32 = if data.starts_with(b"VALKEY") {
            80
        } else {
            std::str::from_utf8(&data[5..9]).unwrap().parse().unwrap()
        };
        let run = |d: &[u8]| {
            if let Ok(mut p) = Parser::new(d) {
                while let Ok(Some(item)) = p.next() {
                    if let Item::Key(k) = item {
                        let _ = decode(&k, p.version());
                    }
                }
            }
        };
        for cut in 0..data.len() {
            assert!(parse(&data[..cut]).is_err());
        }
        let body = if version >= 5 {
            data.len() - 8
        } else {
            data.len()
        };
        for pos in 9..body {
            for v in [
                0x00u8, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0x81, 0xc0, 0xc3, 0xf0, 0xfe, 0xff,
            ] {
                let mut m = data[..body].to_vec();
                m[pos] = v;
                if version >= 5 {
                    let c = crc64(0, &m);
                    m.extend_from_slice(&c.to_le_bytes());
                }
                run(&m);
            }
        }
    }
}
