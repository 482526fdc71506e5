//! The compact encodings Redis stores inside string blobs: listpack (7.0+),
//! ziplist (up to 6.2), intset, zipmap (up to 2.4). Each decoder takes the
//! whole blob as a slice, checks every length against it (header totals,
//! entry bounds, back-lengths, terminator, element count) and returns the
//! elements.
//!
//! Owns those layouts only; it must not read from the file (the caller
//! hands it complete blobs) and must not panic on any input.

/// One element of a listpack or ziplist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// The element as Redis would return it: integers as decimal text.
    pub fn to_bytes(self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => i.to_string().into_bytes(),
        }
    }

    /// The element as an integer, if it is one (or is decimal text).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Elem::Int(i) => Some(i),
            Elem::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        }
    }

    /// The element as a score: integers, or text such as "1.5" or "inf".
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Elem::Int(i) => Some(i as f64),
            Elem::Str(s) => std::str::from_utf8(s).ok()?.trim().parse().ok(),
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn le_u32(b: &[u8], at: usize) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("field at blob byte {at} cut short"))
}

fn le_u16(b: &[u8], at: usize) -> Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("field at blob byte {at} cut short"))
}

fn slice(b: &[u8], from: usize, len: usize) -> Result<&[u8]> {
    from.checked_add(len)
        .and_then(|end| b.get(from..end))
        .ok_or_else(|| format!("entry at blob byte {from} reaches past the end"))
}

/// Signed value of the low `bits` bits of `u`.
fn sign_extend(u: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u << shift) as i64) >> shift
}

/// Bytes the listpack back-length of an entry of `l` bytes takes.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn decode_backlen(b: &[u8]) -> u64 {
    // Stored most significant group first; the first byte has no high bit.
    let mut v = 0u64;
    for &x in b {
        v = (v << 7) | (x & 127) as u64;
    }
    v
}

/// Decodes a listpack: 4-byte total size, 2-byte count, entries each
/// followed by its back-length, 0xFF.
pub(crate) fn listpack(b: &[u8]) -> Result<Vec<Elem<'_>>> {
    if b.len() < 7 {
        return Err(format!(
            "listpack of {} bytes is shorter than its header",
            b.len()
        ));
    }
    let total = le_u32(b, 0)? as usize;
    if total != b.len() {
        return Err(format!(
            "listpack header says {total} bytes, blob has {}",
            b.len()
        ));
    }
    let count = le_u16(b, 4)?;
    let mut out = Vec::with_capacity((count as usize).min(b.len() / 2));
    let mut p = 6usize;
    loop {
        let &first = b.get(p).ok_or("listpack has no end marker")?;
        if first == 0xff {
            if p + 1 != b.len() {
                return Err(format!(
                    "listpack end marker at byte {p} is not the last byte"
                ));
            }
            break;
        }
        let (elem, len) = match first {
            0x00..=0x7f => (Elem::Int(first as i64), 1),
            0x80..=0xbf => {
                let n = (first & 0x3f) as usize;
                (Elem::Str(slice(b, p + 1, n)?), 1 + n)
            }
            0xc0..=0xdf => {
                let lo = *b.get(p + 1).ok_or("listpack entry cut short")?;
                let u = (((first & 0x1f) as u64) << 8) | lo as u64;
                (Elem::Int(sign_extend(u, 13)), 2)
            }
            0xe0..=0xef => {
                let lo = *b.get(p + 1).ok_or("listpack entry cut short")?;
                let n = (((first & 0x0f) as usize) << 8) | lo as usize;
                (Elem::Str(slice(b, p + 2, n)?), 2 + n)
            }
            0xf0 => {
                let n = le_u32(b, p + 1)? as usize;
                (Elem::Str(slice(b, p + 5, n)?), 5 + n)
            }
            0xf1..=0xf4 => {
                let bytes = [2usize, 3, 4, 8][(first - 0xf1) as usize];
                let raw = slice(b, p + 1, bytes)?;
                let mut u = 0u64;
                for (i, &x) in raw.iter().enumerate() {
                    u |= (x as u64) << (8 * i);
                }
                (Elem::Int(sign_extend(u, 8 * bytes as u32)), 1 + bytes)
            }
            _ => {
                return Err(format!(
                    "listpack entry at byte {p} has unknown encoding 0x{first:02x}"
                ));
            }
        };
        let bl = backlen_size(len);
        let back = slice(b, p + len, bl)?;
        if decode_backlen(back) != len as u64 || back[0] & 0x80 != 0 {
            return Err(format!(
                "listpack entry at byte {p} has a wrong back-length"
            ));
        }
        out.push(elem);
        p += len + bl;
    }
    if count != u16::MAX && count as usize != out.len() {
        return Err(format!(
            "listpack header counts {count} entries, found {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Decodes a ziplist: total size, tail offset, count, entries each with the
/// previous entry's length, 0xFF.
pub(crate) fn ziplist(b: &[u8]) -> Result<Vec<Elem<'_>>> {
    if b.len() < 11 {
        return Err(format!(
            "ziplist of {} bytes is shorter than its header",
            b.len()
        ));
    }
    let total = le_u32(b, 0)? as usize;
    if total != b.len() {
        return Err(format!(
            "ziplist header says {total} bytes, blob has {}",
            b.len()
        ));
    }
    let tail = le_u32(b, 4)? as usize;
    let count = le_u16(b, 8)?;
    let mut out = Vec::with_capacity((count as usize).min(b.len() / 2));
    let mut p = 10usize;
    let mut prev_len = 0usize;
    let mut last_start = 10usize;
    loop {
        let &first = b.get(p).ok_or("ziplist has no end marker")?;
        if first == 0xff {
            if p + 1 != b.len() {
                return Err(format!(
                    "ziplist end marker at byte {p} is not the last byte"
                ));
            }
            break;
        }
        let start = p;
        let (stored_prev, prev_size) = if first < 254 {
            (first as usize, 1)
        } else if first == 254 {
            (le_u32(b, p + 1)? as usize, 5)
        } else {
            unreachable!("0xff handled above")
        };
        if stored_prev != prev_len {
            return Err(format!(
                "ziplist entry at byte {p} has a wrong previous-entry length"
            ));
        }
        p += prev_size;
        let enc = *b.get(p).ok_or("ziplist entry cut short")?;
        let (elem, len) = match enc >> 6 {
            0 => {
                let n = (enc & 0x3f) as usize;
                (Elem::Str(slice(b, p + 1, n)?), 1 + n)
            }
            1 => {
                let lo = *b.get(p + 1).ok_or("ziplist entry cut short")?;
                let n = (((enc & 0x3f) as usize) << 8) | lo as usize;
                (Elem::Str(slice(b, p + 2, n)?), 2 + n)
            }
            2 => {
                let raw = slice(b, p + 1, 4)?;
                let n = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                (Elem::Str(slice(b, p + 5, n)?), 5 + n)
            }
            _ => {
                let int_bytes = match enc {
                    0xc0 => 2,
                    0xd0 => 4,
                    0xe0 => 8,
                    0xf0 => 3,
                    0xfe => 1,
                    0xf1..=0xfd => 0,
                    _ => {
                        return Err(format!(
                            "ziplist entry at byte {p} has unknown encoding 0x{enc:02x}"
                        ));
                    }
                };
                if int_bytes == 0 {
                    (Elem::Int((enc & 0x0f) as i64 - 1), 1)
                } else {
                    let raw = slice(b, p + 1, int_bytes)?;
                    let mut u = 0u64;
                    for (i, &x) in raw.iter().enumerate() {
                        u |= (x as u64) << (8 * i);
                    }
                    (
                        Elem::Int(sign_extend(u, 8 * int_bytes as u32)),
                        1 + int_bytes,
                    )
                }
            }
        };
        p += len;
        prev_len = p - start;
        last_start = start;
        out.push(elem);
    }
    if !out.is_empty() && tail != last_start {
        return Err(format!(
            "ziplist tail offset {tail} does not point at the last entry"
        ));
    }
    if count != u16::MAX && count as usize != out.len() {
        return Err(format!(
            "ziplist header counts {count} entries, found {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Decodes an intset: 4-byte element width (2, 4 or 8), 4-byte count, then
/// sorted little-endian integers.
pub(crate) fn intset(b: &[u8]) -> Result<Vec<i64>> {
    let width = le_u32(b, 0)? as usize;
    let count = le_u32(b, 4)? as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset element width {width} (expected 2, 4 or 8)"));
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(b.len()) {
        return Err(format!(
            "intset of {count} elements of {width} bytes does not fill its {} bytes",
            b.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for chunk in b[8..].chunks_exact(width) {
        let mut u = 0u64;
        for (i, &x) in chunk.iter().enumerate() {
            u |= (x as u64) << (8 * i);
        }
        let v = sign_extend(u, 8 * width as u32);
        if let Some(&last) = out.last()
            && v <= last
        {
            return Err("intset elements are not sorted and unique".into());
        }
        out.push(v);
    }
    Ok(out)
}

/// Decodes a zipmap (Redis ≤ 2.4 hashes): count byte, then for each pair a
/// length, the field, a length, a free-space byte, the value and its free
/// space, then 0xFF.
pub(crate) fn zipmap(b: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    fn zlen(b: &[u8], p: usize) -> Result<(usize, usize)> {
        match b.get(p) {
            Some(&n) if n < 254 => Ok((n as usize, 1)),
            Some(254) => Ok((le_u32(b, p + 1)? as usize, 5)),
            _ => Err(format!("zipmap length at byte {p} missing or invalid")),
        }
    }
    let &header_count = b.first().ok_or("empty zipmap")?;
    let mut out = Vec::new();
    let mut p = 1usize;
    loop {
        match b.get(p) {
            None => return Err("zipmap has no end marker".into()),
            Some(255) => {
                if p + 1 != b.len() {
                    return Err(format!(
                        "zipmap end marker at byte {p} is not the last byte"
                    ));
                }
                break;
            }
            Some(_) => {}
        }
        let (flen, s) = zlen(b, p)?;
        let field = slice(b, p + s, flen)?;
        p += s + flen;
        let (vlen, s) = zlen(b, p)?;
        let free = *b.get(p + s).ok_or("zipmap entry cut short")? as usize;
        let value = slice(b, p + s + 1, vlen)?;
        p += s + 1 + vlen;
        slice(b, p, free)?;
        p += free;
        out.push((field, value));
    }
    if header_count < 254 && header_count as usize != out.len() {
        return Err(format!(
            "zipmap header counts {header_count} pairs, found {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Test-only builders of the same layouts, to hand-make old-format values.
#[cfg(test)]
pub(crate) mod build {
    /// A ziplist of strings and small integers, as Redis ≤ 6.2 wrote them.
    pub fn ziplist(items: &[&[u8]]) -> Vec<u8> {
        let mut entries = Vec::new();
        let mut prev = 0usize;
        let mut last = 10usize;
        for it in items {
            let start = entries.len();
            last = 10 + start;
            if prev < 254 {
                entries.push(prev as u8);
            } else {
                entries.push(254);
                entries.extend_from_slice(&(prev as u32).to_le_bytes());
            }
            match std::str::from_utf8(it)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(v) if (0..=12).contains(&v) && it.len() < 3 => entries.push(0xf1 + v as u8),
                Some(v) if i16::try_from(v).is_ok() && v.to_string().as_bytes() == *it => {
                    entries.push(0xc0);
                    entries.extend_from_slice(&(v as i16).to_le_bytes());
                }
                _ if it.len() < 64 => {
                    entries.push(it.len() as u8);
                    entries.extend_from_slice(it);
                }
                _ => {
                    entries.push(0x80);
                    entries.extend_from_slice(&(it.len() as u32).to_be_bytes());
                    entries.extend_from_slice(it);
                }
            }
            prev = entries.len() - start;
        }
        let mut z = Vec::new();
        z.extend_from_slice(&((entries.len() + 11) as u32).to_le_bytes());
        z.extend_from_slice(&(last as u32).to_le_bytes());
        z.extend_from_slice(&(items.len() as u16).to_le_bytes());
        z.extend_from_slice(&entries);
        z.push(0xff);
        z
    }

    /// A listpack of strings (decimal strings become integers, as Redis
    /// stores them).
    pub fn listpack(items: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for it in items {
            let start = body.len();
            match std::str::from_utf8(it)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
            {
                Some(v) if v.to_string().as_bytes() == *it && (0..128).contains(&v) => {
                    body.push(v as u8)
                }
                Some(v) if v.to_string().as_bytes() == *it => {
                    body.push(0xf4);
                    body.extend_from_slice(&v.to_le_bytes());
                }
                _ if it.len() < 64 => {
                    body.push(0x80 | it.len() as u8);
                    body.extend_from_slice(it);
                }
                _ => {
                    body.push(0xf0);
                    body.extend_from_slice(&(it.len() as u32).to_le_bytes());
                    body.extend_from_slice(it);
                }
            }
            let l = body.len() - start;
            let mut bl = Vec::new();
            let mut x = l;
            loop {
                bl.push((x & 127) as u8);
                x >>= 7;
                if x == 0 {
                    break;
                }
            }
            bl.reverse();
            let n = bl.len();
            for b in bl.iter_mut().take(n).skip(1) {
                *b |= 128;
            }
            body.extend_from_slice(&bl);
        }
        let mut lp = Vec::new();
        lp.extend_from_slice(&((body.len() + 7) as u32).to_le_bytes());
        lp.extend_from_slice(&(items.len() as u16).to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        lp
    }

    pub fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut z = vec![pairs.len() as u8];
        for (f, v) in pairs {
            z.push(f.len() as u8);
            z.extend_from_slice(f);
            z.push(v.len() as u8);
            z.push(1); // one byte of free space
            z.extend_from_slice(v);
            z.push(0);
        }
        z.push(0xff);
        z
    }

    pub fn intset(width: usize, values: &[i64]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&(width as u32).to_le_bytes());
        s.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for v in values {
            s.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject_every_corruption_without_panic() {
        let long = vec![b'q'; 300];
        let items: Vec<&[u8]> = vec![b"a", b"12", b"-5", b"4000000000", b"", &long, b"xyz"];
        let lp = build::listpack(&items);
        let got: Vec<Vec<u8>> = listpack(&lp)
            .unwrap()
            .into_iter()
            .map(Elem::to_bytes)
            .collect();
        assert_eq!(got, items);
        let zl = build::ziplist(&items);
        let got: Vec<Vec<u8>> = ziplist(&zl)
            .unwrap()
            .into_iter()
            .map(Elem::to_bytes)
            .collect();
        assert_eq!(got, items);
        let zm = build::zipmap(&[(b"f", b"v"), (b"name", b"")]);
        assert_eq!(
            zipmap(&zm).unwrap(),
            vec![(&b"f"[..], &b"v"[..]), (&b"name"[..], &b""[..])]
        );
        for width in [2, 4, 8] {
            let is = build::intset(width, &[-3, 0, 7, 300]);
            assert_eq!(intset(&is).unwrap(), vec![-3, 0, 7, 300]);
        }
        for blob in [lp, zl, zm, build::intset(8, &[1, 2, 3])] {
            for cut in 0..blob.len() {
                let b = &blob[..cut];
                let _ = (listpack(b), ziplist(b), zipmap(b), intset(b));
            }
            for pos in 0..blob.len() {
                for v in [
                    0u8, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xe0, 0xf0, 0xf4, 0xfe, 0xff,
                ] {
                    let mut m = blob.clone();
                    m[pos] = v;
                    let _ = (listpack(&m), ziplist(&m), zipmap(&m), intset(&m));
                }
            }
        }
    }

    #[test]
    fn listpack_integer_encodings() {
        // 13-bit -1, 16-bit -300, 24-bit 100000, 32-bit -2^31.
        let entries: [&[u8]; 4] = [
            &[0xdf, 0xff],
            &[0xf1, 0xd4, 0xfe],
            &[0xf2, 0xa0, 0x86, 0x01],
            &[0xf3, 0, 0, 0, 0x80],
        ];
        let mut body = Vec::new();
        for e in entries {
            body.extend_from_slice(e);
            body.push(e.len() as u8);
        }
        let mut lp = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        lp.extend_from_slice(&4u16.to_le_bytes());
        lp.extend_from_slice(&body);
        lp.push(0xff);
        let got: Vec<i64> = listpack(&lp)
            .unwrap()
            .into_iter()
            .map(|e| e.as_i64().unwrap())
            .collect();
        assert_eq!(got, vec![-1, -300, 100000, i32::MIN as i64]);
    }
}
