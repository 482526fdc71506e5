//! Reading Redis RDB files: a streaming parser for RDB versions 1–12 (Redis
//! 2.x to 8.x, Valkey 7/8) and Valkey 9's version 80, the CRC-64 and LZF it
//! needs, statistics for the backup manifest, and decoding of values into
//! logical form for command replay.
//!
//! Owns the RDB format and nothing else: it never touches the network,
//! storage or Redis itself. Input is any synchronous `std::io::Read`; the
//! parser holds only the current key and value, never the whole file.
//!
//! Map:
//! - `parser`: [`Parser`], [`Item`], [`KeyEntry`]: the file structure;
//! - `value`: walks each value type exactly (the raw path);
//! - `reader`: buffered bytes, offsets, CRC feed, capture of raw bytes;
//! - `decode`: [`decode()`] into [`Value`], with `encodings` (ziplist,
//!   listpack, intset, zipmap);
//! - `stats`: [`Stats`] for the manifest; `crc64`, `lzf`, `types`, `error`.
//!
//! Invariants: every error carries the absolute byte offset where it was
//! found; nothing is allocated from a length read in the file beyond the
//! bytes actually read; corrupt input is an error, never a panic.

mod crc64;
mod decode;
mod encodings;
mod error;
mod lzf;
mod parser;
mod reader;
mod stats;
mod types;
mod value;

#[cfg(test)]
mod tests;

use std::io::Read;

pub use crc64::{Crc64, crc64};
pub use decode::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamEntry, StreamId, Value, decode,
};
pub use error::{RdbError, show_bytes};
pub use parser::{Item, KeyEntry, ParseOptions, Parser};
pub use stats::{DbStats, LargeKey, Stats, TypeStats};
pub use types::{Flavor, ValueKind};

/// Parses a whole RDB without keeping values: checks the structure, the end
/// marker and the checksum, and returns statistics.
pub fn validate<R: Read>(reader: R) -> Result<Stats, RdbError> {
    let mut parser = Parser::with_options(
        reader,
        ParseOptions {
            capture_values: false,
        },
    )?;
    let mut stats = Stats::new(parser.version(), stats::DEFAULT_LARGEST_KEYS);
    while let Some(item) = parser.next()? {
        stats.record(&item);
    }
    stats.finish(&parser);
    Ok(stats)
}
