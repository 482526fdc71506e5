//! Parses RDB files that Debian's redis-server 7.0 writes, filled with every
//! type in small and large encodings, and checks each value three ways:
//! type, `DUMP` equality (the captured bytes are exact), decoded content.

use std::collections::BTreeMap;

use super::server::{Client, RedisServer, Resp};
use crate::rdb::*;

/// What the test wrote, per (db, key).
pub type Expected = BTreeMap<(u64, Vec<u8>), (Value, Option<i64>)>;

const FAR_FUTURE_MS: i64 = 4_102_444_800_123; // 2100-01-01, and some ms

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|s| b(s)).collect())
}

/// Sets and hashes have no order; zsets are compared by member.
pub fn normalize(v: &Value) -> Value {
    match v.clone() {
        Value::Set(mut s) => {
            s.sort();
            Value::Set(s)
        }
        Value::Hash(mut h) => {
            h.sort();
            Value::Hash(h)
        }
        Value::ZSet(mut z) => {
            z.sort_by(|a, b| a.0.cmp(&b.0));
            Value::ZSet(z)
        }
        other => other,
    }
}

/// Fills db 0, 1 and 5 with every type and encoding Redis 7.0 writes.
fn fill(c: &mut Client) -> Expected {
    let mut e = Expected::new();
    let mut put = |db: u64, k: &[u8], v: Value, exp: Option<i64>| {
        e.insert((db, k.to_vec()), (v, exp));
    };
    // Small thresholds so modest collections take the big encodings.
    for (name, value) in [
        ("zset-max-listpack-entries", "4"),
        ("hash-max-listpack-entries", "4"),
        ("list-max-listpack-size", "4"),
        ("list-compress-depth", "1"),
        ("stream-node-max-entries", "3"),
        ("maxmemory-policy", "allkeys-lfu"),
    ] {
        c.run(&["CONFIG", "SET", name, value]);
    }
    c.run(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "100"]);

    // Strings: raw, integer encodings, LZF, empty, binary, with TTL.
    for (k, v) in [
        ("str:raw", "hello world"),
        ("str:int8", "-7"),
        ("str:int16", "12345"),
        ("str:int32", "100000"),
        ("str:big", "12345678901234"),
        ("str:notint", "007"),
        ("str:empty", ""),
    ] {
        c.run(&["SET", k, v]);
        put(0, k.as_bytes(), Value::String(b(v)), None);
    }
    let long = "a".repeat(100) + &"b".repeat(50);
    c.run(&["SET", "str:lzf", &long]);
    put(0, b"str:lzf", Value::String(b(&long)), None);
    let bin_key: &[u8] = b"bin\x00key\xff\xfe";
    let bin_val: &[u8] = b"\x00\x01\x02\xff";
    c.ok(&[b"SET", bin_key, bin_val]);
    put(0, bin_key, Value::String(bin_val.to_vec()), None);
    c.run(&["SET", "str:ttl", "v"]);
    c.run(&["PEXPIREAT", "str:ttl", &FAR_FUTURE_MS.to_string()]);
    put(0, b"str:ttl", Value::String(b("v")), Some(FAR_FUTURE_MS));
    let lzf_key = format!("key:{}", "k".repeat(40));
    c.run(&["SET", &lzf_key, "x"]);
    put(0, lzf_key.as_bytes(), Value::String(b("x")), None);

    // Lists: one listpack node; many nodes, middle ones LZF-compressed;
    // plain nodes for big elements.
    c.run(&["RPUSH", "list:small", "a", "b", "1", "-2", ""]);
    put(0, b"list:small", list(&["a", "b", "1", "-2", ""]), None);
    let items: Vec<String> = (0..40)
        .map(|i| format!("item-aaaaaaaaaaaaaaaaaaaaaaa-{i}"))
        .collect();
    let mut args = vec!["RPUSH", "list:big"];
    args.extend(items.iter().map(|s| s.as_str()));
    c.run(&args);
    put(
        0,
        b"list:big",
        Value::List(items.iter().map(|s| b(s)).collect()),
        None,
    );
    let plain = "p".repeat(300);
    c.run(&["RPUSH", "list:plain", "x", &plain, "y"]);
    put(0, b"list:plain", list(&["x", &plain, "y"]), None);

    // Sets: intset (16 and 64 bit), hash table.
    c.run(&["SADD", "set:int", "1", "2", "-5", "300"]);
    put(
        0,
        b"set:int",
        Value::Set(vec![b("1"), b("2"), b("-5"), b("300")]),
        None,
    );
    c.run(&["SADD", "set:int64", "5000000000", "-1"]);
    put(
        0,
        b"set:int64",
        Value::Set(vec![b("5000000000"), b("-1")]),
        None,
    );
    c.ok(&[b"SADD", b"set:str", b"a", b"b\x00", b"c"]);
    put(
        0,
        b"set:str",
        Value::Set(vec![b("a"), b"b\x00".to_vec(), b("c")]),
        None,
    );

    // Sorted sets: listpack (with infinities), skiplist.
    c.run(&["ZADD", "zset:small", "1", "a", "2.5", "b", "-3", "c"]);
    put(
        0,
        b"zset:small",
        Value::ZSet(vec![(b("a"), 1.0), (b("b"), 2.5), (b("c"), -3.0)]),
        None,
    );
    c.run(&["ZADD", "zset:inf", "+inf", "x", "-inf", "y"]);
    put(
        0,
        b"zset:inf",
        Value::ZSet(vec![(b("x"), f64::INFINITY), (b("y"), f64::NEG_INFINITY)]),
        None,
    );
    let mut args = vec!["ZADD".to_string(), "zset:big".into()];
    let mut members = Vec::new();
    for i in 0..10 {
        let score = i as f64 * 1.25 - 3.0;
        args.push(score.to_string());
        args.push(format!("m{i}"));
        members.push((format!("m{i}").into_bytes(), score));
    }
    c.run(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    put(0, b"zset:big", Value::ZSet(members), None);

    // Hashes: listpack, hash table.
    c.run(&["HSET", "hash:small", "f1", "v1", "f2", "2"]);
    put(
        0,
        b"hash:small",
        Value::Hash(vec![(b("f1"), b("v1"), None), (b("f2"), b("2"), None)]),
        None,
    );
    let mut args = vec!["HSET".to_string(), "hash:big".into()];
    let mut fields = Vec::new();
    for i in 0..8 {
        args.push(format!("field{i}"));
        args.push(format!("{}", i * 1000));
        fields.push((
            format!("field{i}").into_bytes(),
            format!("{}", i * 1000).into_bytes(),
            None,
        ));
    }
    c.run(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    put(0, b"hash:big", Value::Hash(fields), None);

    // Streams: deleted entry, same-fields entries, two groups, pending
    // entries of two consumers; a stream over several listpacks.
    c.run(&["XADD", "stream", "1-1", "f1", "v1", "f2", "v2"]);
    c.run(&["XADD", "stream", "1-2", "f1", "v3", "f2", "v4"]);
    c.run(&["XADD", "stream", "2-0", "other", "x"]);
    c.run(&["XADD", "stream", "3-0", "f1", "a", "f2", "b"]);
    c.run(&["XDEL", "stream", "1-2"]);
    c.run(&["XGROUP", "CREATE", "stream", "g1", "0"]);
    c.run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "alice",
        "COUNT",
        "2",
        "STREAMS",
        "stream",
        ">",
    ]);
    c.run(&[
        "XREADGROUP",
        "GROUP",
        "g1",
        "bob",
        "COUNT",
        "1",
        "STREAMS",
        "stream",
        ">",
    ]);
    c.run(&["XGROUP", "CREATE", "stream", "g2", "$"]);
    for i in 1..=10 {
        c.run(&["XADD", "stream:big", &format!("{i}-0"), "n", &i.to_string()]);
    }

    // Other databases.
    c.run(&["SELECT", "1"]);
    c.run(&["SET", "db1:a", "1"]);
    c.run(&["SET", "db1:b", "2"]);
    c.run(&["PEXPIREAT", "db1:b", &FAR_FUTURE_MS.to_string()]);
    put(1, b"db1:a", Value::String(b("1")), None);
    put(1, b"db1:b", Value::String(b("2")), Some(FAR_FUTURE_MS));
    c.run(&["SELECT", "5"]);
    c.run(&["RPUSH", "db5:list", "z"]);
    put(5, b"db5:list", list(&["z"]), None);
    c.run(&["SELECT", "0"]);

    c.run(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return 1 end)",
    ]);
    e
}

fn parse_all(rdb: &[u8], opts: ParseOptions) -> (Vec<Item>, u32, Option<u64>) {
    let mut p = Parser::with_options(rdb, opts).expect("header");
    let mut items = Vec::new();
    while let Some(it) = p.next().unwrap_or_else(|e| panic!("{e}")) {
        items.push(it);
    }
    assert_eq!(p.offset(), rdb.len() as u64);
    (items, p.version(), p.checksum())
}

fn keys(items: &[Item]) -> Vec<&KeyEntry> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Key(k) => Some(k),
            _ => None,
        })
        .collect()
}

#[test]
fn redis_7_rdb_every_type_dump_exact_and_decoded() {
    let server = RedisServer::start();
    let mut c = server.client();
    let expected = fill(&mut c);
    let rdb = server.save();
    let (items, version, checksum) = parse_all(&rdb, ParseOptions::default());
    assert_eq!(version, 10);
    assert_ne!(checksum, Some(0));
    assert_eq!(checksum, Some(crc64(0, &rdb[..rdb.len() - 8])));

    let aux: BTreeMap<Vec<u8>, Vec<u8>> = items
        .iter()
        .filter_map(|i| match i {
            Item::Aux { key, value } => Some((key.clone(), value.clone())),
            _ => None,
        })
        .collect();
    assert!(aux[&b"redis-ver"[..]].starts_with(b"7.0"));
    let functions: Vec<&Item> = items
        .iter()
        .filter(|i| matches!(i, Item::Function(_)))
        .collect();
    assert_eq!(functions.len(), 1);
    assert!(matches!(functions[0], Item::Function(code) if code.starts_with(b"#!lua name=mylib")));
    assert!(items.contains(&Item::SelectDb(5)));
    assert!(items.contains(&Item::ResizeDb {
        db_size: 2,
        expires_size: 1
    }));

    let entries = keys(&items);
    assert_eq!(
        entries.len(),
        expected.len() + 2,
        "every written key, plus the two streams"
    );
    let mut types = BTreeMap::new();
    for k in &entries {
        types.insert((k.db, k.key.clone()), k.rdb_type);
        assert_eq!(k.value.len() as u64, k.value_len);
        assert!(k.freq.is_some(), "LFU policy: every key has a counter");
        // The captured bytes make a payload the live server agrees with.
        c.run(&["SELECT", &k.db.to_string()]);
        let dump = c.ok(&[b"DUMP", &k.key]);
        assert_eq!(
            dump,
            Resp::Bulk(Some(k.dump_payload(version))),
            "DUMP of {:?}",
            String::from_utf8_lossy(&k.key)
        );
        let value = decode(k, version).unwrap_or_else(|e| panic!("{e}"));
        if let Some((want, exp)) = expected.get(&(k.db, k.key.clone())) {
            assert_eq!(
                normalize(&value),
                normalize(want),
                "{:?}",
                String::from_utf8_lossy(&k.key)
            );
            assert_eq!(k.expire_at_ms, *exp);
        }
    }
    // The encodings the data was meant to produce.
    let t = |k: &str| types[&(0, k.as_bytes().to_vec())];
    assert_eq!(t("str:raw"), 0);
    assert_eq!(t("list:small"), 18);
    assert_eq!(t("set:int"), 11);
    assert_eq!(t("set:str"), 2);
    assert_eq!(t("zset:small"), 17);
    assert_eq!(t("zset:big"), 5);
    assert_eq!(t("hash:small"), 16);
    assert_eq!(t("hash:big"), 4);
    assert_eq!(t("stream"), 19);
    // list:big really has compressed nodes, list:plain a plain one.
    let big = entries.iter().find(|k| k.key == b"list:big").unwrap();
    assert!(
        big.value.windows(2).any(|w| w == [2, 0xc3]),
        "a packed LZF node"
    );
    let plain = entries.iter().find(|k| k.key == b"list:plain").unwrap();
    assert_eq!(plain.value[1], 2, "first node packed");
    assert_eq!(
        plain.value[1 + 1 + 1 + plain.value[2] as usize],
        1,
        "second node plain"
    );

    check_streams(&entries, version);

    // validate() walks the same file without keeping values.
    let stats = validate(&rdb[..]).unwrap();
    assert_eq!(stats.keys, entries.len() as u64);
    assert_eq!(stats.version, 10);
    assert_eq!(
        stats.dbs[&0].keys,
        entries.iter().filter(|k| k.db == 0).count() as u64
    );
    assert_eq!(stats.dbs[&1].keys, 2);
    assert_eq!(stats.dbs[&1].expires, 1);
    assert_eq!(stats.dbs[&5].keys, 1);
    assert_eq!(stats.expires, 2);
    assert_eq!(stats.functions, 1);
    assert_eq!(stats.by_kind["stream"].keys, 2);
    assert_eq!(stats.by_type["hash-listpack"].keys, 1);
    assert_eq!(stats.file_bytes, rdb.len() as u64);
    assert_eq!(stats.checksum, checksum.unwrap());
    let biggest = entries.iter().map(|k| k.value_len).max().unwrap();
    assert_eq!(stats.largest_keys[0].bytes, biggest);
    assert!(
        stats
            .largest_keys
            .windows(2)
            .all(|w| w[0].bytes >= w[1].bytes)
    );
    assert_eq!(
        stats.aux["redis-ver"],
        String::from_utf8_lossy(&aux[&b"redis-ver"[..]])
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["checksum"], format!("{:016x}", checksum.unwrap()));

    // Without capture: same keys, same lengths, no value bytes kept.
    let (lean, _, _) = parse_all(
        &rdb,
        ParseOptions {
            capture_values: false,
        },
    );
    let lean = keys(&lean);
    assert_eq!(lean.len(), entries.len());
    for (a, b) in lean.iter().zip(&entries) {
        assert!(a.value.is_empty());
        assert_eq!(
            (a.value_len, &a.key, a.value_offset),
            (b.value_len, &b.key, b.value_offset)
        );
    }
}

fn check_streams(entries: &[&KeyEntry], version: u32) {
    let find = |k: &[u8]| entries.iter().find(|e| e.key == k).unwrap();
    let Value::Stream(s) = decode(find(b"stream"), version).unwrap() else {
        panic!("not a stream")
    };
    let id = |ms, seq| StreamId { ms, seq };
    let ids: Vec<StreamId> = s.entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![id(1, 1), id(2, 0), id(3, 0)]);
    assert_eq!(
        s.entries[0].fields,
        vec![(b("f1"), b("v1")), (b("f2"), b("v2"))]
    );
    assert_eq!(
        s.entries[2].fields,
        vec![(b("f1"), b("a")), (b("f2"), b("b"))]
    );
    assert_eq!(s.entries[1].fields, vec![(b("other"), b("x"))]);
    assert_eq!(s.length, 3);
    assert_eq!(s.last_id, id(3, 0));
    assert_eq!(s.max_deleted_id, id(1, 2));
    assert_eq!(s.entries_added, Some(4));
    assert_eq!(s.groups.len(), 2);
    let g1 = &s.groups[0];
    assert_eq!(g1.name, b"g1");
    assert_eq!(g1.last_delivered, id(3, 0));
    let owners: Vec<(StreamId, &[u8], u64)> = g1
        .pending
        .iter()
        .map(|p| (p.id, &p.consumer[..], p.delivery_count))
        .collect();
    assert_eq!(
        owners,
        vec![
            (id(1, 1), &b"alice"[..], 1),
            (id(2, 0), &b"alice"[..], 1),
            (id(3, 0), &b"bob"[..], 1)
        ]
    );
    let names: Vec<&[u8]> = g1.consumers.iter().map(|c| &c.name[..]).collect();
    assert_eq!(names, vec![&b"alice"[..], &b"bob"[..]]);
    assert_eq!(g1.consumers[0].pending, vec![id(1, 1), id(2, 0)]);
    assert!(g1.pending[0].delivery_time_ms > 1_600_000_000_000);
    assert_eq!(s.groups[1].name, b"g2");
    assert!(s.groups[1].pending.is_empty());

    let Value::Stream(big) = decode(find(b"stream:big"), version).unwrap() else {
        panic!("not a stream")
    };
    assert_eq!(big.entries.len(), 10);
    assert!(
        big.entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.id == id(i as u64 + 1, 0)
                && e.fields == vec![(b("n"), (i + 1).to_string().into_bytes())])
    );
    let raw = &find(b"stream:big").value;
    assert_eq!(raw[0], 4, "10 entries at 3 per node make 4 listpacks");
}

/// A small real file, damaged every way: must give errors (with offsets
/// inside the file) and never panic.
#[test]
fn damaged_real_file_errors_never_panics() {
    let server = RedisServer::start();
    let mut c = server.client();
    c.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    c.run(&["SET", "s", "v"]);
    c.run(&["SET", "n", "42"]);
    c.run(&["SET", "lzf", &"z".repeat(60)]);
    c.run(&["PEXPIREAT", "s", &FAR_FUTURE_MS.to_string()]);
    c.run(&["RPUSH", "l", "a", "b", "c"]);
    c.run(&["SADD", "i", "1", "2"]);
    c.run(&["ZADD", "z", "1", "a"]);
    c.run(&["HSET", "h", "f", "v"]);
    c.run(&["XADD", "x", "1-1", "f", "v"]);
    c.run(&["XGROUP", "CREATE", "x", "g", "0"]);
    c.run(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">"]);
    let rdb = server.save();
    assert!(rdb.len() < 1000, "small fixture: {} bytes", rdb.len());

    let run = |data: &[u8]| -> Result<u64, RdbError> {
        let mut p = Parser::new(data)?;
        let mut n = 0;
        while let Some(item) = p.next()? {
            if let Item::Key(k) = &item {
                let _ = decode(k, p.version());
            }
            n += 1;
        }
        Ok(n)
    };
    let total = run(&rdb).unwrap();
    assert!(total > 8);
    let mut p = Parser::new(&rdb[..]).unwrap();
    while let Some(item) = p.next().unwrap() {
        if let Item::Key(k) = item {
            assert!(
                k.idle_secs.is_some(),
                "LRU policy: every key has an idle time"
            );
            assert!(decode(&k, p.version()).is_ok());
        }
    }

    for cut in 0..rdb.len() {
        let e = run(&rdb[..cut]).unwrap_err();
        assert!(e.offset() <= cut as u64, "cut {cut}: {e}");
        if cut >= 9 {
            assert!(matches!(e, RdbError::Truncated { .. }), "cut {cut}: {e}");
        }
    }
    // Byte flips: with the real checksum, and with the checksum zeroed so
    // the damage reaches every decoder.
    for pos in 0..rdb.len() - 8 {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut m = rdb.clone();
            m[pos] ^= mask;
            let e = run(&m);
            assert!(e.is_err(), "flip {mask:#x} at {pos} went unnoticed");
            let n = m.len();
            m[n - 8..].fill(0);
            if let Err(e) = run(&m) {
                assert!(e.offset() <= m.len() as u64, "{e}");
            }
        }
    }
}

/// Parse speed on a big file: `REDBACK_RDB_BENCH=<file.rdb> cargo test
/// --release -p redback --lib rdb_parse_speed -- --ignored --nocapture`.
#[test]
#[ignore = "needs a big RDB named by REDBACK_RDB_BENCH"]
fn rdb_parse_speed() {
    let path = std::env::var("REDBACK_RDB_BENCH").expect("REDBACK_RDB_BENCH=<file.rdb>");
    let bytes = std::fs::metadata(&path).unwrap().len() as f64;
    for capture in [false, true] {
        let f = std::fs::File::open(&path).unwrap();
        let start = std::time::Instant::now();
        let mut p = Parser::with_options(
            f,
            ParseOptions {
                capture_values: capture,
            },
        )
        .unwrap();
        let mut keys = 0u64;
        while let Some(item) = p.next().unwrap() {
            if matches!(item, Item::Key(_)) {
                keys += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "capture_values={capture}: {keys} keys, {:.0} MB in {secs:.2} s = {:.0} MB/s",
            bytes / 1e6,
            bytes / 1e6 / secs
        );
    }
    let f = std::fs::File::open(&path).unwrap();
    let start = std::time::Instant::now();
    let mut p = Parser::new(f).unwrap();
    let mut n = 0u64;
    while let Some(item) = p.next().unwrap() {
        if let Item::Key(k) = item {
            decode(&k, p.version()).unwrap();
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "parse + decode: {n} keys in {secs:.2} s = {:.0} MB/s",
        bytes / 1e6 / secs
    );
    let f = std::fs::File::open(&path).unwrap();
    let start = std::time::Instant::now();
    let stats = validate(f).unwrap();
    println!(
        "validate(): {} keys in {:.2} s",
        stats.keys,
        start.elapsed().as_secs_f64()
    );
}
