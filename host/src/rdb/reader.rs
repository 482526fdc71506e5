//! The byte source under the parser: a buffered reader over any
//! `std::io::Read` that knows the absolute offset of every byte, feeds the
//! file's CRC-64, and can copy the exact bytes it consumes into a capture
//! buffer (how the parser hands out a value's serialized bytes without
//! re-encoding them).
//!
//! Owns the primitive encodings of the format: lengths (6/14/32/64-bit and
//! the ENCVAL special forms), strings (raw, int8/16/32, LZF), doubles (string
//! and binary), times. It must not know about keys, types or opcodes.
//!
//! Speed: the CRC and the capture are fed lazily in big slices (when the
//! buffer is refilled or when asked), never byte by byte, and the common
//! reads take a fast path on the buffered bytes. Memory: nothing is ever
//! allocated from a length read in the file; buffers grow only with bytes
//! actually read.

use std::io::{self, Read};

use super::crc64::Crc64;
use super::error::RdbError;
use super::lzf;

type Result<T> = std::result::Result<T, RdbError>;

const BUF_SIZE: usize = 256 * 1024;
/// The largest fixed-size read (a stream ID) must fit the buffer.
const MIN_BUF: usize = 64;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// A length field: a plain number, or the marker of a specially encoded
/// string (`11xxxxxx`, the six bits naming the encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Len {
    Plain(u64),
    Encoded(u8),
}

pub(crate) struct Reader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Absolute offset of `buf[0]`.
    base: u64,
    crc: Crc64,
    crc_on: bool,
    /// `buf[..crc_mark]` has been fed to the CRC.
    crc_mark: usize,
    capturing: bool,
    /// While capturing, `buf[capture_mark..pos]` is consumed but not yet
    /// copied to `capture`.
    capture_mark: usize,
    capture: Vec<u8>,
}

impl<R: Read> Reader<R> {
    /// A reader at the start of a file, checksumming everything.
    pub fn new(inner: R) -> Self {
        Self::with_base(inner, 0, true, BUF_SIZE)
    }

    /// A reader whose first byte sits at `base` in some file (decoding a
    /// value cut out of it), so that error offsets stay absolute. `capacity`
    /// sizes the buffer (small for small values: decoding millions of keys
    /// must not allocate 256 KiB each).
    pub fn with_base(inner: R, base: u64, crc_on: bool, capacity: usize) -> Self {
        Reader {
            inner,
            buf: vec![0u8; capacity.clamp(MIN_BUF, BUF_SIZE)].into_boxed_slice(),
            pos: 0,
            end: 0,
            base,
            crc: Crc64::new(),
            crc_on,
            crc_mark: 0,
            capturing: false,
            capture_mark: 0,
            capture: Vec::new(),
        }
    }

    /// Absolute offset of the next byte to be read.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn flush_marks(&mut self) {
        if self.crc_on && self.crc_mark < self.pos {
            self.crc.update(&self.buf[self.crc_mark..self.pos]);
        }
        self.crc_mark = self.pos;
        self.flush_capture();
    }

    /// The CRC waits for a buffer refill: fed a whole buffer at a time, it
    /// runs on its fast path.
    fn flush_capture(&mut self) {
        if self.capturing && self.capture_mark < self.pos {
            self.capture
                .extend_from_slice(&self.buf[self.capture_mark..self.pos]);
        }
        self.capture_mark = self.pos;
    }

    /// Makes at least `n` (at most `MIN_BUF`) bytes available at `pos`.
    #[cold]
    fn fill(&mut self, n: usize) -> Result<()> {
        debug_assert!(n <= MIN_BUF);
        self.flush_marks();
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            self.crc_mark = 0;
            self.capture_mark = 0;
        }
        while self.end < n {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    return Err(RdbError::Truncated {
                        offset: self.base + self.end as u64,
                        place: "before the RDB is complete".into(),
                    });
                }
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RdbError::Io {
                        offset: self.base + self.end as u64,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// True if the input has no byte left (used after the checksum).
    pub fn at_end(&mut self) -> Result<bool> {
        if self.pos < self.end {
            return Ok(false);
        }
        match self.fill(1) {
            Ok(()) => Ok(false),
            Err(RdbError::Truncated { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8> {
        if self.pos >= self.end {
            self.fill(1)?;
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.end - self.pos < N {
            self.fill(N)?;
        }
        let mut a = [0u8; N];
        a.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        Ok(a)
    }

    /// Consumes `n` bytes without keeping them (they still reach the CRC and
    /// the capture).
    pub fn skip(&mut self, mut n: u64) -> Result<()> {
        loop {
            let avail = (self.end - self.pos) as u64;
            if n <= avail {
                self.pos += n as usize;
                return Ok(());
            }
            self.pos = self.end;
            n -= avail;
            self.fill(1)?;
        }
    }

    /// Appends the next `n` bytes to `out`, growing it only as bytes arrive.
    pub fn read_into(&mut self, mut n: u64, out: &mut Vec<u8>) -> Result<()> {
        out.reserve(n.min(1 << 20) as usize);
        loop {
            let avail = self.end - self.pos;
            if n <= avail as u64 {
                let k = n as usize;
                out.extend_from_slice(&self.buf[self.pos..self.pos + k]);
                self.pos += k;
                return Ok(());
            }
            out.extend_from_slice(&self.buf[self.pos..self.end]);
            self.pos = self.end;
            n -= avail as u64;
            self.fill(1)?;
        }
    }

    /// Reads a length field, plain or special-encoding marker.
    #[inline]
    pub fn len_field(&mut self) -> Result<Len> {
        let at = self.offset();
        let b = self.u8()?;
        match b >> 6 {
            0 => Ok(Len::Plain((b & 0x3f) as u64)),
            1 => {
                let b2 = self.u8()?;
                Ok(Len::Plain((((b & 0x3f) as u64) << 8) | b2 as u64))
            }
            3 => Ok(Len::Encoded(b & 0x3f)),
            _ => match b {
                0x80 => Ok(Len::Plain(u32::from_be_bytes(self.array()?) as u64)),
                0x81 => Ok(Len::Plain(u64::from_be_bytes(self.array()?))),
                _ => Err(RdbError::corrupt(
                    at,
                    format!("unknown length encoding byte 0x{b:02x}"),
                )),
            },
        }
    }

    /// Reads a length where only a number may stand (counts, ids).
    #[inline]
    pub fn length(&mut self) -> Result<u64> {
        let at = self.offset();
        match self.len_field()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(e) => Err(RdbError::corrupt(
                at,
                format!(
                    "expected a length, found a string encoding marker (0x{:02x})",
                    0xc0 | e
                ),
            )),
        }
    }

    /// Reads a string and returns its bytes, decoded (integers as decimal
    /// text, LZF decompressed), replacing the content of `out`.
    pub fn string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        let at = self.offset();
        match self.len_field()? {
            Len::Plain(n) => self.read_into(n, out),
            Len::Encoded(ENC_INT8) => {
                let v = self.u8()? as i8;
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Len::Encoded(ENC_INT16) => {
                let v = i16::from_le_bytes(self.array()?);
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Len::Encoded(ENC_INT32) => {
                let v = i32::from_le_bytes(self.array()?);
                out.extend_from_slice(v.to_string().as_bytes());
                Ok(())
            }
            Len::Encoded(ENC_LZF) => {
                let (clen, len) = self.lzf_header(at)?;
                let mut compressed = Vec::new();
                self.read_into(clen, &mut compressed)?;
                // `len` is bounded by MAX_RATIO times bytes already read.
                let plain = lzf::decompress(&compressed, len as usize)
                    .map_err(|m| RdbError::corrupt(at, format!("invalid LZF string: {m}")))?;
                *out = plain;
                Ok(())
            }
            Len::Encoded(e) => Err(unknown_string_encoding(at, e)),
        }
    }

    /// Consumes a string without decoding it; returns its decoded length.
    pub fn skip_string(&mut self) -> Result<u64> {
        let at = self.offset();
        match self.len_field()? {
            Len::Plain(n) => {
                self.skip(n)?;
                Ok(n)
            }
            Len::Encoded(ENC_INT8) => {
                let v = self.u8()? as i8;
                Ok(decimal_len(v as i64))
            }
            Len::Encoded(ENC_INT16) => {
                let v = i16::from_le_bytes(self.array()?);
                Ok(decimal_len(v as i64))
            }
            Len::Encoded(ENC_INT32) => {
                let v = i32::from_le_bytes(self.array()?);
                Ok(decimal_len(v as i64))
            }
            Len::Encoded(ENC_LZF) => {
                let (clen, len) = self.lzf_header(at)?;
                self.skip(clen)?;
                Ok(len)
            }
            Len::Encoded(e) => Err(unknown_string_encoding(at, e)),
        }
    }

    fn lzf_header(&mut self, at: u64) -> Result<(u64, u64)> {
        let clen = self.length()?;
        let len = self.length()?;
        if clen == 0 && len != 0 {
            return Err(RdbError::corrupt(at, "LZF string with no compressed bytes"));
        }
        if len > clen.saturating_mul(lzf::MAX_RATIO) || usize::try_from(len).is_err() {
            return Err(RdbError::corrupt(
                at,
                format!(
                    "LZF string claims {len} bytes from {clen} compressed bytes, more than LZF can expand to"
                ),
            ));
        }
        Ok((clen, len))
    }

    /// A millisecond time or any 8-byte little-endian signed integer.
    #[inline]
    pub fn i64_le(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub fn binary_double(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    /// The RDB < 8 double: a length byte (253 NaN, 254 +inf, 255 -inf) then
    /// that many ASCII bytes.
    pub fn string_double(&mut self) -> Result<f64> {
        let at = self.offset();
        let n = self.u8()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let mut text = Vec::with_capacity(n as usize);
                self.read_into(n as u64, &mut text)?;
                std::str::from_utf8(&text)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or_else(|| {
                        RdbError::corrupt(
                            at,
                            format!(
                                "score `{}` is not a number",
                                super::error::show_bytes(&text)
                            ),
                        )
                    })
            }
        }
    }

    /// Starts copying every consumed byte into the capture buffer.
    pub fn begin_capture(&mut self) {
        self.capturing = true;
        self.capture_mark = self.pos;
        self.capture.clear();
    }

    /// Stops capturing and hands out what was captured.
    pub fn end_capture(&mut self) -> Vec<u8> {
        self.flush_capture();
        self.capturing = false;
        std::mem::take(&mut self.capture)
    }

    /// The CRC-64 of every byte consumed so far.
    pub fn crc_value(&mut self) -> u64 {
        self.flush_marks();
        self.crc.value()
    }
}

fn unknown_string_encoding(at: u64, e: u8) -> RdbError {
    RdbError::corrupt(at, format!("unknown string encoding {e}"))
}

fn decimal_len(v: i64) -> u64 {
    let mut n = if v < 0 { 2 } else { 1 };
    let mut x = v.unsigned_abs();
    while x >= 10 {
        x /= 10;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out one byte per read, to cross every refill
    /// boundary.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn lengths_strings_and_offsets() {
        let mut data = vec![0x05, 0x41, 0x02, 0x80, 0, 1, 0, 0, 0x81];
        data.extend_from_slice(&7u64.to_be_bytes());
        data.extend_from_slice(&[0x03, b'a', b'b', b'c']); // raw
        data.extend_from_slice(&[0xc0, 0xfe]); // int8 -2
        data.extend_from_slice(&[0xc1, 0x39, 0x30]); // int16 12345
        data.extend_from_slice(&[0xc2, 0x00, 0x00, 0x00, 0x80]); // int32 min
        let compressed = lzf::compress_for_tests(&[b'z'; 50]);
        data.push(0xc3);
        data.push(compressed.len() as u8);
        data.push(50);
        data.extend_from_slice(&compressed);
        for trickle in [false, true] {
            let mut r: Reader<Box<dyn Read>> = if trickle {
                Reader::new(Box::new(Trickle(&data)))
            } else {
                Reader::new(Box::new(&data[..]))
            };
            assert_eq!(r.length().unwrap(), 5);
            assert_eq!(r.length().unwrap(), 0x102);
            assert_eq!(r.length().unwrap(), 0x10000);
            assert_eq!(r.length().unwrap(), 7);
            let mut s = Vec::new();
            r.begin_capture();
            r.string(&mut s).unwrap();
            assert_eq!(s, b"abc");
            assert_eq!(r.end_capture(), [0x03, b'a', b'b', b'c']);
            r.string(&mut s).unwrap();
            assert_eq!(s, b"-2");
            assert_eq!(r.skip_string().unwrap(), 5);
            r.string(&mut s).unwrap();
            assert_eq!(s, b"-2147483648");
            r.string(&mut s).unwrap();
            assert_eq!(s, vec![b'z'; 50]);
            assert_eq!(r.offset(), data.len() as u64);
            assert!(r.at_end().unwrap());
            assert_eq!(r.crc_value(), super::super::crc64::crc64(0, &data));
            let e = r.u8().unwrap_err();
            assert_eq!(e.offset(), data.len() as u64);
        }
    }

    #[test]
    fn absurd_lzf_lengths_are_refused_before_allocating() {
        let data = [
            0xc3, 0x01, 0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        let mut r = Reader::new(&data[..]);
        let e = r.string(&mut Vec::new()).unwrap_err();
        assert!(matches!(e, RdbError::Corrupt { offset: 0, .. }), "{e}");
    }

    #[test]
    fn capture_spans_refills() {
        let data: Vec<u8> = (0..(3 * BUF_SIZE + 17)).map(|i| i as u8).collect();
        let mut r = Reader::new(&data[..]);
        r.skip(5).unwrap();
        r.begin_capture();
        r.skip((2 * BUF_SIZE) as u64).unwrap();
        let mut tmp = Vec::new();
        r.read_into(BUF_SIZE as u64, &mut tmp).unwrap();
        let cap = r.end_capture();
        assert_eq!(cap, &data[5..5 + 3 * BUF_SIZE]);
        assert_eq!(tmp, &data[5 + 2 * BUF_SIZE..5 + 3 * BUF_SIZE]);
        r.skip(12).unwrap();
        assert!(r.at_end().unwrap());
        assert_eq!(r.crc_value(), super::super::crc64::crc64(0, &data));
    }
}
