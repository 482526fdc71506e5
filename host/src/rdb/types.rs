//! The numbers of the RDB format: value type bytes, opcodes, module opcodes,
//! and which file flavour (Redis or Valkey) gives which meaning to a byte.
//!
//! Owns the vocabulary only; it must not read bytes.

use serde::{Deserialize, Serialize};

pub const TYPE_STRING: u8 = 0;
pub const TYPE_LIST: u8 = 1;
pub const TYPE_SET: u8 = 2;
pub const TYPE_ZSET: u8 = 3;
pub const TYPE_HASH: u8 = 4;
pub const TYPE_ZSET_2: u8 = 5;
pub const TYPE_MODULE_PRE_GA: u8 = 6;
pub const TYPE_MODULE_2: u8 = 7;
pub const TYPE_HASH_ZIPMAP: u8 = 9;
pub const TYPE_LIST_ZIPLIST: u8 = 10;
pub const TYPE_SET_INTSET: u8 = 11;
pub const TYPE_ZSET_ZIPLIST: u8 = 12;
pub const TYPE_HASH_ZIPLIST: u8 = 13;
pub const TYPE_LIST_QUICKLIST: u8 = 14;
pub const TYPE_STREAM_LISTPACKS: u8 = 15;
pub const TYPE_HASH_LISTPACK: u8 = 16;
pub const TYPE_ZSET_LISTPACK: u8 = 17;
pub const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub const TYPE_STREAM_LISTPACKS_2: u8 = 19;
pub const TYPE_SET_LISTPACK: u8 = 20;
pub const TYPE_STREAM_LISTPACKS_3: u8 = 21;
/// Redis 7.4 release candidates: hash with field TTLs, absolute TTLs.
pub const TYPE_HASH_METADATA_PRE_GA: u8 = 22;
/// Valkey 9 (RDB 80) reuses 22: hash table with an 8-byte expiry per field.
pub const TYPE_VALKEY_HASH_2: u8 = 22;
pub const TYPE_HASH_LISTPACK_EX_PRE_GA: u8 = 23;
pub const TYPE_HASH_METADATA: u8 = 24;
pub const TYPE_HASH_LISTPACK_EX: u8 = 25;

/// Valkey 9: an atomic slot migration in progress.
pub const OPCODE_SLOT_IMPORT: u8 = 243;
pub const OPCODE_SLOT_INFO: u8 = 244;
pub const OPCODE_FUNCTION2: u8 = 245;
pub const OPCODE_FUNCTION_PRE_GA: u8 = 246;
pub const OPCODE_MODULE_AUX: u8 = 247;
pub const OPCODE_IDLE: u8 = 248;
pub const OPCODE_FREQ: u8 = 249;
pub const OPCODE_AUX: u8 = 250;
pub const OPCODE_RESIZEDB: u8 = 251;
pub const OPCODE_EXPIRETIME_MS: u8 = 252;
pub const OPCODE_EXPIRETIME: u8 = 253;
pub const OPCODE_SELECTDB: u8 = 254;
pub const OPCODE_EOF: u8 = 255;

pub const MODULE_OPCODE_EOF: u64 = 0;
pub const MODULE_OPCODE_SINT: u64 = 1;
pub const MODULE_OPCODE_UINT: u64 = 2;
pub const MODULE_OPCODE_FLOAT: u64 = 3;
pub const MODULE_OPCODE_DOUBLE: u64 = 4;
pub const MODULE_OPCODE_STRING: u64 = 5;

/// Highest RDB version of a `REDIS` file this parser reads (Redis 7.4–8.x).
pub const MAX_REDIS_VERSION: u32 = 12;
/// The `VALKEY` file versions this parser reads (Valkey 9.0 and 9.1).
pub const VALKEY_VERSIONS: &[u32] = &[80];

/// Which project wrote the file: the same type byte means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// `REDIS` magic: Redis, and Valkey 7.x/8.x (RDB 11).
    Redis,
    /// `VALKEY` magic: Valkey 9 and later (RDB 80+).
    Valkey,
}

impl Flavor {
    /// Valkey moved to versions from 80 on, so the version alone tells.
    pub fn of_version(version: u32) -> Flavor {
        if version >= 80 {
            Flavor::Valkey
        } else {
            Flavor::Redis
        }
    }
}

/// The logical type of a key, whatever its encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    String,
    List,
    Set,
    ZSet,
    Hash,
    Stream,
    Module,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::String => "string",
            ValueKind::List => "list",
            ValueKind::Set => "set",
            ValueKind::ZSet => "zset",
            ValueKind::Hash => "hash",
            ValueKind::Stream => "stream",
            ValueKind::Module => "module",
        }
    }
}

/// The kind of a value type byte, or `None` if the byte is no value type in
/// this flavour.
pub fn kind_of(rdb_type: u8, flavor: Flavor) -> Option<ValueKind> {
    use ValueKind::*;
    Some(match rdb_type {
        TYPE_STRING => String,
        TYPE_LIST | TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => List,
        TYPE_SET | TYPE_SET_INTSET | TYPE_SET_LISTPACK => Set,
        TYPE_ZSET | TYPE_ZSET_2 | TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => ZSet,
        TYPE_HASH | TYPE_HASH_ZIPMAP | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => Hash,
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => Stream,
        TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => Module,
        22 => Hash,
        23..=25 if flavor == Flavor::Redis => Hash,
        _ => return None,
    })
}

/// A stable name for a value type byte, for stats and messages.
pub fn type_name(rdb_type: u8, flavor: Flavor) -> &'static str {
    match rdb_type {
        TYPE_STRING => "string",
        TYPE_LIST => "list-linked",
        TYPE_SET => "set-hashtable",
        TYPE_ZSET => "zset-v1",
        TYPE_HASH => "hash-hashtable",
        TYPE_ZSET_2 => "zset-skiplist",
        TYPE_MODULE_PRE_GA => "module-pre-ga",
        TYPE_MODULE_2 => "module",
        TYPE_HASH_ZIPMAP => "hash-zipmap",
        TYPE_LIST_ZIPLIST => "list-ziplist",
        TYPE_SET_INTSET => "set-intset",
        TYPE_ZSET_ZIPLIST => "zset-ziplist",
        TYPE_HASH_ZIPLIST => "hash-ziplist",
        TYPE_LIST_QUICKLIST => "list-quicklist",
        TYPE_STREAM_LISTPACKS => "stream-v1",
        TYPE_HASH_LISTPACK => "hash-listpack",
        TYPE_ZSET_LISTPACK => "zset-listpack",
        TYPE_LIST_QUICKLIST_2 => "list-quicklist-2",
        TYPE_STREAM_LISTPACKS_2 => "stream-v2",
        TYPE_SET_LISTPACK => "set-listpack",
        TYPE_STREAM_LISTPACKS_3 => "stream-v3",
        22 if flavor == Flavor::Valkey => "hash-valkey-ttl",
        TYPE_HASH_METADATA_PRE_GA => "hash-ttl-pre-ga",
        TYPE_HASH_LISTPACK_EX_PRE_GA => "hash-listpack-ttl-pre-ga",
        TYPE_HASH_METADATA => "hash-ttl",
        TYPE_HASH_LISTPACK_EX => "hash-listpack-ttl",
        _ => "unknown",
    }
}
