//! The encrypted object format, written by `Sealer` and read by `Opener`.
//!
//! ```text
//! header   "RBKENC" | version 1 | cipher 1 | frame bytes (u32 BE)
//!          | key check (8) | nonce prefix (19) | key id length (u8) | key id
//! frames   XChaCha20-Poly1305 frames of `frame bytes` plaintext + 16-byte tag,
//!          in the STREAM construction (`aead-stream`'s StreamBE32: the
//!          nonce is the prefix, a 32-bit big-endian frame counter and a
//!          last-frame flag); the header is the associated data of every
//!          frame. The last frame holds 0 to `frame bytes - 1` bytes, so
//!          every object ends with one: a cut anywhere fails authentication.
//! ```
//!
//! The key check is HMAC-SHA256(key, "redback key check")[..8]: it tells a
//! wrong key from an altered object without decrypting anything. The nonce
//! prefix is 19 random bytes per object, so a key may encrypt any number of
//! objects.

use std::io::{self, Read};

use aead_stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Buffer, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CIPHER, CryptError, Encryption, FRAME_BYTES, KEY_BYTES, KeyRing};

const MAGIC: &[u8; 6] = b"RBKENC";
const VERSION: u8 = 1;
/// Cipher byte 1: XChaCha20-Poly1305, STREAM BE32.
const CIPHER_BYTE: u8 = 1;
const TAG: usize = 16;
const NONCE_PREFIX: usize = 19;
const KEY_CHECK: usize = 8;
/// The header without the key id.
const FIXED_HEADER: usize = 6 + 1 + 1 + 4 + KEY_CHECK + NONCE_PREFIX + 1;
/// Largest frame a reader accepts (a header could claim anything).
const MAX_FRAME_BYTES: u32 = 64 << 20;

fn key_check(key: &[u8; KEY_BYTES]) -> [u8; KEY_CHECK] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"redback key check");
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; KEY_CHECK];
    out.copy_from_slice(&full[..KEY_CHECK]);
    out
}

fn cipher(key: &[u8; KEY_BYTES]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// The bytes of `out` from `start` on, as the in-place AEAD buffer: a frame
/// is encrypted where it lies in the output, without another copy.
struct Tail<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.out[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.out[self.start..]
    }
}

impl Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.out.extend_from_slice(other);
        Ok(())
    }

    fn truncate(&mut self, len: usize) {
        self.out.truncate(self.start + len);
    }
}

/// Encrypts one object as it streams: `seal` the plaintext in pieces of
/// any size, then `finish`. Holds at most one frame of plaintext.
pub struct Sealer {
    stream: EncryptorBE32<XChaCha20Poly1305>,
    header: Vec<u8>,
    header_sent: bool,
    pending: Vec<u8>,
    frame: usize,
}

impl Sealer {
    /// A sealer with the ring's current key and a fresh random nonce
    /// prefix; and what the manifest records of it.
    pub fn new(ring: &KeyRing) -> Result<(Sealer, Encryption), CryptError> {
        let id = ring.current_id();
        let key = ring.key(id).expect("a ring always holds its current key");
        let mut prefix = [0u8; NONCE_PREFIX];
        getrandom::getrandom(&mut prefix).map_err(|e| CryptError::Format {
            backup: String::new(),
            message: format!("the system's random source failed: {e}"),
        })?;
        let mut header = Vec::with_capacity(FIXED_HEADER + id.len());
        header.extend_from_slice(MAGIC);
        header.push(VERSION);
        header.push(CIPHER_BYTE);
        header.extend_from_slice(&FRAME_BYTES.to_be_bytes());
        header.extend_from_slice(&key_check(key));
        header.extend_from_slice(&prefix);
        header.push(id.len() as u8);
        header.extend_from_slice(id.as_bytes());
        let stream = EncryptorBE32::from_aead(cipher(key), &prefix.into());
        Ok((
            Sealer {
                stream,
                header,
                header_sent: false,
                pending: Vec::with_capacity(FRAME_BYTES as usize),
                frame: FRAME_BYTES as usize,
            },
            Encryption {
                cipher: CIPHER.into(),
                key_id: id.to_string(),
                frame_bytes: FRAME_BYTES,
            },
        ))
    }

    fn send_header(&mut self, out: &mut Vec<u8>) {
        if !self.header_sent {
            out.extend_from_slice(&self.header);
            self.header_sent = true;
        }
    }

    fn seal_frame(&mut self, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        out.reserve(plain.len() + TAG);
        out.extend_from_slice(plain);
        self.stream
            .encrypt_next_in_place(&self.header, &mut Tail { out, start })
            .map_err(|_| io::Error::other("the object passed 2^32 frames, the cipher's limit"))
    }

    /// Appends to `out` the ciphertext of every frame `data` completes (and
    /// the header before the first).
    pub fn seal(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.send_header(out);
        if !self.pending.is_empty() {
            let n = data.len().min(self.frame - self.pending.len());
            self.pending.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.pending.len() < self.frame {
                return Ok(());
            }
            let pending = std::mem::take(&mut self.pending);
            self.seal_frame(&pending, out)?;
            self.pending = pending;
            self.pending.clear();
        }
        // A frame is sealed once a byte past it has arrived or the object
        // ends: the last frame must stay shorter than a full one.
        while data.len() > self.frame {
            let (frame, rest) = data.split_at(self.frame);
            self.seal_frame(frame, out)?;
            data = rest;
        }
        if data.len() == self.frame {
            self.seal_frame(data, out)?;
            data = &[];
        }
        self.pending.extend_from_slice(data);
        Ok(())
    }

    /// Appends the last frame (the plaintext left, 0 to frame - 1 bytes).
    pub fn finish(mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.send_header(out);
        let start = out.len();
        out.extend_from_slice(&self.pending);
        self.stream
            .encrypt_last_in_place(&self.header, &mut Tail { out, start })
            .map_err(|_| io::Error::other("sealing the last frame failed"))
    }
}

/// The plaintext length of an encrypted object of `stored_bytes` whose
/// manifest records `e`; `None` if the length cannot be one.
pub fn plain_len(stored_bytes: u64, e: &Encryption) -> Option<u64> {
    let header = (FIXED_HEADER + e.key_id.len()) as u64;
    let frame = e.frame_bytes as u64 + TAG as u64;
    let body = stored_bytes.checked_sub(header)?;
    let full = body / frame;
    let last = (body % frame).checked_sub(TAG as u64)?;
    Some(full * e.frame_bytes as u64 + last)
}

enum State {
    /// Before the header: the key's cipher and check.
    Start {
        aead: Box<XChaCha20Poly1305>,
        check: [u8; KEY_CHECK],
    },
    Frames {
        stream: Box<DecryptorBE32<XChaCha20Poly1305>>,
        header: Vec<u8>,
    },
    Done,
    Failed(CryptError),
}

/// Decrypts an encrypted object as it is read; a `Read` for the blocking
/// threads of the restore paths. Bytes of a frame come out only after the
/// frame authenticated; any failure is a `CryptError` inside the
/// `io::Error` (see `CryptError::find`), and every later read fails too.
pub struct Opener<R> {
    inner: R,
    state: State,
    buf: Vec<u8>,
    pos: usize,
    frame_no: u64,
    backup: String,
    storage: String,
    expected: Encryption,
}

impl KeyRing {
    /// An `Opener` for backup `backup`, whose manifest records `e`, over
    /// the stored bytes `inner`.
    pub fn opener<R: Read>(
        &self,
        backup: &str,
        e: &Encryption,
        inner: R,
    ) -> Result<Opener<R>, CryptError> {
        let format = |message: String| CryptError::Format {
            backup: backup.into(),
            message,
        };
        if e.cipher != CIPHER {
            return Err(format(format!(
                "its cipher is `{}`; this redback reads `{CIPHER}`; upgrade redback",
                e.cipher
            )));
        }
        if e.frame_bytes == 0 || e.frame_bytes > MAX_FRAME_BYTES {
            return Err(format(format!(
                "its manifest gives {} bytes per frame, out of range",
                e.frame_bytes
            )));
        }
        let key = self.key(&e.key_id).ok_or_else(|| CryptError::MissingKey {
            backup: backup.into(),
            key_id: e.key_id.clone(),
            storage: self.storage.clone(),
        })?;
        Ok(Opener {
            inner,
            state: State::Start {
                aead: Box::new(cipher(key)),
                check: key_check(key),
            },
            buf: Vec::new(),
            pos: 0,
            frame_no: 0,
            backup: backup.into(),
            storage: self.storage.clone(),
            expected: e.clone(),
        })
    }
}

/// Reads until `buf` holds `want` bytes or the input ends.
fn fill<R: Read>(inner: &mut R, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    let mut filled = buf.len();
    buf.resize(want, 0);
    while filled < want {
        match inner.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(filled);
                return Err(e);
            }
        }
    }
    buf.truncate(filled);
    Ok(())
}

impl<R: Read> Opener<R> {
    fn format(&self, message: &str) -> CryptError {
        CryptError::Format {
            backup: self.backup.clone(),
            message: message.into(),
        }
    }

    fn read_header(&mut self) -> io::Result<Result<State, CryptError>> {
        let mut h = Vec::with_capacity(FIXED_HEADER + 64);
        fill(&mut self.inner, &mut h, FIXED_HEADER)?;
        if h.len() < MAGIC.len() || &h[..MAGIC.len()] != MAGIC {
            return Ok(Err(self.format(
                "the stored object has no redback encryption header, but its manifest says it is encrypted: the object was replaced or altered",
            )));
        }
        if h.len() < FIXED_HEADER {
            return Ok(Err(self.format(
                "the stored object ends inside its encryption header: it was cut",
            )));
        }
        let id_len = h[FIXED_HEADER - 1] as usize;
        fill(&mut self.inner, &mut h, FIXED_HEADER + id_len)?;
        if h.len() < FIXED_HEADER + id_len {
            return Ok(Err(self.format(
                "the stored object ends inside its encryption header: it was cut",
            )));
        }
        if h[6] != VERSION || h[7] != CIPHER_BYTE {
            return Ok(Err(self.format(&format!(
                "its encryption header has format version {} and cipher {}; this redback reads version {VERSION}, cipher {CIPHER_BYTE}",
                h[6], h[7]
            ))));
        }
        let frame = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let key_id = &h[FIXED_HEADER..];
        if frame != self.expected.frame_bytes || key_id != self.expected.key_id.as_bytes() {
            return Ok(Err(self.format(
                "its encryption header does not match its manifest (frame size or key id): the object or the manifest was altered",
            )));
        }
        let State::Start { aead, check } = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("the header is read once, from the start state")
        };
        if h[12..12 + KEY_CHECK] != check {
            return Ok(Err(CryptError::WrongKey {
                backup: self.backup.clone(),
                key_id: self.expected.key_id.clone(),
                storage: self.storage.clone(),
            }));
        }
        let prefix: [u8; NONCE_PREFIX] = h[12 + KEY_CHECK..12 + KEY_CHECK + NONCE_PREFIX]
            .try_into()
            .expect("slice of the prefix length");
        let stream = DecryptorBE32::from_aead(*aead, &prefix.into());
        self.buf = Vec::with_capacity(frame as usize + TAG);
        Ok(Ok(State::Frames {
            stream: Box::new(stream),
            header: h,
        }))
    }

    /// Reads and authenticates the next frame into `buf`.
    fn next_frame(&mut self) -> io::Result<Result<(), CryptError>> {
        if matches!(self.state, State::Start { .. }) {
            match self.read_header()? {
                Ok(s) => self.state = s,
                Err(e) => return Ok(Err(e)),
            }
        }
        let full = self.expected.frame_bytes as usize + TAG;
        self.buf.clear();
        fill(&mut self.inner, &mut self.buf, full)?;
        self.pos = 0;
        let failed = CryptError::Authentication {
            backup: self.backup.clone(),
            frame: self.frame_no,
        };
        let State::Frames { stream, header } = &mut self.state else {
            unreachable!("frames are read after the header")
        };
        let ok = if self.buf.len() == full {
            stream.decrypt_next_in_place(header, &mut self.buf).is_ok()
        } else {
            let header = std::mem::take(header);
            let State::Frames { stream, .. } = std::mem::replace(&mut self.state, State::Done)
            else {
                unreachable!()
            };
            stream.decrypt_last_in_place(&header, &mut self.buf).is_ok()
        };
        self.frame_no += 1;
        if ok { Ok(Ok(())) } else { Ok(Err(failed)) }
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match &self.state {
                State::Done => return Ok(0),
                State::Failed(e) => return Err(io::Error::other(e.clone())),
                _ => {}
            }
            if let Err(e) = self.next_frame()? {
                self.buf.clear();
                self.state = State::Failed(e.clone());
                return Err(io::Error::other(e));
            }
        }
    }
}
