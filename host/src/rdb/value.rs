//! Walks one serialized value exactly, byte for byte, as `rdbLoadObject`
//! reads it for each type and version, without building it. The reader's
//! capture (when on) thereby collects the value's exact bytes.
//!
//! Owns the length-framed structure of every value type. It must not decode
//! the blobs inside strings (ziplist, listpack, intset, zipmap): that is
//! `decode`'s job, done only when a caller asks for logical values.

use std::io::Read;

use super::error::RdbError;
use super::reader::Reader;
use super::types::*;

type Result<T> = std::result::Result<T, RdbError>;

/// Consumes the value of type `rdb_type` that starts at the reader.
pub(crate) fn walk<R: Read>(rd: &mut Reader<R>, rdb_type: u8, flavor: Flavor) -> Result<()> {
    match rdb_type {
        TYPE_STRING => {
            rd.skip_string()?;
        }
        TYPE_LIST | TYPE_SET => {
            let n = rd.length()?;
            for _ in 0..n {
                rd.skip_string()?;
            }
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = rd.length()?;
            for _ in 0..n {
                rd.skip_string()?;
                if rdb_type == TYPE_ZSET_2 {
                    rd.skip(8)?;
                } else {
                    skip_string_double(rd)?;
                }
            }
        }
        TYPE_HASH => {
            let n = rd.length()?;
            for _ in 0..n {
                rd.skip_string()?;
                rd.skip_string()?;
            }
        }
        TYPE_HASH_ZIPMAP | TYPE_LIST_ZIPLIST | TYPE_SET_INTSET | TYPE_ZSET_ZIPLIST
        | TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK | TYPE_ZSET_LISTPACK | TYPE_SET_LISTPACK => {
            rd.skip_string()?;
        }
        TYPE_LIST_QUICKLIST => {
            let n = rd.length()?;
            for _ in 0..n {
                quicklist_node(rd)?;
            }
        }
        TYPE_LIST_QUICKLIST_2 => {
            let n = rd.length()?;
            for _ in 0..n {
                let at = rd.offset();
                let container = rd.length()?;
                if container != 1 && container != 2 {
                    return Err(RdbError::corrupt(
                        at,
                        format!(
                            "quicklist node container {container} (expected 1 plain or 2 packed)"
                        ),
                    ));
                }
                quicklist_node(rd)?;
            }
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
            stream(rd, rdb_type)?;
        }
        TYPE_MODULE_PRE_GA => {
            return Err(RdbError::unsupported(
                rd.offset(),
                "module value in the Redis 4.0 release-candidate format (type 6); \
                 no Redis release reads it either",
            ));
        }
        TYPE_MODULE_2 => {
            rd.length()?; // module type id
            module_opcodes(rd)?;
        }
        TYPE_VALKEY_HASH_2 if flavor == Flavor::Valkey => {
            let n = rd.length()?;
            for _ in 0..n {
                rd.skip_string()?;
                rd.skip_string()?;
                rd.skip(8)?; // expiry ms, -1 for none
            }
        }
        TYPE_HASH_METADATA_PRE_GA | TYPE_HASH_METADATA if flavor == Flavor::Redis => {
            if rdb_type == TYPE_HASH_METADATA {
                rd.skip(8)?; // minimum expiry of the fields
            }
            let n = rd.length()?;
            for _ in 0..n {
                rd.length()?; // ttl
                rd.skip_string()?;
                rd.skip_string()?;
            }
        }
        TYPE_HASH_LISTPACK_EX_PRE_GA | TYPE_HASH_LISTPACK_EX if flavor == Flavor::Redis => {
            if rdb_type == TYPE_HASH_LISTPACK_EX {
                rd.skip(8)?;
            }
            rd.skip_string()?;
        }
        other => {
            return Err(RdbError::corrupt(
                rd.offset().saturating_sub(1),
                format!("unknown value type {other}"),
            ));
        }
    }
    Ok(())
}

fn quicklist_node<R: Read>(rd: &mut Reader<R>) -> Result<()> {
    let at = rd.offset();
    if rd.skip_string()? == 0 {
        return Err(RdbError::corrupt(at, "empty quicklist node"));
    }
    Ok(())
}

fn skip_string_double<R: Read>(rd: &mut Reader<R>) -> Result<()> {
    let n = rd.u8()?;
    if n < 253 {
        rd.skip(n as u64)?;
    }
    Ok(())
}

/// Module data: a sequence of typed fields ended by the EOF opcode, as
/// `rdbLoadCheckModuleValue` walks it (used for module values and module
/// AUX alike).
pub(crate) fn module_opcodes<R: Read>(rd: &mut Reader<R>) -> Result<()> {
    loop {
        let at = rd.offset();
        match rd.length()? {
            MODULE_OPCODE_EOF => return Ok(()),
            MODULE_OPCODE_SINT | MODULE_OPCODE_UINT => {
                rd.length()?;
            }
            MODULE_OPCODE_FLOAT => rd.skip(4)?,
            MODULE_OPCODE_DOUBLE => rd.skip(8)?,
            MODULE_OPCODE_STRING => {
                rd.skip_string()?;
            }
            other => {
                return Err(RdbError::corrupt(
                    at,
                    format!("unknown module data opcode {other}"),
                ));
            }
        }
    }
}

fn stream<R: Read>(rd: &mut Reader<R>, rdb_type: u8) -> Result<()> {
    let nodes = rd.length()?;
    for _ in 0..nodes {
        let at = rd.offset();
        let key_len = rd.skip_string()?;
        if key_len != 16 {
            return Err(RdbError::corrupt(
                at,
                format!("stream node key of {key_len} bytes (a stream ID has 16)"),
            ));
        }
        let at = rd.offset();
        if rd.skip_string()? == 0 {
            return Err(RdbError::corrupt(at, "empty stream listpack"));
        }
    }
    // length, last id (ms, seq)
    for _ in 0..3 {
        rd.length()?;
    }
    if rdb_type >= TYPE_STREAM_LISTPACKS_2 {
        // first id, max deleted id, entries added
        for _ in 0..5 {
            rd.length()?;
        }
    }
    let groups = rd.length()?;
    for _ in 0..groups {
        rd.skip_string()?; // name
        rd.length()?; // last delivered ms
        rd.length()?; // last delivered seq
        if rdb_type >= TYPE_STREAM_LISTPACKS_2 {
            rd.length()?; // entries read
        }
        let pel = rd.length()?;
        for _ in 0..pel {
            rd.skip(16 + 8)?; // raw id, delivery time
            rd.length()?; // delivery count
        }
        let consumers = rd.length()?;
        for _ in 0..consumers {
            rd.skip_string()?; // name
            rd.skip(8)?; // seen time
            if rdb_type >= TYPE_STREAM_LISTPACKS_3 {
                rd.skip(8)?; // active time
            }
            let pel = rd.length()?;
            // Each consumer PEL entry is a bare 16-byte id.
            rd.skip(pel.saturating_mul(16))?;
        }
    }
    Ok(())
}
