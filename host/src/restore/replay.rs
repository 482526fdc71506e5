//! Command replay: the plain write commands that recreate one key from its
//! decoded value, for a target whose Redis is older than the backup's RDB
//! version and therefore refuses `RESTORE` payloads.
//!
//! Owns the mapping from [`Value`] to commands, the cutting of big values
//! into bounded commands, and the list of what plain commands cannot carry
//! ([`Replay::notes`]). It must not do I/O: it never reads the RDB, talks to
//! Redis or selects a database. The caller sends the commands in order
//! (pipelined, after `SELECT db`), checks every reply, and decides what a key
//! that already exists means (see [`replay_commands`]).
//!
//! Commands and the oldest server that takes them:
//! - string: `SET`, then `APPEND` per further MiB (2.0+);
//! - list `RPUSH`, set `SADD`, sorted set `ZADD score member ...` (2.4+);
//! - hash: `HMSET` (2.0+) rather than multi-field `HSET` (4.0+), so the same
//!   commands work from 2.8 to 8.x (HMSET is deprecated, not removed);
//! - expiry: `PEXPIREAT` (2.6+), last, so it applies to the complete key;
//! - stream (5.0+): `XADD` per entry with its exact ID; `XGROUP CREATE` at
//!   each group's last-delivered ID; pending entries via `XCLAIM ... TIME
//!   RETRYCOUNT FORCE JUSTID`, which creates their consumers and keeps
//!   delivery time and count exactly; `XGROUP CREATECONSUMER` (6.2+) only
//!   for consumers that own no pending entry (a 5.0/6.0 target refuses it;
//!   such a consumer holds nothing, so the caller may let that error pass);
//!   then `XSETID` for the last ID
//!   (without 7.0's ENTRIESADDED/MAXDELETEDID). A pending entry whose stream
//!   entry was deleted (Redis keeps those in the PEL) is recreated by adding
//!   a placeholder entry at its ID, claiming it, and deleting the
//!   placeholder with `XDEL` at the end. A stream without entries is made by
//!   `XGROUP CREATE ... MKSTREAM` (with a helper group, destroyed at once,
//!   when it has no groups either), which works for any last ID, including
//!   0-0 where `XADD` cannot.
//!
//! A replayed key is built by several commands, so a reader of the target
//! may see it half-built; a caller that cares wraps a key's commands in
//! `MULTI`/`EXEC`. The commands of one key hold a copy of its value: memory
//! is about twice the decoded value, freed when they are sent.
//!
//! The file passes ~800 lines only through its tests (two thirds of it):
//! the Redis 6.2 compatibility test brings its own small RESP client and
//! server harness, so it depends on nothing under test.

use std::collections::{BTreeMap, BTreeSet};

use crate::rdb::{Stream, StreamId, Value, show_bytes};

/// One command: its name and arguments, binary-safe.
pub type Command = Vec<Vec<u8>>;

/// Element bytes in one command before a batch is cut (one element bigger
/// than this travels alone); strings longer than this are sent in pieces.
pub const MAX_COMMAND_BYTES: usize = 1 << 20;

/// Field and value of the placeholder entry that stands in for a deleted
/// stream entry while its pending entry is recreated.
const PLACEHOLDER_FIELD: &[u8] = b"redback-replay";
const PLACEHOLDER_VALUE: &[u8] = b"placeholder";
/// Group that makes an empty stream without groups exist, dropped at once.
const HELPER_GROUP: &[u8] = b"redback-replay-helper";

/// The commands that recreate one key, and what they cannot carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replay {
    pub commands: Vec<Command>,
    /// One sentence per thing of this key the target will not hold exactly
    /// (field TTLs, stream metadata of newer versions, ...), naming the key.
    pub notes: Vec<String>,
}

/// A value that plain commands cannot recreate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "key `{}` holds a value of module type `{}` (encoding version {}): plain commands \
         cannot recreate it; restore it with RESTORE to a target that loads that module \
         and whose Redis reads the backup's RDB version",
        show_bytes(.key), module_name(*.module_id), .module_id & 1023
    )]
    Module { key: Vec<u8>, module_id: u64 },
    #[error(
        "sorted set `{}` gives member `{}` the score NaN, which Redis never stores: \
         the backup is damaged",
        show_bytes(.key), show_bytes(.member)
    )]
    NanScore { key: Vec<u8>, member: Vec<u8> },
    #[error(
        "stream `{}` has entry {} without fields, which XADD cannot write: \
         the backup is damaged",
        show_bytes(.key), id_text(*.id)
    )]
    EmptyStreamEntry { key: Vec<u8>, id: StreamId },
}

/// The commands that recreate `key` holding `value` on a Redis 2.8+ server
/// (5.0+ for streams).
///
/// With `replace`, the first command is `DEL key`, so the replayed key
/// replaces whatever the target held under that name. Without it nothing
/// is deleted and the commands would merge into an existing key: the caller
/// must check that the key does not exist (`EXISTS`) and skip it if it
/// does. `expire_at_ms` (Unix milliseconds) adds a last `PEXPIREAT`; a time
/// already past makes the target drop the key, as the source would have.
///
/// Collections go `batch` elements per command at most (0 counts as 1; an
/// element is a member, a score and member, or a field and value), and a
/// batch is also cut before its elements pass [`MAX_COMMAND_BYTES`].
pub fn replay_commands(
    key: &[u8],
    value: &Value,
    expire_at_ms: Option<i64>,
    replace: bool,
    batch: usize,
) -> Result<Replay, ReplayError> {
    let batch = batch.max(1);
    let mut r = Replay::default();
    if replace {
        r.commands.push(cmd(&[b"DEL", key]));
    }
    let created = match value {
        Value::String(s) => {
            let mut pieces = s.chunks(MAX_COMMAND_BYTES);
            let first = pieces.next().unwrap_or_default();
            r.commands.push(cmd(&[b"SET", key, first]));
            for piece in pieces {
                r.commands.push(cmd(&[b"APPEND", key, piece]));
            }
            true
        }
        Value::List(items) => {
            let elems = items.iter().map(|e| [e.clone()]);
            batched(&mut r.commands, &[b"RPUSH", key], elems, batch)
        }
        Value::Set(items) => {
            let elems = items.iter().map(|e| [e.clone()]);
            batched(&mut r.commands, &[b"SADD", key], elems, batch)
        }
        Value::ZSet(items) => {
            let mut elems = Vec::with_capacity(items.len());
            for (member, score) in items {
                let score = format_score(*score).ok_or_else(|| ReplayError::NanScore {
                    key: key.to_vec(),
                    member: member.clone(),
                })?;
                elems.push([score.into_bytes(), member.clone()]);
            }
            batched(&mut r.commands, &[b"ZADD", key], elems, batch)
        }
        Value::Hash(items) => {
            let with_ttl = items.iter().filter(|(_, _, ttl)| ttl.is_some()).count();
            if with_ttl > 0 {
                r.notes.push(format!(
                    "hash `{}`: {with_ttl} field TTL(s) (Redis 7.4+ / Valkey 9) not replayed; \
                     those fields do not expire on the target",
                    show_bytes(key)
                ));
            }
            let elems = items.iter().map(|(f, v, _)| [f.clone(), v.clone()]);
            batched(&mut r.commands, &[b"HMSET", key], elems, batch)
        }
        Value::Stream(s) => {
            stream(key, s, batch, &mut r)?;
            true
        }
        Value::Module { module_id, .. } => {
            return Err(ReplayError::Module {
                key: key.to_vec(),
                module_id: *module_id,
            });
        }
    };
    if !created {
        r.notes.push(format!(
            "{} `{}` is empty and Redis keeps no empty collections: nothing created",
            kind_name(value),
            show_bytes(key)
        ));
    } else if let Some(at) = expire_at_ms {
        r.commands
            .push(cmd(&[b"PEXPIREAT", key, at.to_string().as_bytes()]));
    }
    Ok(r)
}

/// A score as text that parses back to the same `f64` (Rust prints the
/// shortest digits that round-trip; of plain and exponent form the shorter
/// wins, so 1e-300 stays short), infinities as Redis spells them, NaN
/// refused.
pub fn format_score(score: f64) -> Option<String> {
    if score.is_nan() {
        return None;
    }
    if score.is_infinite() {
        return Some(if score > 0.0 { "inf" } else { "-inf" }.to_string());
    }
    let plain = format!("{score}");
    let exp = format!("{score:e}");
    Some(if exp.len() < plain.len() { exp } else { plain })
}

fn cmd(args: &[&[u8]]) -> Command {
    args.iter().map(|a| a.to_vec()).collect()
}

/// Appends `head elem elem ...` commands, `batch` elements and at most
/// [`MAX_COMMAND_BYTES`] of element bytes each (a bigger element alone).
/// Returns whether there was any element.
fn batched<const N: usize>(
    out: &mut Vec<Command>,
    head: &[&[u8]],
    elems: impl IntoIterator<Item = [Vec<u8>; N]>,
    batch: usize,
) -> bool {
    let mut current: Option<Command> = None;
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut any = false;
    for elem in elems {
        any = true;
        let size: usize = elem.iter().map(Vec::len).sum();
        if count == batch || (count > 0 && bytes.saturating_add(size) > MAX_COMMAND_BYTES) {
            out.extend(current.take());
            (count, bytes) = (0, 0);
        }
        let c = current.get_or_insert_with(|| {
            let mut c = cmd(head);
            c.reserve(batch.min(1024) * N);
            c
        });
        c.extend(elem);
        count += 1;
        bytes = bytes.saturating_add(size);
    }
    out.extend(current);
    any
}

/// Pending IDs of one group by (consumer, delivery time ms, delivery
/// count): each set is one `XCLAIM ... TIME t RETRYCOUNT n` (per batch).
type Claims<'a> = BTreeMap<(&'a [u8], i64, i64), Vec<StreamId>>;

fn stream(key: &[u8], s: &Stream, batch: usize, r: &mut Replay) -> Result<(), ReplayError> {
    let zero = StreamId::default();
    let entry_ids: BTreeSet<StreamId> = s.entries.iter().map(|e| e.id).collect();

    // Pending entries that can be claimed, per group; the others are noted.
    let (mut no_owner, mut past_last) = (0usize, 0usize);
    let mut placeholders = BTreeSet::new();
    let mut claims: Vec<Claims> = Vec::new();
    for g in &s.groups {
        let mut by_owner = BTreeMap::new();
        for p in &g.pending {
            if p.consumer.is_empty() {
                no_owner += 1;
                continue;
            }
            if !entry_ids.contains(&p.id) {
                if p.id > s.last_id || p.id == zero {
                    past_last += 1;
                    continue;
                }
                placeholders.insert(p.id);
            }
            let count = i64::try_from(p.delivery_count).unwrap_or(i64::MAX);
            by_owner
                .entry((&p.consumer[..], p.delivery_time_ms, count))
                .or_insert_with(Vec::new)
                .push(p.id);
        }
        claims.push(by_owner);
    }

    // Entries in ID order, placeholders merged in where they belong.
    let placeholder = |id| {
        cmd(&[
            b"XADD",
            key,
            &id_arg(id),
            PLACEHOLDER_FIELD,
            PLACEHOLDER_VALUE,
        ])
    };
    let mut pending_placeholders = placeholders.iter().copied().peekable();
    for e in &s.entries {
        while let Some(p) = pending_placeholders.next_if(|p| *p < e.id) {
            r.commands.push(placeholder(p));
        }
        if e.fields.is_empty() {
            return Err(ReplayError::EmptyStreamEntry {
                key: key.to_vec(),
                id: e.id,
            });
        }
        let mut c = cmd(&[b"XADD", key, &id_arg(e.id)]);
        c.extend(e.fields.iter().flat_map(|(f, v)| [f.clone(), v.clone()]));
        r.commands.push(c);
    }
    r.commands.extend(pending_placeholders.map(placeholder));

    let exists = !s.entries.is_empty() || !placeholders.is_empty();
    if !exists && s.groups.is_empty() {
        r.commands.push(cmd(&[
            b"XGROUP",
            b"CREATE",
            key,
            HELPER_GROUP,
            b"$",
            b"MKSTREAM",
        ]));
        r.commands
            .push(cmd(&[b"XGROUP", b"DESTROY", key, HELPER_GROUP]));
    }

    for (g, by_owner) in s.groups.iter().zip(&claims) {
        let mut create = cmd(&[
            b"XGROUP",
            b"CREATE",
            key,
            &g.name,
            &id_arg(g.last_delivered),
        ]);
        if !exists {
            create.push(b"MKSTREAM".to_vec());
        }
        r.commands.push(create);
        let owners: BTreeSet<&[u8]> = by_owner.keys().map(|(c, _, _)| *c).collect();
        for c in &g.consumers {
            if !owners.contains(&c.name[..]) {
                r.commands
                    .push(cmd(&[b"XGROUP", b"CREATECONSUMER", key, &g.name, &c.name]));
            }
        }
        // IDs are at most 41 bytes: keep XCLAIM within the byte bound too.
        let per_claim = batch.min(MAX_COMMAND_BYTES / 41);
        for ((consumer, time_ms, count), ids) in by_owner {
            for chunk in ids.chunks(per_claim) {
                let mut c = cmd(&[b"XCLAIM", key, &g.name, consumer, b"0"]);
                c.extend(chunk.iter().map(|id| id_arg(*id)));
                c.extend([
                    b"TIME".to_vec(),
                    time_ms.to_string().into_bytes(),
                    b"RETRYCOUNT".to_vec(),
                    count.to_string().into_bytes(),
                    b"FORCE".to_vec(),
                    b"JUSTID".to_vec(),
                ]);
                r.commands.push(c);
            }
        }
    }
    // After the groups: when the stream has no entries, the first group's
    // MKSTREAM is what makes it exist.
    r.commands.push(cmd(&[b"XSETID", key, &id_arg(s.last_id)]));
    let ids = placeholders.iter().map(|id| [id_arg(*id)]);
    batched(&mut r.commands, &[b"XDEL", key], ids, batch);

    let k = show_bytes(key);
    if no_owner + past_last > 0 {
        r.notes.push(format!(
            "stream `{k}`: {} pending entr(ies) not recreated ({no_owner} without a consumer, \
             {past_last} with an ID past the stream's last ID or 0-0)",
            no_owner + past_last
        ));
    }
    if s.groups.iter().any(|g| !g.consumers.is_empty()) {
        r.notes.push(format!(
            "stream `{k}`: consumers' seen and active times restart at the replay"
        ));
    }
    // 0 and -1 (saved as u64::MAX: unknown) are what the target has anyway.
    let known = |n: u64| n > 0 && n != u64::MAX;
    if s.groups.iter().any(|g| g.entries_read.is_some_and(known)) {
        r.notes.push(format!(
            "stream `{k}`: consumer groups' entries-read counters (Redis 7.0+) not replayed; \
             their lag is unknown on a 7.x target until it catches up"
        ));
    }
    if let Some(added) = s.entries_added
        && (added != s.entries.len() as u64 || s.max_deleted_id != zero)
    {
        r.notes.push(format!(
            "stream `{k}`: entries-added ({added}) and max-deleted ID ({}) (Redis 7.0+) \
             not replayed",
            id_text(s.max_deleted_id)
        ));
    }
    Ok(())
}

fn id_text(id: StreamId) -> String {
    format!("{}-{}", id.ms, id.seq)
}

fn id_arg(id: StreamId) -> Vec<u8> {
    id_text(id).into_bytes()
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::ZSet(_) => "sorted set",
        Value::Hash(_) => "hash",
        Value::Stream(_) => "stream",
        Value::Module { .. } => "module value",
    }
}

/// A module type's 9-character name, from the 54 high bits of its id (6
/// bits a character, as `moduleTypeNameByID`).
fn module_name(module_id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9)
        .rev()
        .map(|i| CHARSET[((module_id >> (10 + 6 * i)) & 63) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{Consumer, ConsumerGroup, PendingEntry, StreamEntry};

    /// Commands as text, one a line, for exact comparisons.
    fn text(cmds: &[Command]) -> String {
        cmds.iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(value: Value, expire: Option<i64>, replace: bool, batch: usize, want: &str) {
        let r = replay_commands(b"k", &value, expire, replace, batch).unwrap();
        assert_eq!(text(&r.commands), want.trim());
    }

    fn items(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| i.to_string().into_bytes()).collect()
    }

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    #[test]
    fn replay_string_with_and_without_replace_and_ttl() {
        check(Value::String(b"v".to_vec()), None, false, 10, "SET k v");
        check(
            Value::String(b"v".to_vec()),
            Some(1_700_000_000_123),
            true,
            10,
            "DEL k\nSET k v\nPEXPIREAT k 1700000000123",
        );
        let r = replay_commands(b"k", &Value::String(Vec::new()), None, false, 10).unwrap();
        assert_eq!(r.commands, [cmd(&[b"SET", b"k", b""])]);
    }

    #[test]
    fn replay_big_string_goes_in_pieces() {
        let s: Vec<u8> = (0..MAX_COMMAND_BYTES * 2 + 5).map(|i| i as u8).collect();
        let r = replay_commands(b"k", &Value::String(s.clone()), None, false, 10).unwrap();
        let names: Vec<&[u8]> = r.commands.iter().map(|c| &c[0][..]).collect();
        assert_eq!(names, [&b"SET"[..], b"APPEND", b"APPEND"]);
        assert!(r.commands.iter().all(|c| c[2].len() <= MAX_COMMAND_BYTES));
        let joined: Vec<u8> = r.commands.iter().flat_map(|c| c[2].clone()).collect();
        assert_eq!(joined, s);
    }

    #[test]
    fn replay_list_batching_boundaries() {
        check(Value::List(items(3)), None, false, 3, "RPUSH k 0 1 2");
        check(
            Value::List(items(4)),
            None,
            false,
            3,
            "RPUSH k 0 1 2\nRPUSH k 3",
        );
        check(
            Value::List(items(6)),
            None,
            false,
            3,
            "RPUSH k 0 1 2\nRPUSH k 3 4 5",
        );
        // A batch of 0 counts as 1.
        check(
            Value::List(items(2)),
            None,
            false,
            0,
            "RPUSH k 0\nRPUSH k 1",
        );
    }

    #[test]
    fn replay_batches_are_cut_by_bytes() {
        let big = vec![b'x'; 600 * 1024];
        let huge = vec![b'y'; 2 * MAX_COMMAND_BYTES];
        let list = vec![big.clone(), big.clone(), b"a".to_vec(), huge, b"b".to_vec()];
        let r = replay_commands(b"k", &Value::List(list.clone()), None, false, 100).unwrap();
        let sizes: Vec<usize> = r.commands.iter().map(|c| c.len() - 2).collect();
        assert_eq!(sizes, [1, 2, 1, 1], "600K | 600K+a | 2M | b");
        let back: Vec<Vec<u8>> = r.commands.iter().flat_map(|c| c[2..].to_vec()).collect();
        assert_eq!(back, list);
    }

    #[test]
    fn replay_set_zset_hash() {
        check(
            Value::Set(vec![b"a".to_vec(), b"b".to_vec()]),
            Some(5),
            false,
            10,
            "SADD k a b\nPEXPIREAT k 5",
        );
        check(
            Value::ZSet(vec![
                (b"a".to_vec(), 0.1),
                (b"b".to_vec(), f64::NEG_INFINITY),
                (b"c".to_vec(), 1e-300),
            ]),
            None,
            true,
            2,
            "DEL k\nZADD k 0.1 a -inf b\nZADD k 1e-300 c",
        );
        let r = replay_commands(
            b"k",
            &Value::Hash(vec![
                (b"f1".to_vec(), b"v1".to_vec(), None),
                (b"f2".to_vec(), b"v2".to_vec(), Some(1_800_000_000_000)),
                (b"f3".to_vec(), b"v3".to_vec(), Some(1_800_000_000_001)),
            ]),
            None,
            false,
            2,
        )
        .unwrap();
        assert_eq!(text(&r.commands), "HMSET k f1 v1 f2 v2\nHMSET k f3 v3");
        assert_eq!(r.notes.len(), 1);
        assert!(r.notes[0].contains("2 field TTL(s)"), "{:?}", r.notes);
    }

    #[test]
    fn replay_empty_collection_creates_nothing() {
        let r = replay_commands(b"k", &Value::Set(vec![]), Some(5), true, 10).unwrap();
        assert_eq!(text(&r.commands), "DEL k");
        assert!(r.notes[0].contains("set `k` is empty"), "{:?}", r.notes);
    }

    #[test]
    fn replay_score_formatting_round_trips() {
        let cases = [
            (0.1, "0.1"),
            (1e-300, "1e-300"),
            (-0.0, "-0"),
            (0.0, "0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (1e300, "1e300"),
            (123456.0, "123456"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (5e-324, "5e-324"),
        ];
        for (v, want) in cases {
            assert_eq!(format_score(v).unwrap(), want);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut samples = vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            1.0 / 3.0,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(f64::from_bits(x));
        }
        for v in samples.into_iter().filter(|v| !v.is_nan()) {
            let s = format_score(v).unwrap();
            let back: f64 = s.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:e} -> {s}");
            assert!(s.len() <= 24, "{s} is not short");
        }
        assert_eq!(format_score(f64::NAN), None);
    }

    #[test]
    fn replay_refuses_nan_score() {
        let err = replay_commands(
            b"z",
            &Value::ZSet(vec![(b"m".to_vec(), f64::NAN)]),
            None,
            true,
            10,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sorted set `z` gives member `m` the score NaN, which Redis never stores: \
             the backup is damaged"
        );
    }

    /// `moduleTypeEncodeId`: 9 characters of 6 bits, then 10 bits of version.
    fn module_id(name: &str, encver: u64) -> u64 {
        let charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = 0u64;
        for c in name.chars() {
            id = (id << 6) | charset.find(c).unwrap() as u64;
        }
        (id << 10) | encver
    }

    #[test]
    fn replay_refuses_module_values() {
        let value = Value::Module {
            module_id: module_id("ReJSON-RL", 3),
            raw: vec![1, 2, 3],
        };
        let err = replay_commands(b"doc\x00", &value, None, true, 10).unwrap_err();
        assert_eq!(
            err,
            ReplayError::Module {
                key: b"doc\x00".to_vec(),
                module_id: module_id("ReJSON-RL", 3)
            }
        );
        assert_eq!(
            err.to_string(),
            "key `doc\\x00` holds a value of module type `ReJSON-RL` (encoding version 3): \
             plain commands cannot recreate it; restore it with RESTORE to a target that \
             loads that module and whose Redis reads the backup's RDB version"
        );
    }

    fn entry(ms: u64, seq: u64, fields: &[(&str, &str)]) -> StreamEntry {
        StreamEntry {
            id: id(ms, seq),
            fields: fields
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn pending(ms: u64, consumer: &str, time: i64, count: u64) -> PendingEntry {
        PendingEntry {
            id: id(ms, 0),
            consumer: consumer.as_bytes().to_vec(),
            delivery_time_ms: time,
            delivery_count: count,
        }
    }

    fn consumer(name: &str, pending: &[u64]) -> Consumer {
        Consumer {
            name: name.as_bytes().to_vec(),
            seen_time_ms: 1,
            active_time_ms: None,
            pending: pending.iter().map(|ms| id(*ms, 0)).collect(),
        }
    }

    #[test]
    fn replay_stream_with_groups_and_pending_entries() {
        let s = Stream {
            entries: vec![
                entry(1, 0, &[("a", "1")]),
                entry(3, 0, &[("a", "3"), ("b", "x")]),
                entry(5, 0, &[("a", "5")]),
            ],
            length: 3,
            last_id: id(7, 0),
            groups: vec![
                ConsumerGroup {
                    name: b"g1".to_vec(),
                    last_delivered: id(5, 0),
                    entries_read: None,
                    pending: vec![
                        pending(1, "alice", 1000, 2),
                        pending(2, "bob", 2000, 1), // entry 2-0 was deleted
                        pending(3, "bob", 2000, 1),
                        pending(4, "bob", 2000, 1), // deleted too
                        pending(5, "alice", 3000, 7),
                    ],
                    consumers: vec![
                        consumer("alice", &[1, 5]),
                        consumer("bob", &[2, 3, 4]),
                        consumer("carol", &[]),
                    ],
                },
                ConsumerGroup {
                    name: b"g2".to_vec(),
                    last_delivered: id(0, 0),
                    entries_read: None,
                    pending: vec![],
                    consumers: vec![],
                },
            ],
            ..Stream::default()
        };
        let r = replay_commands(b"s", &Value::Stream(Box::new(s)), Some(9), true, 2).unwrap();
        let want = "
DEL s
XADD s 1-0 a 1
XADD s 2-0 redback-replay placeholder
XADD s 3-0 a 3 b x
XADD s 4-0 redback-replay placeholder
XADD s 5-0 a 5
XGROUP CREATE s g1 5-0
XGROUP CREATECONSUMER s g1 carol
XCLAIM s g1 alice 0 1-0 TIME 1000 RETRYCOUNT 2 FORCE JUSTID
XCLAIM s g1 alice 0 5-0 TIME 3000 RETRYCOUNT 7 FORCE JUSTID
XCLAIM s g1 bob 0 2-0 3-0 TIME 2000 RETRYCOUNT 1 FORCE JUSTID
XCLAIM s g1 bob 0 4-0 TIME 2000 RETRYCOUNT 1 FORCE JUSTID
XGROUP CREATE s g2 0-0
XSETID s 7-0
XDEL s 2-0 4-0
PEXPIREAT s 9";
        assert_eq!(text(&r.commands), want.trim());
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(r.notes[0].contains("seen and active times"));
    }

    #[test]
    fn replay_empty_streams() {
        let empty = Stream {
            last_id: id(5, 5),
            ..Stream::default()
        };
        check(
            Value::Stream(Box::new(empty.clone())),
            None,
            false,
            10,
            "
XGROUP CREATE k redback-replay-helper $ MKSTREAM
XGROUP DESTROY k redback-replay-helper
XSETID k 5-5",
        );
        let with_group = Stream {
            groups: vec![ConsumerGroup {
                name: b"g".to_vec(),
                last_delivered: id(5, 5),
                entries_read: Some(3),
                pending: vec![],
                consumers: vec![],
            }],
            entries_added: Some(1),
            max_deleted_id: id(5, 5),
            ..empty
        };
        let r =
            replay_commands(b"k", &Value::Stream(Box::new(with_group)), None, false, 10).unwrap();
        assert_eq!(
            text(&r.commands),
            "XGROUP CREATE k g 5-5 MKSTREAM\nXSETID k 5-5"
        );
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(r.notes[0].contains("entries-read"));
        assert!(r.notes[1].contains("entries-added (1) and max-deleted ID (5-5)"));
    }

    #[test]
    fn replay_stream_odd_pending_entries_are_noted_not_sent() {
        let s = Stream {
            entries: vec![entry(1, 0, &[("a", "1")])],
            last_id: id(1, 0),
            groups: vec![ConsumerGroup {
                name: b"g".to_vec(),
                last_delivered: id(1, 0),
                entries_read: None,
                pending: vec![pending(1, "", 5, 1), pending(9, "bob", 5, 1)],
                consumers: vec![consumer("bob", &[9])],
            }],
            ..Stream::default()
        };
        let r = replay_commands(b"k", &Value::Stream(Box::new(s)), None, false, 10).unwrap();
        assert_eq!(
            text(&r.commands),
            "XADD k 1-0 a 1\nXGROUP CREATE k g 1-0\nXGROUP CREATECONSUMER k g bob\n\
             XSETID k 1-0"
        );
        assert!(
            r.notes[0].contains("2 pending entr(ies) not recreated (1 without a consumer, 1 with"),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn replay_refuses_stream_entry_without_fields() {
        let s = Stream {
            entries: vec![entry(1, 2, &[])],
            last_id: id(1, 2),
            ..Stream::default()
        };
        let err = replay_commands(b"k", &Value::Stream(Box::new(s)), None, false, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stream `k` has entry 1-2 without fields, which XADD cannot write: \
             the backup is damaged"
        );
    }

    /// Against a real Redis 6.2 (RDB 9): every type written by Debian's
    /// Redis 7.0 (RDB 10), saved, parsed, decoded, replayed through
    /// `redis-cli --pipe`, and compared key by key. Runs only when
    /// `REDBACK_REDIS62` names the binary `scripts/compat-servers.sh` prints.
    mod compat {
        use std::collections::BTreeMap;
        use std::io::{BufRead, BufReader, Read, Write};
        use std::os::unix::net::UnixStream;
        use std::path::PathBuf;
        use std::process::{Child, Command as Process, Stdio};
        use std::time::{Duration, Instant};

        use super::super::{MAX_COMMAND_BYTES, replay_commands};
        use crate::rdb::{Item, Parser, decode};

        const SOURCE_70: &str = "/usr/bin/redis-server";
        const BATCH: usize = 100;

        /// A redis-server on a unix socket in its own temp dir, killed on drop.
        struct Server {
            child: Child,
            sock: PathBuf,
            dir: tempfile::TempDir,
        }

        impl Server {
            fn start(binary: &str) -> Server {
                let dir = tempfile::tempdir().unwrap();
                let sock = dir.path().join("redis.sock");
                let child = Process::new(binary)
                    .args(["--port", "0", "--save", "", "--appendonly", "no"])
                    .arg("--unixsocket")
                    .arg(&sock)
                    .arg("--dir")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
                let server = Server { child, sock, dir };
                let started = Instant::now();
                loop {
                    if let Ok(s) = UnixStream::connect(&server.sock) {
                        let mut c = Client::new(s);
                        if c.call(&[b"PING"]) == Reply::Status("PONG".into()) {
                            return server;
                        }
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "{binary} did not start"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }

            fn client(&self) -> Client {
                Client::new(UnixStream::connect(&self.sock).unwrap())
            }
        }

        impl Drop for Server {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        #[derive(Debug, Clone, PartialEq)]
        enum Reply {
            Status(String),
            Error(String),
            Int(i64),
            Bulk(Option<Vec<u8>>),
            Array(Option<Vec<Reply>>),
        }

        impl Reply {
            fn bytes(&self) -> Vec<u8> {
                match self {
                    Reply::Bulk(Some(b)) => b.clone(),
                    Reply::Status(s) => s.clone().into_bytes(),
                    other => panic!("expected a string, got {other:?}"),
                }
            }
            fn text(&self) -> String {
                String::from_utf8_lossy(&self.bytes()).into_owned()
            }
            fn int(&self) -> i64 {
                match self {
                    Reply::Int(i) => *i,
                    other => panic!("expected an integer, got {other:?}"),
                }
            }
            fn items(self) -> Vec<Reply> {
                match self {
                    Reply::Array(Some(a)) => a,
                    other => panic!("expected an array, got {other:?}"),
                }
            }
            /// A flat field/value array (XINFO) as a map.
            fn fields(self) -> BTreeMap<String, Reply> {
                let items = self.items();
                items
                    .chunks(2)
                    .map(|p| (p[0].text(), p[1].clone()))
                    .collect()
            }
        }

        fn resp(args: &[impl AsRef<[u8]>]) -> Vec<u8> {
            let mut out = format!("*{}\r\n", args.len()).into_bytes();
            for a in args {
                let a = a.as_ref();
                out.extend(format!("${}\r\n", a.len()).as_bytes());
                out.extend(a);
                out.extend(b"\r\n");
            }
            out
        }

        /// A minimal RESP2 client, independent of the code under test.
        struct Client {
            rd: BufReader<UnixStream>,
            wr: UnixStream,
        }

        impl Client {
            fn new(s: UnixStream) -> Client {
                Client {
                    rd: BufReader::new(s.try_clone().unwrap()),
                    wr: s,
                }
            }

            fn call(&mut self, args: &[&[u8]]) -> Reply {
                self.wr.write_all(&resp(args)).unwrap();
                self.read()
            }

            /// A command of space-separated words; an error reply fails.
            fn run(&mut self, line: &str) -> Reply {
                let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
                let r = self.call(&args);
                assert!(!matches!(r, Reply::Error(_)), "{line}: {r:?}");
                r
            }

            fn read(&mut self) -> Reply {
                let mut line = Vec::new();
                self.rd.read_until(b'\n', &mut line).unwrap();
                assert!(line.ends_with(b"\r\n"), "bad or missing reply {line:?}");
                let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
                let n = || body.parse::<i64>().unwrap();
                match line[0] {
                    b'+' => Reply::Status(body.clone()),
                    b'-' => Reply::Error(body.clone()),
                    b':' => Reply::Int(n()),
                    b'$' if n() < 0 => Reply::Bulk(None),
                    b'$' => {
                        let mut b = vec![0; n() as usize + 2];
                        self.rd.read_exact(&mut b).unwrap();
                        b.truncate(b.len() - 2);
                        Reply::Bulk(Some(b))
                    }
                    b'*' if n() < 0 => Reply::Array(None),
                    b'*' => Reply::Array(Some((0..n()).map(|_| self.read()).collect())),
                    other => panic!("unknown reply type {:?}", other as char),
                }
            }
        }

        fn fill(c: &mut Client) {
            c.run("SET str hello");
            let r = c.call(&[b"SET", b"bin\x00\r\nkey", b"\xff\x00\r\nvalue"]);
            assert_eq!(r, Reply::Status("OK".into()));
            let big: Vec<u8> = (0..2 * MAX_COMMAND_BYTES + 1000)
                .map(|i| (i % 251) as u8)
                .collect();
            assert_eq!(
                c.call(&[b"SET", b"big_str", &big]),
                Reply::Status("OK".into())
            );
            c.run("SET ttl_str v PX 600000");
            c.run("RPUSH small_list a b c");
            for chunk in 0..5 {
                let items: Vec<String> = (chunk * 500..(chunk + 1) * 500)
                    .map(|i| format!("item-{i}"))
                    .collect();
                c.run(&format!("RPUSH big_list {}", items.join(" ")));
            }
            c.run("PEXPIRE big_list 700000");
            c.run("SADD ints 1 2 3 -7");
            c.run("SADD strs a b c");
            let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
            c.run(&format!("SADD big_set {}", members.join(" ")));
            c.run("ZADD small_z 0.1 a 1e-300 b -0 c inf d -inf e 1.5 f");
            let scored: Vec<String> = (0..300)
                .map(|i| format!("{} m{i}", i as f64 * 0.37 - 50.0))
                .collect();
            c.run(&format!("ZADD big_z {}", scored.join(" ")));
            c.run("HSET small_h f1 v1 f2 v2");
            let fields: Vec<String> = (0..600).map(|i| format!("f{i} v{i}")).collect();
            c.run(&format!("HSET big_h {}", fields.join(" ")));
            c.run("PEXPIRE big_h 800000");
            // A stream with two groups, 250+ pending entries (several XCLAIM
            // batches), a claimed one, an acknowledged one, a consumer
            // without pending entries, and pending entries whose stream
            // entries were deleted.
            for i in 1..=300 {
                c.run(&format!("XADD s1 {i}-1 n {i} k v{}", i % 7));
            }
            c.run("XGROUP CREATE s1 g1 0");
            c.run("XREADGROUP GROUP g1 alice COUNT 250 STREAMS s1 >");
            std::thread::sleep(Duration::from_millis(30));
            c.run("XREADGROUP GROUP g1 bob COUNT 5 STREAMS s1 >");
            c.run("XCLAIM s1 g1 bob 0 3-1");
            c.run("XACK s1 g1 4-1");
            c.run("XGROUP CREATECONSUMER s1 g1 carol");
            c.run("XDEL s1 252-1 5-1");
            c.run("XGROUP CREATE s1 g2 $");
            c.run("PEXPIRE s1 900000");
            c.run("XGROUP CREATE s2 g $ MKSTREAM");
            c.run("XADD s3 5-5 f v");
            c.run("XDEL s3 5-5");
        }

        fn sorted(r: Reply) -> Vec<Vec<u8>> {
            let mut v: Vec<Vec<u8>> = r.items().iter().map(Reply::bytes).collect();
            v.sort();
            v
        }

        fn pairs(r: Reply) -> Vec<(Vec<u8>, Vec<u8>)> {
            let items = r.items();
            items
                .chunks(2)
                .map(|p| (p[0].bytes(), p[1].bytes()))
                .collect()
        }

        fn compare_stream(src: &mut Client, dst: &mut Client, key: &[u8], name: &str) {
            let mut both = |args: &[&[u8]]| (src.call(args), dst.call(args));
            let (a, b) = both(&[b"XRANGE", key, b"-", b"+"]);
            assert_eq!(a, b, "{name}: XRANGE");
            let (a, b) = both(&[b"XINFO", b"STREAM", key]);
            let (a, b) = (a.fields(), b.fields());
            for f in ["length", "last-generated-id", "groups"] {
                assert_eq!(a[f], b[f], "{name}: XINFO STREAM {f}");
            }
            let (a, b) = both(&[b"XINFO", b"GROUPS", key]);
            let (a, b) = (a.items(), b.items());
            assert_eq!(a.len(), b.len(), "{name}: groups");
            for (ga, gb) in a.into_iter().zip(b) {
                let (ga, gb) = (ga.fields(), gb.fields());
                for f in ["name", "consumers", "pending", "last-delivered-id"] {
                    assert_eq!(ga[f], gb[f], "{name}: XINFO GROUPS {f}");
                }
                let group = ga["name"].bytes();
                let (ca, cb) = both(&[b"XINFO", b"CONSUMERS", key, &group]);
                let (ca, cb) = (ca.items(), cb.items());
                assert_eq!(ca.len(), cb.len(), "{name}: consumers");
                for (ca, cb) in ca.into_iter().zip(cb) {
                    let (ca, cb) = (ca.fields(), cb.fields());
                    assert_eq!(ca["name"], cb["name"], "{name}: consumer name");
                    assert_eq!(ca["pending"], cb["pending"], "{name}: consumer pending");
                }
                let (pa, pb) = both(&[b"XPENDING", key, &group, b"-", b"+", b"100000"]);
                let (pa, pb) = (pa.items(), pb.items());
                assert_eq!(pa.len(), pb.len(), "{name}: XPENDING");
                for (ea, eb) in pa.into_iter().zip(pb) {
                    let (ea, eb) = (ea.items(), eb.items());
                    assert_eq!(ea[0], eb[0], "{name}: pending id");
                    assert_eq!(ea[1], eb[1], "{name}: pending consumer of {}", ea[0].text());
                    assert_eq!(ea[3], eb[3], "{name}: delivery count of {}", ea[0].text());
                    let idle = (ea[2].int() - eb[2].int()).abs();
                    assert!(
                        idle <= 1000,
                        "{name}: idle of {} differs by {idle} ms",
                        ea[0].text()
                    );
                }
            }
        }

        #[test]
        fn replay_into_redis_62_matches_redis_70_source() {
            let Some(redis62) = std::env::var("REDBACK_REDIS62")
                .ok()
                .filter(|v| !v.is_empty())
            else {
                eprintln!(
                    "skipped: set REDBACK_REDIS62=$(scripts/compat-servers.sh) to replay \
                     into Redis 6.2"
                );
                return;
            };
            let source = Server::start(SOURCE_70);
            let target = Server::start(&redis62);
            let (mut src, mut dst) = (source.client(), target.client());
            let info = dst.run("INFO server").text();
            assert!(
                info.contains("redis_version:6.2."),
                "{redis62} is not Redis 6.2"
            );
            fill(&mut src);
            src.run("SAVE");

            let file = std::fs::File::open(source.dir.path().join("dump.rdb")).unwrap();
            let mut parser = Parser::new(file).unwrap();
            let version = parser.version();
            assert_eq!(version, 10, "Redis 7.0 writes RDB 10");
            let (mut pipe, mut notes, mut keys) = (Vec::new(), Vec::new(), 0);
            while let Some(item) = parser.next().unwrap() {
                let Item::Key(e) = item else { continue };
                assert_eq!(e.db, 0);
                if e.key == b"str" {
                    // Why replay exists: 6.2 refuses 7.0's DUMP payloads.
                    let payload = e.dump_payload(version);
                    let r = dst.call(&[b"RESTORE", b"probe", b"0", &payload]);
                    assert!(
                        matches!(&r, Reply::Error(m) if m.contains("payload version")),
                        "{r:?}"
                    );
                }
                let value = decode(&e, version).unwrap();
                let r = replay_commands(&e.key, &value, e.expire_at_ms, true, BATCH).unwrap();
                notes.extend(r.notes);
                for c in &r.commands {
                    pipe.extend(resp(c));
                }
                keys += 1;
            }
            eprintln!(
                "replaying {keys} keys, {} bytes; notes: {notes:#?}",
                pipe.len()
            );

            let mut cli = Process::new("redis-cli")
                .arg("-s")
                .arg(&target.sock)
                .arg("--pipe")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("redis-cli runs (scripts/setup.sh installs it)");
            let mut stdin = cli.stdin.take().unwrap();
            let writer = std::thread::spawn(move || stdin.write_all(&pipe));
            let out = cli.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("errors: 0,"),
                "redis-cli --pipe: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );

            let all_keys = sorted(src.run("KEYS *"));
            assert_eq!(all_keys.len(), keys);
            assert_eq!(all_keys, sorted(dst.run("KEYS *")));
            for key in &all_keys {
                let name = String::from_utf8_lossy(key).into_owned();
                let k = &key[..];
                let kind = src.call(&[b"TYPE", k]).text();
                assert_eq!(kind, dst.call(&[b"TYPE", k]).text(), "{name}: TYPE");
                let mut both = |args: &[&[u8]]| (src.call(args), dst.call(args));
                match kind.as_str() {
                    "string" => {
                        let (a, b) = both(&[b"GET", k]);
                        assert!(a == b, "{name}: GET differs");
                    }
                    "list" => {
                        let (a, b) = both(&[b"LRANGE", k, b"0", b"-1"]);
                        assert_eq!(a, b, "{name}: LRANGE");
                    }
                    "set" => {
                        let (a, b) = both(&[b"SMEMBERS", k]);
                        assert_eq!(sorted(a), sorted(b), "{name}: SMEMBERS");
                    }
                    "zset" => {
                        let (a, b) = both(&[b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"]);
                        let bits = |r| -> Vec<(Vec<u8>, u64)> {
                            pairs(r)
                                .into_iter()
                                .map(|(m, s)| {
                                    let s = String::from_utf8(s).unwrap();
                                    (m, s.parse::<f64>().unwrap().to_bits())
                                })
                                .collect()
                        };
                        assert_eq!(bits(a), bits(b), "{name}: ZRANGE WITHSCORES");
                    }
                    "hash" => {
                        let (a, b) = both(&[b"HGETALL", k]);
                        let (mut a, mut b) = (pairs(a), pairs(b));
                        a.sort();
                        b.sort();
                        assert_eq!(a, b, "{name}: HGETALL");
                    }
                    "stream" => compare_stream(&mut src, &mut dst, k, &name),
                    other => panic!("{name}: unexpected type {other}"),
                }
                let (a, b) = (src.call(&[b"PTTL", k]).int(), dst.call(&[b"PTTL", k]).int());
                assert!(
                    (a < 0 && a == b) || (a >= 0 && b >= 0 && (a - b).abs() <= 1000),
                    "{name}: PTTL {a} vs {b}"
                );
            }
        }
    }
}
