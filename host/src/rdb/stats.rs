//! `Stats`: what a backup manifest records about an RDB, gathered item by
//! item while the parser streams: version, AUX fields, keys and expires per
//! database, count and serialized bytes per value type and per kind, the
//! largest keys, function libraries.
//!
//! Owns the summary only; it must not keep per-key data beyond the bounded
//! list of largest keys (a 3-million-key file must not grow it).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::error::show_bytes;
use super::parser::{Item, Parser};
use super::types::{Flavor, ValueKind, type_name};

/// How many largest keys `validate` keeps.
pub const DEFAULT_LARGEST_KEYS: usize = 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeStats {
    pub keys: u64,
    /// Serialized value bytes, as in the file.
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbStats {
    pub keys: u64,
    pub expires: u64,
    /// The RESIZEDB hint the writer gave, if any.
    pub hinted_keys: Option<u64>,
    pub hinted_expires: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LargeKey {
    /// The key, non-printable bytes shown as `\xNN`, long keys cut.
    pub key: String,
    pub db: u64,
    pub kind: ValueKind,
    /// Serialized value bytes.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stats {
    /// The RDB format version from the header.
    pub version: u32,
    pub flavor: Flavor,
    /// AUX fields (`redis-ver`, `ctime`, …), as text (invalid UTF-8 replaced).
    pub aux: BTreeMap<String, String>,
    pub dbs: BTreeMap<u64, DbStats>,
    pub keys: u64,
    pub expires: u64,
    pub value_bytes: u64,
    /// Per value type byte, by name (`hash-listpack`, `list-quicklist-2`, …).
    pub by_type: BTreeMap<String, TypeStats>,
    /// Per logical kind (`string`, `hash`, …).
    pub by_kind: BTreeMap<String, TypeStats>,
    /// Largest values first.
    pub largest_keys: Vec<LargeKey>,
    pub functions: u64,
    pub module_aux: u64,
    /// Size of the whole RDB in bytes.
    pub file_bytes: u64,
    /// The CRC-64 stored in the file (0 when the writer disabled checksums
    /// or the RDB is older than version 5); hex text in JSON.
    #[serde(with = "hex_u64")]
    pub checksum: u64,
    #[serde(skip)]
    largest_limit: usize,
    #[serde(skip)]
    heap: BinaryHeap<Reverse<Ranked>>,
    #[serde(skip)]
    seq: u64,
    #[serde(skip)]
    current_db: u64,
}

/// A candidate largest key: ordered by size, earlier keys first on ties.
#[derive(Debug, Clone)]
struct Ranked {
    bytes: u64,
    seq: u64,
    key: LargeKey,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.bytes, Reverse(self.seq)).cmp(&(other.bytes, Reverse(other.seq)))
    }
}

impl Stats {
    /// Empty stats for a file of `rdb_version`, keeping the `largest` biggest
    /// keys.
    pub fn new(rdb_version: u32, largest: usize) -> Stats {
        Stats {
            version: rdb_version,
            flavor: Flavor::of_version(rdb_version),
            aux: BTreeMap::new(),
            dbs: BTreeMap::new(),
            keys: 0,
            expires: 0,
            value_bytes: 0,
            by_type: BTreeMap::new(),
            by_kind: BTreeMap::new(),
            largest_keys: Vec::new(),
            functions: 0,
            module_aux: 0,
            file_bytes: 0,
            checksum: 0,
            largest_limit: largest,
            heap: BinaryHeap::new(),
            seq: 0,
            current_db: 0,
        }
    }

    /// Accounts for one parsed item.
    pub fn record(&mut self, item: &Item) {
        /// Counts one key of `bytes` under `name`; allocates the name only
        /// the first time (this runs for every key of the RDB).
        fn count(map: &mut BTreeMap<String, TypeStats>, name: &str, bytes: u64) {
            let t = match map.get_mut(name) {
                Some(t) => t,
                None => map.entry(name.to_string()).or_default(),
            };
            t.keys += 1;
            t.bytes += bytes;
        }
        match item {
            Item::Aux { key, value } => {
                self.aux.insert(
                    String::from_utf8_lossy(key).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                );
            }
            Item::SelectDb(db) => {
                self.current_db = *db;
                self.dbs.entry(*db).or_default();
            }
            Item::ResizeDb {
                db_size,
                expires_size,
            } => {
                // RESIZEDB follows the SELECTDB it belongs to.
                let db = self.dbs.entry(self.current_db).or_default();
                db.hinted_keys = Some(*db_size);
                db.hinted_expires = Some(*expires_size);
            }
            Item::Function(_) | Item::FunctionPreGa { .. } => self.functions += 1,
            Item::ModuleAux { .. } => self.module_aux += 1,
            Item::SlotInfo { .. } | Item::SlotImport { .. } => {}
            Item::Key(k) => {
                let db = self.dbs.entry(k.db).or_default();
                db.keys += 1;
                self.keys += 1;
                if k.expire_at_ms.is_some() {
                    db.expires += 1;
                    self.expires += 1;
                }
                self.value_bytes += k.value_len;
                let name = type_name(k.rdb_type, self.flavor);
                count(&mut self.by_type, name, k.value_len);
                count(&mut self.by_kind, k.kind.name(), k.value_len);
                self.offer_large(k.value_len, || LargeKey {
                    key: show_bytes(&k.key),
                    db: k.db,
                    kind: k.kind,
                    bytes: k.value_len,
                });
            }
        }
    }

    fn offer_large(&mut self, bytes: u64, make: impl FnOnce() -> LargeKey) {
        if self.largest_limit == 0 {
            return;
        }
        self.seq += 1;
        let full = self.heap.len() >= self.largest_limit;
        if full {
            match self.heap.peek() {
                Some(Reverse(min)) if bytes > min.bytes => {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Reverse(Ranked {
            bytes,
            seq: self.seq,
            key: make(),
        }));
    }

    /// Records the file size and checksum once the parser reached the end,
    /// and orders the largest keys.
    pub fn finish<R: Read>(&mut self, parser: &Parser<R>) {
        self.file_bytes = parser.offset();
        self.checksum = parser.checksum().unwrap_or(0);
        let mut ranked: Vec<Ranked> = self.heap.iter().map(|Reverse(r)| r.clone()).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        self.largest_keys = ranked.into_iter().map(|r| r.key).collect();
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new(0, DEFAULT_LARGEST_KEYS)
    }
}

/// A u64 as 16 hex digits in JSON, as checksums are usually shown.
mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}
