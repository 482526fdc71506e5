//! The object format through one helper: seal in pieces of a given size,
//! open with a ring, compare.

use std::io::Read;

use super::*;

const BACKUP: &str = "20261121T100000Z-ab12";

fn ring(current: &str, keys: &[(&str, u8)]) -> KeyRing {
    KeyRing::new(
        "vault",
        current,
        keys.iter()
            .map(|(id, b)| (id.to_string(), [*b; KEY_BYTES], format!("env K_{id}")))
            .collect(),
    )
    .unwrap()
}

/// Seals `plain` fed in pieces of `piece` bytes; returns the object and
/// its manifest record.
fn seal(ring: &KeyRing, plain: &[u8], piece: usize) -> (Vec<u8>, Encryption) {
    let (mut s, e) = Sealer::new(ring).unwrap();
    let mut out = Vec::new();
    for p in plain.chunks(piece.max(1)) {
        s.seal(p, &mut out).unwrap();
    }
    s.finish(&mut out).unwrap();
    (out, e)
}

fn open(ring: &KeyRing, object: &[u8], e: &Encryption) -> Result<Vec<u8>, CryptError> {
    let mut o = ring.opener(BACKUP, e, object)?;
    let mut out = Vec::new();
    match o.read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(err) => Err(CryptError::find(&err)
            .cloned()
            .unwrap_or_else(|| panic!("not a CryptError: {err}"))),
    }
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 3) as u8).collect()
}

#[test]
fn round_trips_at_every_frame_boundary_and_piece_size() {
    let r = ring("k1", &[("k1", 1)]);
    let f = FRAME_BYTES as usize;
    for n in [0, 1, f - 1, f, f + 1, 2 * f, 3 * f + 17] {
        for piece in [1 << 16, f, 3 * f, 5000] {
            let plain = data(n);
            let (obj, e) = seal(&r, &plain, piece);
            assert_eq!(open(&r, &obj, &e).unwrap(), plain, "n={n} piece={piece}");
            assert_eq!(plain_len(obj.len() as u64, &e), Some(n as u64));
        }
    }
}

#[test]
fn a_flipped_byte_anywhere_fails_authentication_at_its_frame() {
    let r = ring("k1", &[("k1", 1)]);
    let f = FRAME_BYTES as usize;
    let (obj, e) = seal(&r, &data(2 * f + 100), f);
    let header = obj.len() - (2 * f + 100) - 3 * 16;
    for (at, frame) in [
        (header + 5, 0),
        (header + f + 16 + 3, 1),
        (obj.len() - 1, 2),
    ] {
        let mut bad = obj.clone();
        bad[at] ^= 0x40;
        match open(&r, &bad, &e) {
            Err(CryptError::Authentication { frame: got, .. }) => assert_eq!(got, frame),
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    // The header is authenticated too (the nonce prefix here).
    let mut bad = obj.clone();
    bad[30] ^= 1;
    assert!(matches!(
        open(&r, &bad, &e),
        Err(CryptError::Authentication { frame: 0, .. })
    ));
}

#[test]
fn a_cut_object_fails_wherever_it_is_cut() {
    let r = ring("k1", &[("k1", 1)]);
    let f = FRAME_BYTES as usize;
    let (obj, e) = seal(&r, &data(2 * f), f);
    let header = obj.len() - 2 * f - 3 * 16;
    // At a frame boundary (whole frames kept), inside a frame, inside the
    // header, and the last (empty) frame dropped.
    for keep in [
        header + f + 16,
        header + 2 * (f + 16),
        header + 100,
        obj.len() - 1,
    ] {
        let err = open(&r, &obj[..keep], &e).unwrap_err();
        assert!(
            matches!(err, CryptError::Authentication { .. }),
            "keep {keep}: {err}"
        );
        assert!(err.to_string().contains("altered or cut"), "{err}");
    }
    let err = open(&r, &obj[..20], &e).unwrap_err();
    assert!(err.to_string().contains("cut"), "{err}");
    let mut longer = obj.clone();
    longer.extend_from_slice(b"more");
    assert!(open(&r, &longer, &e).is_err());
}

#[test]
fn wrong_and_missing_keys_are_told_apart_from_damage() {
    let writer = ring("k1", &[("k1", 1)]);
    let (obj, e) = seal(&writer, b"hello", 5);
    let other_bytes = ring("k1", &[("k1", 2)]);
    let err = open(&other_bytes, &obj, &e).unwrap_err();
    assert!(matches!(err, CryptError::WrongKey { .. }), "{err}");
    let without = ring("k2", &[("k2", 1)]);
    let err = open(&without, &obj, &e).unwrap_err();
    assert!(matches!(err, CryptError::MissingKey { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "backup {BACKUP} was encrypted with key id `k1`, which storage 'vault''s key ring does not have; add it to `encryption.keys` of [storage.vault]"
        )
    );
}

#[test]
fn a_rotated_ring_reads_old_objects_and_writes_with_the_new_key() {
    let old = ring("k1", &[("k1", 1)]);
    let (obj, e) = seal(&old, b"old", 3);
    let rotated = ring("k2", &[("k1", 1), ("k2", 2)]);
    assert_eq!(open(&rotated, &obj, &e).unwrap(), b"old");
    let (new_obj, new_e) = seal(&rotated, b"new", 3);
    assert_eq!(new_e.key_id, "k2");
    assert_eq!(open(&rotated, &new_obj, &new_e).unwrap(), b"new");
    assert!(matches!(
        open(&old, &new_obj, &new_e),
        Err(CryptError::MissingKey { .. })
    ));
}

#[test]
fn a_manifest_that_disagrees_with_the_header_is_refused() {
    let r = ring("k1", &[("k1", 1), ("k2", 1)]);
    let (obj, e) = seal(&r, b"x", 1);
    let moved = Encryption {
        key_id: "k2".into(),
        ..e.clone()
    };
    assert!(matches!(
        open(&r, &obj, &moved),
        Err(CryptError::Format { .. })
    ));
    assert!(matches!(
        open(&r, b"REDIS0011 plain", &e),
        Err(CryptError::Format { .. })
    ));
}

#[test]
fn keys_read_as_hex_base64_or_raw_and_nothing_else() {
    let hex = "00".repeat(31) + "ff";
    assert_eq!(parse_key_text(&hex).unwrap()[31], 0xff);
    assert_eq!(parse_key_text(&format!("  {hex}\n")).unwrap()[31], 0xff);
    let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    assert_eq!(parse_key_text(&b64).unwrap(), [7u8; 32]);
    assert_eq!(parse_key_file(&[9u8; 32]).unwrap(), [9u8; 32]);
    assert_eq!(
        parse_key_file(format!("{hex}\n").as_bytes()).unwrap()[31],
        0xff
    );
    for bad in ["abcd", &"00".repeat(16), "not a key at all!"] {
        let e = parse_key_text(bad).unwrap_err();
        assert!(e.contains("32 bytes") && e.contains("openssl rand"), "{e}");
    }
    assert!(parse_key_file(&[0xffu8; 31]).is_err());
    let e = KeyRing::new("s", "k9", vec![("k1".into(), [0; 32], "x".into())]).unwrap_err();
    assert!(e.contains("k9") && e.contains("encryption.keys"), "{e}");
    assert!(KeyRing::new("s", "a b", vec![("a b".into(), [0; 32], "x".into())]).is_err());
    let dbg = format!("{:?}", ring("k1", &[("k1", 0xab)]));
    assert!(!dbg.contains("171") && !dbg.contains("ab, ab"), "{dbg}");
}
