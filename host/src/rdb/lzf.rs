//! LZF decompression, the format Redis uses for long strings in RDB files
//! (`lzf_d.c`): a control byte below 32 starts a literal run of `ctrl + 1`
//! bytes; otherwise its top three bits are a match length (7 means "plus the
//! next byte"), its low five bits and the next byte a back-reference distance.
//!
//! Owns only decompression. Input comes from untrusted files: every step is
//! bounds-checked, so a corrupt input is an `Err`, never a panic and never a
//! read or write outside the buffers. It must not allocate more than the
//! caller's `out_len`, which the caller bounds before calling.

/// Largest expansion LZF can achieve: a 2-byte back reference yields 9 bytes
/// and a 3-byte one up to 264 (≈ 88x); literal runs expand nothing. Callers
/// refuse an `out_len` above `in_len * MAX_RATIO` before allocating it.
pub const MAX_RATIO: u64 = 90;

/// Decompresses `input` into exactly `out_len` bytes; any other outcome
/// (short output, overflow, reference before the start) is an error naming
/// what was wrong.
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, &'static str> {
    let mut out = vec![0u8; out_len];
    let mut ip = 0usize;
    let mut op = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if op + run > out_len {
                return Err("LZF literal run overflows the declared length");
            }
            if ip + run > input.len() {
                return Err("LZF literal run reaches past the compressed data");
            }
            out[op..op + run].copy_from_slice(&input[ip..ip + run]);
            ip += run;
            op += run;
        } else {
            let mut len = ctrl >> 5;
            if ip >= input.len() {
                return Err("LZF back reference cut short");
            }
            if len == 7 {
                len += input[ip] as usize;
                ip += 1;
                if ip >= input.len() {
                    return Err("LZF back reference cut short");
                }
            }
            let distance = ((ctrl & 0x1f) << 8) + input[ip] as usize + 1;
            ip += 1;
            let len = len + 2;
            if op + len > out_len {
                return Err("LZF back reference overflows the declared length");
            }
            if distance > op {
                return Err("LZF back reference points before the start");
            }
            let from = op - distance;
            if distance >= len {
                out.copy_within(from..from + len, op);
            } else {
                // Overlapping copy repeats the last `distance` bytes: it must
                // go byte by byte, as in lzf_d.c.
                for i in 0..len {
                    out[op + i] = out[from + i];
                }
            }
            op += len;
        }
    }
    if op != out_len {
        return Err("LZF data decompresses to fewer bytes than declared");
    }
    Ok(out)
}

/// A small greedy LZF compressor, only for tests: it produces valid streams
/// of both literal runs and (overlapping) back references.
#[cfg(test)]
pub fn compress_for_tests(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let flush = |lit: &mut Vec<u8>, out: &mut Vec<u8>| {
        for chunk in lit.chunks(32) {
            out.push((chunk.len() - 1) as u8);
            out.extend_from_slice(chunk);
        }
        lit.clear();
    };
    let mut i = 0;
    while i < data.len() {
        let mut best = (0usize, 0usize); // (len, distance)
        let start = i.saturating_sub(8191);
        for from in start..i {
            let mut l = 0;
            while i + l < data.len() && l < 264 && data[from + l] == data[i + l] {
                l += 1;
            }
            if l > best.0 {
                best = (l, i - from);
            }
        }
        if best.0 >= 3 {
            flush(&mut lit, &mut out);
            let (len, dist) = (best.0 - 2, best.1 - 1);
            if len < 7 {
                out.push(((len << 5) | (dist >> 8)) as u8);
            } else {
                out.push(((7 << 5) | (dist >> 8)) as u8);
                out.push((len - 7) as u8);
            }
            out.push((dist & 0xff) as u8);
            i += best.0;
        } else {
            lit.push(data[i]);
            i += 1;
        }
    }
    flush(&mut lit, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_vectors() {
        // Literal "abc".
        assert_eq!(decompress(&[2, b'a', b'b', b'c'], 3).unwrap(), b"abc");
        // "a" then a back reference of distance 1, length 2+3=5: "aaaaaa"
        // (overlapping copy).
        assert_eq!(decompress(&[0, b'a', 3 << 5, 0], 6).unwrap(), b"aaaaaa");
        // "ab" then distance 2, long length 7+1+2=10: "ab" * 6.
        assert_eq!(
            decompress(&[1, b'a', b'b', 7 << 5, 1, 1], 12).unwrap(),
            b"abababababab"
        );
        assert_eq!(decompress(&[], 0).unwrap(), b"");
    }

    #[test]
    fn round_trips() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"hello hello hello hello hello".to_vec(),
            vec![b'x'; 1000],
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
            (0..3000u32).map(|i| (i * i % 7) as u8).collect(),
        ];
        inputs.push(b"no repeats: abcdefghijklmnopqrstuvwxyz0123456789".to_vec());
        for input in inputs {
            let c = compress_for_tests(&input);
            assert_eq!(decompress(&c, input.len()).unwrap(), input);
            assert!(input.len() as u64 <= c.len() as u64 * MAX_RATIO);
        }
    }

    #[test]
    fn corrupt_input_is_an_error() {
        // Literal run longer than the input.
        assert!(decompress(&[5, b'a'], 6).is_err());
        // Output longer than declared.
        assert!(decompress(&[2, b'a', b'b', b'c'], 2).is_err());
        // Output shorter than declared.
        assert!(decompress(&[2, b'a', b'b', b'c'], 4).is_err());
        // Back reference before the start.
        assert!(decompress(&[0, b'a', 1 << 5, 5], 10).is_err());
        // Back reference missing its distance byte.
        assert!(decompress(&[0, b'a', 1 << 5], 10).is_err());
        assert!(decompress(&[0, b'a', 7 << 5, 1], 10).is_err());
        // Every truncation and every single-byte change of a valid stream
        // either decodes or errors, never panics.
        let input: Vec<u8> = (0..400u32).map(|i| (i % 13) as u8).collect();
        let c = compress_for_tests(&input);
        for cut in 0..c.len() {
            let _ = decompress(&c[..cut], input.len());
        }
        for pos in 0..c.len() {
            for v in [0u8, 1, 31, 32, 0x7f, 0xe0, 0xff] {
                let mut m = c.clone();
                m[pos] = v;
                let _ = decompress(&m, input.len());
            }
        }
    }
}
