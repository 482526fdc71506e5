//! `RdbError`: every failure of reading an RDB, always with the absolute byte
//! offset where it was found and a sentence a user understands.
//!
//! Owns the error shapes and how keys are shown in messages; it must not
//! decide what is an error (the reader and parser do).

use std::io;

/// A failure while reading an RDB file or a value cut out of one.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The input ended before the RDB did.
    #[error("RDB truncated at byte {offset}: the file ends {place}")]
    Truncated { offset: u64, place: String },
    /// The bytes do not follow the format.
    #[error("RDB corrupt at byte {offset}: {message}")]
    Corrupt { offset: u64, message: String },
    /// The file's CRC-64 does not match its content.
    #[error(
        "RDB checksum mismatch: file says {stored:016x}, computed {computed:016x} \
         (checksum at byte {offset}); the file was damaged after Redis wrote it"
    )]
    ChecksumMismatch {
        offset: u64,
        stored: u64,
        computed: u64,
    },
    /// Well-formed, but a version or feature this parser does not read.
    #[error("RDB not supported at byte {offset}: {message}")]
    Unsupported { offset: u64, message: String },
    /// The source failed (not an end of input).
    #[error("RDB read failed at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

impl RdbError {
    /// The absolute byte offset in the RDB where the problem was found.
    pub fn offset(&self) -> u64 {
        match self {
            RdbError::Truncated { offset, .. }
            | RdbError::Corrupt { offset, .. }
            | RdbError::ChecksumMismatch { offset, .. }
            | RdbError::Unsupported { offset, .. }
            | RdbError::Io { offset, .. } => *offset,
        }
    }

    pub(crate) fn corrupt(offset: u64, message: impl Into<String>) -> Self {
        RdbError::Corrupt {
            offset,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(offset: u64, message: impl Into<String>) -> Self {
        RdbError::Unsupported {
            offset,
            message: message.into(),
        }
    }

    /// Says where in the file the error happened ("key `foo` (db 0)"): a
    /// truncation names what it ends inside, a corruption gets it appended.
    /// Called only on the error path, so building the text costs nothing
    /// when all is well.
    pub(crate) fn within(self, place: impl FnOnce() -> String) -> Self {
        match self {
            RdbError::Truncated { offset, .. } => RdbError::Truncated {
                offset,
                place: format!("inside {}", place()),
            },
            RdbError::Corrupt { offset, message } => RdbError::Corrupt {
                offset,
                message: format!("{message} (in {})", place()),
            },
            RdbError::Unsupported { offset, message } => RdbError::Unsupported {
                offset,
                message: format!("{message} (in {})", place()),
            },
            other => other,
        }
    }
}

/// Shows bytes from the file (keys, names) safely in a message: printable
/// ASCII as is, anything else as `\xNN`, long ones cut.
pub fn show_bytes(bytes: &[u8]) -> String {
    const MAX_SHOWN: usize = 64;
    let mut s = String::new();
    for &b in bytes.iter().take(MAX_SHOWN) {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'`' => s.push_str("\\`"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX_SHOWN {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_offset_and_place() {
        let e = RdbError::Truncated {
            offset: 10,
            place: "x".into(),
        }
        .within(|| format!("key `{}` (db 0)", show_bytes(b"fo\x00o")));
        assert_eq!(
            e.to_string(),
            "RDB truncated at byte 10: the file ends inside key `fo\\x00o` (db 0)"
        );
        assert_eq!(e.offset(), 10);
        let e = RdbError::corrupt(5, "bad").within(|| "the header".into());
        assert_eq!(e.to_string(), "RDB corrupt at byte 5: bad (in the header)");
        assert!(show_bytes(&[b'a'; 100]).ends_with("… (100 bytes)"));
    }
}
