//! CRC-64 as Redis computes it (`crc64.c`): the Jones polynomial, reflected,
//! initial value 0, no final xor. It checks whole RDB files (the 8 bytes after
//! the EOF opcode) and DUMP payloads (the 8 bytes after the RDB version).
//!
//! Owns only the arithmetic; it must not know about files or readers.
//!
//! The backup path checksums ~600 MB per RDB while the Redis fork writing it
//! competes for the same cores, so this uses `crc-fast`: carry-less
//! multiplication folding (PCLMULQDQ, or PMULL on ARM) with keys derived
//! from the polynomial, 10-20x a slicing-by-8 table loop, and a table
//! fallback on CPUs without it. Short inputs use a slicing-by-8 table.

use std::sync::LazyLock;

/// Redis's CRC-64 (Jones), in the Rocksoft model: width 64, poly
/// 0xad93d23594c935a9, init 0, reflected in and out, xorout 0, check value
/// 0xe9c6d914c4b8d9ca.
static JONES: LazyLock<crc_fast::CrcParams> = LazyLock::new(|| {
    crc_fast::CrcParams::new(
        "CRC-64/REDIS-JONES",
        64,
        0xad93_d235_94c9_35a9,
        0,
        true,
        0,
        0xe9c6_d914_c4b8_d9ca,
    )
});

/// Jones polynomial 0xad93d23594c935a9, bit-reversed for the reflected form.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const fn make_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u64; 256]; 8] = make_tables();

/// Slicing-by-8 over tables built at compile time: for short inputs, where
/// the SIMD path's set-up costs more than the bytes.
fn by_table(init: u64, bytes: &[u8]) -> u64 {
    let t = &TABLES;
    let mut crc = init;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = crc ^ u64::from_le_bytes(word);
        crc = t[7][(v & 0xff) as usize]
            ^ t[6][((v >> 8) & 0xff) as usize]
            ^ t[5][((v >> 16) & 0xff) as usize]
            ^ t[4][((v >> 24) & 0xff) as usize]
            ^ t[3][((v >> 32) & 0xff) as usize]
            ^ t[2][((v >> 40) & 0xff) as usize]
            ^ t[1][((v >> 48) & 0xff) as usize]
            ^ t[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ b as u64) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Inputs shorter than this take the table path (a key restore checksums
/// millions of values of a few hundred bytes each).
const SIMD_FROM: usize = 1024;

/// Continues a CRC-64 from `init` over `bytes` (Redis's `crc64(crc, s, l)`).
pub fn crc64(init: u64, bytes: &[u8]) -> u64 {
    if bytes.len() < SIMD_FROM {
        return by_table(init, bytes);
    }
    // With no final xor, a running value is the register itself, so
    // continuing is starting from it.
    let mut params = *JONES;
    params.init = init;
    params.init_algorithm = init;
    crc_fast::checksum_with_params(params, bytes)
}

/// A running CRC-64, fed piece by piece.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crc64 {
    value: u64,
}

impl Crc64 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.value = crc64(self.value, bytes);
    }

    pub fn value(&self) -> u64 {
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference, straight from the definition.
    fn slow(init: u64, bytes: &[u8]) -> u64 {
        let mut crc = init;
        for &b in bytes {
            crc ^= b as u64;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value_matches_redis() {
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        // The other vector Redis's crc64.c tests with (`sizeof(li)`, so the
        // C string's terminating NUL is included).
        let li = concat!(
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed ",
            "do eiusmod tempor incididunt ut labore et dolore magna ",
            "aliqua. Ut enim ad minim veniam, quis nostrud exercitation ",
            "ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis ",
            "aute irure dolor in reprehenderit in voluptate velit esse ",
            "cillum dolore eu fugiat nulla pariatur. Excepteur sint ",
            "occaecat cupidatat non proident, sunt in culpa qui officia ",
            "deserunt mollit anim id est laborum.\0"
        );
        assert_eq!(crc64(0, li.as_bytes()), 0xc779_4709_e696_83b3);
    }

    #[test]
    fn folded_equals_bitwise_and_is_incremental() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 3) as u8).collect();
        let lens = (0..300).chain([
            511, 512, 513, 1023, 1024, 1025, 4095, 4096, 4097, 65_537, 70_000,
        ]);
        for len in lens {
            assert_eq!(crc64(0, &data[..len]), slow(0, &data[..len]), "len {len}");
            let init = 0x0123_4567_89ab_cdef;
            assert_eq!(
                crc64(init, &data[..len]),
                slow(init, &data[..len]),
                "len {len}"
            );
        }
        let mut c = Crc64::new();
        for piece in data.chunks(13) {
            c.update(piece);
        }
        assert_eq!(c.value(), crc64(0, &data));
    }
}
