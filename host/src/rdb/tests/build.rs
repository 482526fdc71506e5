//! A test-only RDB writer, to hand-make files in formats no installed server
//! writes (RDB 1–9 encodings, Redis 7.4 hash field TTLs, Valkey 9, modules).

use crate::rdb::crc64::crc64;

pub fn len(n: u64) -> Vec<u8> {
    if n < 64 {
        vec![n as u8]
    } else if n < 16384 {
        vec![0x40 | (n >> 8) as u8, n as u8]
    } else if n <= u32::MAX as u64 {
        let mut v = vec![0x80];
        v.extend_from_slice(&(n as u32).to_be_bytes());
        v
    } else {
        let mut v = vec![0x81];
        v.extend_from_slice(&n.to_be_bytes());
        v
    }
}

/// A plain (length-prefixed) string.
pub fn string(s: &[u8]) -> Vec<u8> {
    let mut v = len(s.len() as u64);
    v.extend_from_slice(s);
    v
}

pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub struct RdbFile {
    pub bytes: Vec<u8>,
    pub version: u32,
}

impl RdbFile {
    pub fn redis(version: u32) -> RdbFile {
        RdbFile {
            bytes: format!("REDIS{version:04}").into_bytes(),
            version,
        }
    }

    pub fn valkey(version: u32) -> RdbFile {
        RdbFile {
            bytes: format!("VALKEY{version:03}").into_bytes(),
            version,
        }
    }

    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(b);
        self
    }

    pub fn aux(&mut self, k: &str, v: &str) -> &mut Self {
        self.raw(&[250])
            .raw(&string(k.as_bytes()))
            .raw(&string(v.as_bytes()))
    }

    pub fn select(&mut self, db: u64) -> &mut Self {
        self.raw(&[254]).raw(&len(db))
    }

    pub fn key(&mut self, rdb_type: u8, key: &[u8], value: &[u8]) -> &mut Self {
        self.raw(&[rdb_type]).raw(&string(key)).raw(value)
    }

    /// EOF marker and, from version 5, the CRC-64.
    pub fn finish(&mut self) -> Vec<u8> {
        self.bytes.push(255);
        if self.version >= 5 {
            let c = crc64(0, &self.bytes);
            self.bytes.extend_from_slice(&c.to_le_bytes());
        }
        self.bytes.clone()
    }
}
