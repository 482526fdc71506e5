//! Turns a parsed key's serialized value into its logical content
//! ([`Value`]), for restoring by command replay into a server that cannot
//! take the `DUMP` payload (an older engine).
//!
//! Owns the meaning of every value type and encoding, including the blobs
//! (ziplist, listpack, intset, zipmap, stream listpacks). It must not read
//! the file: it works on `KeyEntry::value`, which the parser captured. Error
//! offsets stay absolute in the file.

use super::encodings::{self, Elem};
use super::error::RdbError;
use super::parser::KeyEntry;
use super::reader::Reader;
use super::types::*;

type Result<T> = std::result::Result<T, RdbError>;

/// A stream entry ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    fn from_be(raw: &[u8]) -> StreamId {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&raw[..8]);
        seq.copy_from_slice(&raw[8..16]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A pending (delivered, not acknowledged) entry of a consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    /// The consumer owning it (empty if the file names none).
    pub consumer: Vec<u8>,
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Vec<u8>,
    pub seen_time_ms: i64,
    /// Stream type 21 (Redis 7.2+) only.
    pub active_time_ms: Option<i64>,
    pub pending: Vec<StreamId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroup {
    pub name: Vec<u8>,
    pub last_delivered: StreamId,
    /// Stream types 19+ only.
    pub entries_read: Option<u64>,
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    pub entries: Vec<StreamEntry>,
    /// Number of entries as the file states it.
    pub length: u64,
    pub last_id: StreamId,
    /// Stream types 19+ only (zero otherwise).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: Option<u64>,
    pub groups: Vec<ConsumerGroup>,
}

/// The logical content of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    /// Members with scores, in file order.
    ZSet(Vec<(Vec<u8>, f64)>),
    /// Field, value, and the field's absolute expiry in Unix milliseconds.
    Hash(Vec<(Vec<u8>, Vec<u8>, Option<i64>)>),
    Stream(Box<Stream>),
    /// Module data stays opaque: only the module can interpret it.
    Module {
        module_id: u64,
        raw: Vec<u8>,
    },
}

/// Decodes a captured value. `version` is the file's RDB version (it tells
/// Redis and Valkey meanings of type 22 apart).
pub fn decode(entry: &KeyEntry, version: u32) -> Result<Value> {
    if entry.value.len() as u64 != entry.value_len {
        return Err(RdbError::unsupported(
            entry.value_offset,
            "cannot decode a value that was not captured (parse with capture_values on)",
        ));
    }
    let flavor = Flavor::of_version(version);
    let mut d = Decoder {
        rd: Reader::with_base(
            &entry.value[..],
            entry.value_offset,
            false,
            entry.value.len(),
        ),
        buf: Vec::new(),
    };
    let mut value = d.value(entry.rdb_type, flavor)?;
    if let Value::Module { raw, .. } = &mut value {
        raw.clone_from(&entry.value);
    }
    let end = d.rd.offset();
    if end != entry.value_offset + entry.value_len {
        return Err(RdbError::corrupt(
            end,
            "value has bytes left over after decoding",
        ));
    }
    Ok(value)
}

struct Decoder<'a> {
    rd: Reader<&'a [u8]>,
    buf: Vec<u8>,
}

/// Caps preallocation from counts read in the file.
fn cap(n: u64) -> usize {
    n.min(4096) as usize
}

impl Decoder<'_> {
    fn string(&mut self) -> Result<Vec<u8>> {
        let mut s = Vec::new();
        self.rd.string(&mut s)?;
        Ok(s)
    }

    /// Reads a string blob and decodes it with `f`, mapping its error to the
    /// blob's offset.
    fn blob<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&[u8]) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let at = self.rd.offset();
        let mut buf = std::mem::take(&mut self.buf);
        self.rd.string(&mut buf)?;
        let r = f(&buf).map_err(|m| RdbError::corrupt(at, format!("invalid {what}: {m}")));
        self.buf = buf;
        r
    }

    fn value(&mut self, t: u8, flavor: Flavor) -> Result<Value> {
        Ok(match t {
            TYPE_STRING => Value::String(self.string()?),
            TYPE_LIST | TYPE_SET => {
                let n = self.rd.length()?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    items.push(self.string()?);
                }
                if t == TYPE_LIST {
                    Value::List(items)
                } else {
                    Value::Set(items)
                }
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.rd.length()?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    let m = self.string()?;
                    let s = if t == TYPE_ZSET_2 {
                        self.rd.binary_double()?
                    } else {
                        self.rd.string_double()?
                    };
                    items.push((m, s));
                }
                Value::ZSet(items)
            }
            TYPE_HASH => {
                let n = self.rd.length()?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    items.push((self.string()?, self.string()?, None));
                }
                Value::Hash(items)
            }
            TYPE_HASH_ZIPMAP => Value::Hash(self.blob("zipmap", |b| {
                Ok(encodings::zipmap(b)?
                    .into_iter()
                    .map(|(f, v)| (f.to_vec(), v.to_vec(), None))
                    .collect())
            })?),
            TYPE_LIST_ZIPLIST => {
                Value::List(self.blob("ziplist", |b| Ok(to_bytes(encodings::ziplist(b)?)))?)
            }
            TYPE_SET_INTSET => Value::Set(self.blob("intset", |b| {
                Ok(encodings::intset(b)?
                    .into_iter()
                    .map(|i| i.to_string().into_bytes())
                    .collect())
            })?),
            TYPE_SET_LISTPACK => {
                Value::Set(self.blob("listpack", |b| Ok(to_bytes(encodings::listpack(b)?)))?)
            }
            TYPE_ZSET_ZIPLIST => {
                Value::ZSet(self.blob("ziplist", |b| zset_pairs(encodings::ziplist(b)?))?)
            }
            TYPE_ZSET_LISTPACK => {
                Value::ZSet(self.blob("listpack", |b| zset_pairs(encodings::listpack(b)?))?)
            }
            TYPE_HASH_ZIPLIST => {
                Value::Hash(self.blob("ziplist", |b| hash_tuples(encodings::ziplist(b)?, false))?)
            }
            TYPE_HASH_LISTPACK => {
                Value::Hash(self.blob("listpack", |b| hash_tuples(encodings::listpack(b)?, false))?)
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let nodes = self.rd.length()?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let container = if t == TYPE_LIST_QUICKLIST_2 {
                        self.rd.length()?
                    } else {
                        2
                    };
                    if container == 1 {
                        items.push(self.string()?);
                    } else if t == TYPE_LIST_QUICKLIST {
                        items.extend(
                            self.blob("ziplist", |b| Ok(to_bytes(encodings::ziplist(b)?)))?,
                        );
                    } else {
                        items.extend(
                            self.blob("listpack", |b| Ok(to_bytes(encodings::listpack(b)?)))?,
                        );
                    }
                }
                Value::List(items)
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                Value::Stream(Box::new(self.stream(t)?))
            }
            TYPE_MODULE_2 => {
                let module_id = self.rd.length()?;
                super::value::module_opcodes(&mut self.rd)?;
                // `decode` fills in the raw bytes: it has the entry.
                Value::Module {
                    module_id,
                    raw: Vec::new(),
                }
            }
            22 if flavor == Flavor::Valkey => {
                let n = self.rd.length()?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    let f = self.string()?;
                    let v = self.string()?;
                    let exp = self.rd.i64_le()?;
                    items.push((f, v, (exp != -1).then_some(exp)));
                }
                Value::Hash(items)
            }
            TYPE_HASH_METADATA_PRE_GA | TYPE_HASH_METADATA if flavor == Flavor::Redis => {
                let min_expire = if t == TYPE_HASH_METADATA {
                    Some(self.rd.i64_le()?)
                } else {
                    None
                };
                let n = self.rd.length()?;
                let mut items = Vec::with_capacity(cap(n));
                for _ in 0..n {
                    let ttl = self.rd.length()?;
                    let f = self.string()?;
                    let v = self.string()?;
                    let exp = match (ttl, min_expire) {
                        (0, _) => None,
                        // Relative to the hash's minimum, plus one (0 means none).
                        (ttl, Some(min)) => Some(min.wrapping_add((ttl as i64).wrapping_sub(1))),
                        (ttl, None) => Some(ttl as i64),
                    };
                    items.push((f, v, exp));
                }
                Value::Hash(items)
            }
            TYPE_HASH_LISTPACK_EX_PRE_GA | TYPE_HASH_LISTPACK_EX if flavor == Flavor::Redis => {
                if t == TYPE_HASH_LISTPACK_EX {
                    self.rd.i64_le()?; // minimum expiry, implied by the fields
                }
                Value::Hash(self.blob("listpack", |b| hash_tuples(encodings::listpack(b)?, true))?)
            }
            TYPE_MODULE_PRE_GA => {
                return Err(RdbError::unsupported(
                    self.rd.offset(),
                    "module value in the Redis 4.0 release-candidate format (type 6)",
                ));
            }
            other => {
                return Err(RdbError::corrupt(
                    self.rd.offset(),
                    format!("unknown value type {other}"),
                ));
            }
        })
    }

    fn stream(&mut self, t: u8) -> Result<Stream> {
        let mut s = Stream::default();
        let nodes = self.rd.length()?;
        for _ in 0..nodes {
            let at = self.rd.offset();
            let key = self.string()?;
            if key.len() != 16 {
                return Err(RdbError::corrupt(at, "stream node key is not a 16-byte ID"));
            }
            let master = StreamId::from_be(&key);
            let entries = self.blob("stream listpack", |b| {
                stream_node(master, &encodings::listpack(b)?)
            })?;
            s.entries.extend(entries);
        }
        s.length = self.rd.length()?;
        s.last_id = StreamId {
            ms: self.rd.length()?,
            seq: self.rd.length()?,
        };
        if t >= TYPE_STREAM_LISTPACKS_2 {
            s.first_id = StreamId {
                ms: self.rd.length()?,
                seq: self.rd.length()?,
            };
            s.max_deleted_id = StreamId {
                ms: self.rd.length()?,
                seq: self.rd.length()?,
            };
            s.entries_added = Some(self.rd.length()?);
        }
        let groups = self.rd.length()?;
        for _ in 0..groups {
            let name = self.string()?;
            let last_delivered = StreamId {
                ms: self.rd.length()?,
                seq: self.rd.length()?,
            };
            let entries_read = if t >= TYPE_STREAM_LISTPACKS_2 {
                Some(self.rd.length()?)
            } else {
                None
            };
            let n = self.rd.length()?;
            let mut pending = Vec::with_capacity(cap(n));
            for _ in 0..n {
                let raw: [u8; 16] = self.rd.array()?;
                pending.push(PendingEntry {
                    id: StreamId::from_be(&raw),
                    consumer: Vec::new(),
                    delivery_time_ms: self.rd.i64_le()?,
                    delivery_count: self.rd.length()?,
                });
            }
            let n = self.rd.length()?;
            let mut consumers = Vec::with_capacity(cap(n));
            for _ in 0..n {
                let name = self.string()?;
                let seen_time_ms = self.rd.i64_le()?;
                let active_time_ms = if t >= TYPE_STREAM_LISTPACKS_3 {
                    Some(self.rd.i64_le()?)
                } else {
                    None
                };
                let k = self.rd.length()?;
                let mut ids = Vec::with_capacity(cap(k));
                for _ in 0..k {
                    let at = self.rd.offset();
                    let raw: [u8; 16] = self.rd.array()?;
                    let id = StreamId::from_be(&raw);
                    let owner = pending.iter_mut().find(|p| p.id == id).ok_or_else(|| {
                        RdbError::corrupt(
                            at,
                            "consumer's pending entry is missing from the group's PEL",
                        )
                    })?;
                    owner.consumer = name.clone();
                    ids.push(id);
                }
                consumers.push(Consumer {
                    name,
                    seen_time_ms,
                    active_time_ms,
                    pending: ids,
                });
            }
            s.groups.push(ConsumerGroup {
                name,
                last_delivered,
                entries_read,
                pending,
                consumers,
            });
        }
        Ok(s)
    }
}

fn to_bytes(elems: Vec<Elem<'_>>) -> Vec<Vec<u8>> {
    elems.into_iter().map(Elem::to_bytes).collect()
}

fn zset_pairs(elems: Vec<Elem<'_>>) -> std::result::Result<Vec<(Vec<u8>, f64)>, String> {
    if !elems.len().is_multiple_of(2) {
        return Err("odd number of elements in a sorted set".into());
    }
    elems
        .chunks_exact(2)
        .map(|p| {
            let score = p[1].as_f64().ok_or("score is not a number")?;
            Ok((p[0].to_bytes(), score))
        })
        .collect()
}

/// Field/value pairs, or field/value/TTL triples for hashes with field TTLs
/// (TTL 0 means none).
type HashTuples = Vec<(Vec<u8>, Vec<u8>, Option<i64>)>;

fn hash_tuples(elems: Vec<Elem<'_>>, with_ttl: bool) -> std::result::Result<HashTuples, String> {
    let width = if with_ttl { 3 } else { 2 };
    if !elems.len().is_multiple_of(width) {
        return Err("element count does not match the hash layout".into());
    }
    elems
        .chunks_exact(width)
        .map(|c| {
            let ttl = if with_ttl {
                match c[2].as_i64().ok_or("field TTL is not an integer")? {
                    0 => None,
                    t => Some(t),
                }
            } else {
                None
            };
            Ok((c[0].to_bytes(), c[1].to_bytes(), ttl))
        })
        .collect()
}

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// Decodes one stream listpack: a master entry (count, deleted, field
/// names, 0), then entries of flags, ID deltas, fields and values, and a
/// back-count. Deleted entries are skipped.
fn stream_node(master: StreamId, e: &[Elem<'_>]) -> std::result::Result<Vec<StreamEntry>, String> {
    let int = |i: usize| -> std::result::Result<i64, String> {
        e.get(i)
            .ok_or("stream listpack cut short")?
            .as_i64()
            .ok_or_else(|| format!("stream listpack element {i} is not an integer"))
    };
    let count = int(0)?;
    let deleted = int(1)?;
    let nfields = usize::try_from(int(2)?).map_err(|_| "negative master field count")?;
    // Bounded by the element count, so `3 + nfields` cannot overflow below.
    let master_fields = nfields
        .checked_add(3)
        .and_then(|end| e.get(3..end))
        .ok_or("stream master entry cut short")?;
    let mut p = 3 + nfields;
    if int(p)? != 0 {
        return Err("stream master entry has no terminator".into());
    }
    p += 1;
    let mut out = Vec::new();
    let mut seen = 0i64;
    while p < e.len() {
        let flags = int(p)?;
        let id = StreamId {
            ms: master.ms.wrapping_add(int(p + 1)? as u64),
            seq: master.seq.wrapping_add(int(p + 2)? as u64),
        };
        p += 3;
        let mut fields = Vec::new();
        if flags & FLAG_SAMEFIELDS != 0 {
            for f in master_fields {
                let v = e.get(p).ok_or("stream entry cut short")?;
                fields.push((f.to_bytes(), v.to_bytes()));
                p += 1;
            }
        } else {
            let n = usize::try_from(int(p)?).map_err(|_| "negative field count")?;
            p += 1;
            for _ in 0..n {
                let (f, v) = (e.get(p), e.get(p + 1));
                let (f, v) = f.zip(v).ok_or("stream entry cut short")?;
                fields.push((f.to_bytes(), v.to_bytes()));
                p += 2;
            }
        }
        int(p)?; // back-count of the entry's elements
        p += 1;
        seen += 1;
        if flags & FLAG_DELETED == 0 {
            out.push(StreamEntry { id, fields });
        }
    }
    if seen != count.wrapping_add(deleted) {
        return Err(format!(
            "stream listpack holds {seen} entries, its header says {}",
            count.wrapping_add(deleted)
        ));
    }
    Ok(out)
}
