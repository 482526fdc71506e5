//! The streaming RDB parser: pulls one item at a time (aux field, db
//! selection, function library, module aux data, key) from a synchronous
//! `Read`, holding only the current key and value in memory, and checks the
//! CRC-64 at the end.
//!
//! Owns the file-level structure: magic and version, opcodes, per-key
//! attributes (expiry, LRU idle, LFU frequency), the end marker, checksum and
//! trailing bytes. Value bodies are walked by `value`; it must not decode
//! them (that is `decode`).

use std::io::Read;

use super::error::{RdbError, show_bytes};
use super::reader::Reader;
use super::types::*;
use super::value;

type Result<T> = std::result::Result<T, RdbError>;

/// How the parser treats values.
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Keep each value's serialized bytes in `KeyEntry::value` (default).
    /// When false, values are walked and checked but not kept, so a
    /// validating pass uses no memory per value.
    pub capture_values: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            capture_values: true,
        }
    }
}

/// One key and its value as stored in the RDB.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEntry {
    /// The database selected when the key was read.
    pub db: u64,
    pub key: Vec<u8>,
    /// Absolute expiry, Unix time in milliseconds.
    pub expire_at_ms: Option<i64>,
    /// LRU idle time, when the server saved it (an LRU maxmemory policy).
    pub idle_secs: Option<u64>,
    /// LFU counter, when the server saved it (an LFU maxmemory policy).
    pub freq: Option<u8>,
    /// The value type byte as in the file.
    pub rdb_type: u8,
    pub kind: ValueKind,
    /// The exact bytes of the value after the type byte and the key (empty
    /// when values are not captured). With the type byte, the RDB version
    /// and a CRC-64 this is a `DUMP` payload: see [`KeyEntry::dump_payload`].
    pub value: Vec<u8>,
    /// Length of the serialized value in the file, captured or not.
    pub value_len: u64,
    /// Absolute offset of the value's first byte in the file.
    pub value_offset: u64,
    /// Whether the caller's selector chose this key (always, with `next`);
    /// an unselected key's value is not captured.
    pub selected: bool,
}

impl KeyEntry {
    /// The `DUMP` payload `RESTORE` accepts for this value: type byte, value
    /// bytes, RDB version (2 bytes little-endian), CRC-64 of all that
    /// (8 bytes little-endian). Needs captured values.
    pub fn dump_payload(&self, rdb_version: u32) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.value.len() + 11);
        p.push(self.rdb_type);
        p.extend_from_slice(&self.value);
        p.extend_from_slice(&(rdb_version as u16).to_le_bytes());
        let crc = super::crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    }
}

/// One record of the file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An AUX field (`redis-ver`, `ctime`, `repl-id`, …).
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// The following keys belong to this database.
    SelectDb(u64),
    /// Size hint of the current database.
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    /// A function library (Redis 7+): its source code, as `FUNCTION LOAD`
    /// takes it.
    Function(Vec<u8>),
    /// A function library in the 7.0 release-candidate format, which no
    /// Redis release loads; carried so nothing is silently lost.
    FunctionPreGa {
        name: Vec<u8>,
        engine: Vec<u8>,
        description: Option<Vec<u8>>,
        code: Vec<u8>,
    },
    /// Data a module saved outside the keyspace. `raw` is every byte after
    /// the module id, up to and including the module EOF marker; `when` is
    /// before (1) or after (2) the keyspace.
    ModuleAux {
        module_id: u64,
        when: u64,
        raw: Vec<u8>,
    },
    /// Cluster mode: how many keys of the current db are in one slot.
    SlotInfo {
        slot_id: u64,
        slot_size: u64,
        expires_slot_size: u64,
    },
    /// Valkey 9: an atomic slot migration that was importing these ranges.
    SlotImport {
        job_name: Vec<u8>,
        ranges: Vec<(u64, u64)>,
    },
    Key(KeyEntry),
}

/// Pull-style parser over an RDB stream. The source must end exactly where
/// the RDB ends: bytes after the checksum are an error.
pub struct Parser<R: Read> {
    rd: Reader<R>,
    version: u32,
    flavor: Flavor,
    opts: ParseOptions,
    db: u64,
    expire_at_ms: Option<i64>,
    idle_secs: Option<u64>,
    freq: Option<u8>,
    /// The last key read, for messages about what follows it.
    last_key: Option<(u64, Vec<u8>)>,
    stored_checksum: Option<u64>,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Done,
    Failed,
}

impl<R: Read> Parser<R> {
    /// Reads the magic and version; refuses what this parser cannot read.
    pub fn new(reader: R) -> Result<Self> {
        Self::with_options(reader, ParseOptions::default())
    }

    pub fn with_options(reader: R, opts: ParseOptions) -> Result<Self> {
        let mut rd = Reader::new(reader);
        let head: [u8; 9] = rd
            .array()
            .map_err(|e| e.within(|| "the 9-byte header".into()))?;
        let (flavor, digits) = if &head[..5] == b"REDIS" {
            (Flavor::Redis, &head[5..])
        } else if &head[..6] == b"VALKEY" {
            (Flavor::Valkey, &head[6..])
        } else {
            return Err(RdbError::corrupt(
                0,
                format!(
                    "not an RDB file: it starts with `{}`, not `REDIS` or `VALKEY`",
                    show_bytes(&head)
                ),
            ));
        };
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(RdbError::corrupt(
                0,
                format!("RDB header `{}` has no numeric version", show_bytes(&head)),
            ));
        }
        let version: u32 = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let known = match flavor {
            Flavor::Redis => (1..=MAX_REDIS_VERSION).contains(&version),
            Flavor::Valkey => VALKEY_VERSIONS.contains(&version),
        };
        if !known {
            return Err(RdbError::unsupported(
                0,
                format!(
                    "RDB version {version} (`{}` header) is not one this redback reads \
                     (Redis RDB versions 1–{MAX_REDIS_VERSION}, Valkey RDB version 80)",
                    show_bytes(&head)
                ),
            ));
        }
        Ok(Parser {
            rd,
            version,
            flavor,
            opts,
            db: 0,
            expire_at_ms: None,
            idle_secs: None,
            freq: None,
            last_key: None,
            stored_checksum: None,
            state: State::Reading,
        })
    }

    /// The RDB format version from the header.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the header said `REDIS` or `VALKEY`.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Bytes consumed so far (the file size, once `next` returned `None`).
    pub fn offset(&self) -> u64 {
        self.rd.offset()
    }

    /// The checksum stored in the file, once the end was reached (`Some(0)`
    /// means the writer had checksums disabled; `None` for RDB < 5).
    pub fn checksum(&self) -> Option<u64> {
        self.stored_checksum
    }

    /// The next record, or `None` after the end marker and a good checksum.
    /// Any error is final: later calls fail too.
    // Not `Iterator::next`: a `Result<Option<_>>` lets callers use `?` and
    // keeps "the file ended well" distinct from "the file is bad".
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Item>> {
        self.next_selecting(&mut |_, _| true)
    }

    /// As `next`, asking `select(db, key)` for each key before its value is
    /// read: a key it refuses comes back with `selected: false` and its
    /// value walked and checked but not kept, which spares a restore of a
    /// few keys copying every value of the file.
    pub fn next_selecting(
        &mut self,
        select: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<Option<Item>> {
        match self.state {
            State::Reading => {}
            State::Done => return Ok(None),
            State::Failed => {
                return Err(RdbError::corrupt(
                    self.rd.offset(),
                    "the parser already stopped at an earlier error",
                ));
            }
        }
        let r = self.next_inner(select);
        match &r {
            Ok(None) => self.state = State::Done,
            Err(_) => self.state = State::Failed,
            Ok(Some(_)) => {}
        }
        r
    }

    /// "key `foo` (db 0)", or "the header" before any key.
    fn last_place(&self) -> String {
        match &self.last_key {
            Some((db, k)) => format!("key `{}` (db {db})", show_bytes(k)),
            None => "the header".into(),
        }
    }

    fn next_inner(&mut self, select: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<Option<Item>> {
        loop {
            let at = self.rd.offset();
            let op = match self.rd.u8() {
                Ok(op) => op,
                Err(RdbError::Truncated { offset, .. }) => {
                    return Err(RdbError::Truncated {
                        offset,
                        place: format!(
                            "after {}, without the end-of-file marker",
                            self.last_place()
                        ),
                    });
                }
                Err(e) => return Err(e),
            };
            let item = match op {
                OPCODE_EOF => {
                    self.finish(at)?;
                    return Ok(None);
                }
                OPCODE_SELECTDB => {
                    self.db = self.opcode_len("the SELECTDB record")?;
                    Item::SelectDb(self.db)
                }
                OPCODE_RESIZEDB => Item::ResizeDb {
                    db_size: self.opcode_len("the RESIZEDB record")?,
                    expires_size: self.opcode_len("the RESIZEDB record")?,
                },
                OPCODE_EXPIRETIME_MS => {
                    let t = self
                        .rd
                        .i64_le()
                        .map_err(|e| e.within(|| "an expire time".into()))?;
                    self.expire_at_ms = Some(t);
                    continue;
                }
                OPCODE_EXPIRETIME => {
                    let t: [u8; 4] = self
                        .rd
                        .array()
                        .map_err(|e| e.within(|| "an expire time".into()))?;
                    self.expire_at_ms = Some(i32::from_le_bytes(t) as i64 * 1000);
                    continue;
                }
                OPCODE_IDLE => {
                    self.idle_secs = Some(self.opcode_len("an LRU idle time")?);
                    continue;
                }
                OPCODE_FREQ => {
                    self.freq = Some(
                        self.rd
                            .u8()
                            .map_err(|e| e.within(|| "an LFU counter".into()))?,
                    );
                    continue;
                }
                OPCODE_AUX => {
                    let mut key = Vec::new();
                    let mut value = Vec::new();
                    self.rd
                        .string(&mut key)
                        .and_then(|_| self.rd.string(&mut value))
                        .map_err(|e| e.within(|| "an AUX field".into()))?;
                    Item::Aux { key, value }
                }
                OPCODE_MODULE_AUX => self
                    .module_aux()
                    .map_err(|e| e.within(|| "module AUX data".into()))?,
                OPCODE_FUNCTION2 => {
                    let mut code = Vec::new();
                    self.rd
                        .string(&mut code)
                        .map_err(|e| e.within(|| "a function library".into()))?;
                    Item::Function(code)
                }
                OPCODE_FUNCTION_PRE_GA => self.function_pre_ga().map_err(|e| {
                    e.within(|| "a function library (7.0 release-candidate format)".into())
                })?,
                OPCODE_SLOT_INFO => Item::SlotInfo {
                    slot_id: self.opcode_len("the SLOT_INFO record")?,
                    slot_size: self.opcode_len("the SLOT_INFO record")?,
                    expires_slot_size: self.opcode_len("the SLOT_INFO record")?,
                },
                OPCODE_SLOT_IMPORT if self.flavor == Flavor::Valkey => self
                    .slot_import()
                    .map_err(|e| e.within(|| "the SLOT_IMPORT record".into()))?,
                t if kind_of(t, self.flavor).is_some() => {
                    return self.key(t, select).map(|k| Some(Item::Key(k)));
                }
                t => {
                    let what = if t >= OPCODE_SLOT_IMPORT {
                        "opcode"
                    } else {
                        "value type"
                    };
                    return Err(RdbError::corrupt(
                        at,
                        format!(
                            "unknown {what} {t} after {} (this redback reads Redis RDB versions \
                             1–{MAX_REDIS_VERSION} and Valkey RDB version 80; this file is version {})",
                            self.last_place(),
                            self.version
                        ),
                    ));
                }
            };
            return Ok(Some(item));
        }
    }

    fn opcode_len(&mut self, what: &'static str) -> Result<u64> {
        self.rd.length().map_err(|e| e.within(|| what.into()))
    }

    fn finish(&mut self, eof_at: u64) -> Result<()> {
        if self.version >= 5 {
            let computed = self.rd.crc_value();
            let at = self.rd.offset();
            let stored = u64::from_le_bytes(
                self.rd
                    .array()
                    .map_err(|e| e.within(|| "the 8-byte checksum after the end marker".into()))?,
            );
            if stored != 0 && stored != computed {
                return Err(RdbError::ChecksumMismatch {
                    offset: at,
                    stored,
                    computed,
                });
            }
            self.stored_checksum = Some(stored);
        }
        let end = self.rd.offset();
        if !self.rd.at_end()? {
            return Err(RdbError::corrupt(
                end,
                format!(
                    "data continues after the end of the RDB (end marker at byte {eof_at}); \
                     the file is damaged or two files were joined"
                ),
            ));
        }
        Ok(())
    }

    fn key(
        &mut self,
        rdb_type: u8,
        select: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<KeyEntry> {
        let kind = kind_of(rdb_type, self.flavor).expect("checked by the caller");
        let mut key = Vec::new();
        self.rd
            .string(&mut key)
            .map_err(|e| e.within(|| format!("the name of a key in db {}", self.db)))?;
        let value_offset = self.rd.offset();
        let selected = select(self.db, &key);
        let capture = self.opts.capture_values && selected;
        if capture {
            self.rd.begin_capture();
        }
        let walked = value::walk(&mut self.rd, rdb_type, self.flavor);
        let value = if capture {
            self.rd.end_capture()
        } else {
            Vec::new()
        };
        let flavor = self.flavor;
        let db = self.db;
        walked.map_err(|e| {
            e.within(|| {
                format!(
                    "key `{}` (db {db}, value type {rdb_type} {})",
                    show_bytes(&key),
                    type_name(rdb_type, flavor)
                )
            })
        })?;
        match &mut self.last_key {
            Some((d, k)) => {
                *d = db;
                k.clear();
                k.extend_from_slice(&key);
            }
            None => self.last_key = Some((db, key.clone())),
        }
        Ok(KeyEntry {
            db,
            key,
            expire_at_ms: self.expire_at_ms.take(),
            idle_secs: self.idle_secs.take(),
            freq: self.freq.take(),
            rdb_type,
            kind,
            value,
            value_len: self.rd.offset() - value_offset,
            value_offset,
            selected,
        })
    }

    fn module_aux(&mut self) -> Result<Item> {
        let module_id = self.rd.length()?;
        self.rd.begin_capture();
        let walked = (|| {
            let at = self.rd.offset();
            let when_opcode = self.rd.length()?;
            if when_opcode != MODULE_OPCODE_UINT {
                return Err(RdbError::corrupt(
                    at,
                    format!("module AUX `when` field has opcode {when_opcode}, expected 2"),
                ));
            }
            let when = self.rd.length()?;
            value::module_opcodes(&mut self.rd)?;
            Ok(when)
        })();
        let raw = self.rd.end_capture();
        Ok(Item::ModuleAux {
            module_id,
            when: walked?,
            raw,
        })
    }

    fn function_pre_ga(&mut self) -> Result<Item> {
        let mut name = Vec::new();
        let mut engine = Vec::new();
        let mut code = Vec::new();
        self.rd.string(&mut name)?;
        self.rd.string(&mut engine)?;
        let description = if self.rd.length()? != 0 {
            let mut d = Vec::new();
            self.rd.string(&mut d)?;
            Some(d)
        } else {
            None
        };
        self.rd.string(&mut code)?;
        Ok(Item::FunctionPreGa {
            name,
            engine,
            description,
            code,
        })
    }

    fn slot_import(&mut self) -> Result<Item> {
        let mut job_name = Vec::new();
        self.rd.string(&mut job_name)?;
        let n = self.rd.length()?;
        let mut ranges = Vec::new();
        for _ in 0..n {
            let start = self.rd.length()?;
            let end = self.rd.length()?;
            ranges.push((start, end));
        }
        Ok(Item::SlotImport { job_name, ranges })
    }
}
