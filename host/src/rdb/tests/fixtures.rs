//! Committed RDB files from servers this machine does not have, with the
//! `DUMP` payload of every key as that server produced it (see
//! testdata/README.md for how they were made): proves the captured bytes
//! are exact for the ziplist-era encodings too.

use std::collections::BTreeMap;
use std::path::Path;

use super::live::normalize;
use super::server::{RedisServer, Resp};
use crate::rdb::*;

const RDB_62: &[u8] = include_bytes!("../testdata/redis-6.2-v9.rdb");
const DUMPS_62: &[u8] = include_bytes!("../testdata/redis-6.2-v9.dumps");

/// `DUMP` payloads by (db, key): records of db (1 byte), key length (u32
/// LE), key, payload length (u32 LE), payload.
fn read_dumps(mut b: &[u8]) -> BTreeMap<(u64, Vec<u8>), Vec<u8>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, rest) = b.split_at(n);
        *b = rest;
        head
    }
    fn u32_at(b: &mut &[u8]) -> usize {
        u32::from_le_bytes(take(b, 4).try_into().unwrap()) as usize
    }
    let mut out = BTreeMap::new();
    while !b.is_empty() {
        let db = take(&mut b, 1)[0] as u64;
        let n = u32_at(&mut b);
        let key = take(&mut b, n).to_vec();
        let n = u32_at(&mut b);
        out.insert((db, key), take(&mut b, n).to_vec());
    }
    out
}

fn s(x: &str) -> Vec<u8> {
    x.as_bytes().to_vec()
}

#[test]
fn redis_6_2_fixture_dump_exact_and_decoded() {
    let dumps = read_dumps(DUMPS_62);
    let mut p = Parser::new(RDB_62).unwrap();
    assert_eq!(p.version(), 9);
    let mut types = BTreeMap::new();
    let mut values = BTreeMap::new();
    while let Some(item) = p.next().unwrap_or_else(|e| panic!("{e}")) {
        if let Item::Key(k) = item {
            let want = &dumps[&(k.db, k.key.clone())];
            assert_eq!(
                &k.dump_payload(9),
                want,
                "{}",
                String::from_utf8_lossy(&k.key)
            );
            types.insert(String::from_utf8_lossy(&k.key).into_owned(), k.rdb_type);
            let v = decode(&k, 9).unwrap_or_else(|e| panic!("{e}"));
            values.insert(
                String::from_utf8_lossy(&k.key).into_owned(),
                (normalize(&v), k.expire_at_ms, k.db),
            );
        }
    }
    assert_eq!(types.len(), dumps.len());
    for (key, t) in [
        ("list:big", 14),
        ("zset:small", 12),
        ("hash:small", 13),
        ("set:int", 11),
        ("set:str", 2),
        ("zset:big", 5),
        ("hash:big", 4),
        ("stream", 15),
    ] {
        assert_eq!(types[key], t, "{key}");
    }
    let items: Vec<Vec<u8>> = (1..=20)
        .map(|i| format!("item-aaaaaaaaaaaaaaaaaaaaaa-{i}").into_bytes())
        .collect();
    assert_eq!(values["list:big"].0, Value::List(items));
    assert_eq!(
        values["zset:small"].0,
        Value::ZSet(vec![(s("a"), 1.0), (s("b"), 2.5), (s("c"), -3.0)])
    );
    assert_eq!(
        values["hash:big"].0,
        normalize(&Value::Hash(
            (1..=6)
                .map(|i| (s(&format!("f{i}")), s(&i.to_string()), None))
                .collect()
        ))
    );
    assert_eq!(
        values["set:int"].0,
        normalize(&Value::Set(vec![s("1"), s("2"), s("-5"), s("300")]))
    );
    assert_eq!(values["str:ttl"].1, Some(4_102_444_800_123));
    assert_eq!(values["db3:key"].2, 3);
    let Value::Stream(st) = &values["stream"].0 else {
        panic!()
    };
    let ids: Vec<u64> = st.entries.iter().map(|e| e.id.ms).collect();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(st.entries_added, None);
    let g = &st.groups[0];
    let owners: Vec<&[u8]> = g.pending.iter().map(|p| &p.consumer[..]).collect();
    assert_eq!(owners, vec![&b"alice"[..], &b"alice"[..], &b"bob"[..]]);
    assert_eq!(g.consumers[1].active_time_ms, None);
}

/// The fixture with a byte changed at every offset and the checksum
/// recomputed, so the damage reaches the ziplist and stream decoders.
#[test]
fn damaged_redis_6_2_fixture_never_panics() {
    let body = &RDB_62[..RDB_62.len() - 8];
    for pos in 9..body.len() {
        for v in [0x00u8, 0x01, 0x7f, 0x80, 0xc0, 0xfe, 0xff] {
            let mut m = body.to_vec();
            m[pos] = v;
            let c = crc64(0, &m);
            m.extend_from_slice(&c.to_le_bytes());
            let mut p = Parser::new(&m[..]).unwrap();
            while let Ok(Some(item)) = p.next() {
                if let Item::Key(k) = item {
                    let _ = decode(&k, 9);
                }
            }
        }
    }
}

/// Rewrites the fixture: `REDIS_62_SERVER=<path to redis-server 6.2>
/// cargo test --release -p redback --lib regenerate_redis_6_2 -- --ignored`.
#[test]
#[ignore = "needs a redis-server 6.2 binary; see testdata/README.md"]
fn regenerate_redis_6_2_fixture() {
    let bin = std::env::var("REDIS_62_SERVER").expect("REDIS_62_SERVER=<path to redis-server 6.2>");
    let server = RedisServer::start_with(Path::new(&bin), &[]);
    let mut c = server.client();
    for (k, v) in [
        ("zset-max-ziplist-entries", "4"),
        ("hash-max-ziplist-entries", "4"),
        ("list-max-ziplist-size", "4"),
        ("list-compress-depth", "1"),
        ("stream-node-max-entries", "3"),
    ] {
        c.run(&["CONFIG", "SET", k, v]);
    }
    c.run(&["SET", "str:raw", "hello world"]);
    c.run(&["SET", "str:int", "12345"]);
    c.run(&["SET", "str:lzf", &("a".repeat(50) + &"b".repeat(30))]);
    c.run(&["SET", "str:ttl", "v"]);
    c.run(&["PEXPIREAT", "str:ttl", "4102444800123"]);
    c.run(&["RPUSH", "list:small", "a", "b", "1", "-2"]);
    let items: Vec<String> = (1..=20)
        .map(|i| format!("item-aaaaaaaaaaaaaaaaaaaaaa-{i}"))
        .collect();
    let mut args = vec!["RPUSH", "list:big"];
    args.extend(items.iter().map(|s| s.as_str()));
    c.run(&args);
    c.run(&["SADD", "set:int", "1", "2", "-5", "300"]);
    c.run(&["SADD", "set:str", "a", "b", "c"]);
    c.run(&["ZADD", "zset:small", "1", "a", "2.5", "b", "-3", "c"]);
    c.run(&[
        "ZADD", "zset:big", "1", "m1", "2", "m2", "3", "m3", "4", "m4", "5", "m5", "6.5", "m6",
    ]);
    c.run(&["HSET", "hash:small", "f1", "v1", "f2", "2"]);
    c.run(&[
        "HSET", "hash:big", "f1", "1", "f2", "2", "f3", "3", "f4", "4", "f5", "5", "f6", "6",
    ]);
    c.run(&["XADD", "stream", "1-1", "f1", "v1", "f2", "v2"]);
    c.run(&["XADD", "stream", "1-2", "f1", "v3", "f2", "v4"]);
    c.run(&["XADD", "stream", "2-0", "other", "x"]);
    c.run(&["XADD", "stream", "3-0", "f1", "a", "f2", "b"]);
    c.run(&["XADD", "stream", "4-0", "f1", "c", "f2", "d"]);
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
    c.run(&["SELECT", "3"]);
    c.run(&["SET", "db3:key", "value"]);
    let rdb = server.save();
    let mut dumps = Vec::new();
    let mut p = Parser::new(&rdb[..]).unwrap();
    while let Some(item) = p.next().unwrap() {
        if let Item::Key(k) = item {
            c.run(&["SELECT", &k.db.to_string()]);
            let Resp::Bulk(Some(payload)) = c.ok(&[b"DUMP", &k.key]) else {
                panic!()
            };
            dumps.push(k.db as u8);
            dumps.extend_from_slice(&(k.key.len() as u32).to_le_bytes());
            dumps.extend_from_slice(&k.key);
            dumps.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            dumps.extend_from_slice(&payload);
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rdb/testdata");
    std::fs::write(dir.join("redis-6.2-v9.rdb"), &rdb).unwrap();
    std::fs::write(dir.join("redis-6.2-v9.dumps"), &dumps).unwrap();
}
