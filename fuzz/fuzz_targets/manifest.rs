//! The manifest parser on arbitrary bytes, as a storage may hand back
//! `manifest.json` (damaged, truncated, written by a newer redback or by
//! someone else). A manifest that parses must write and read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use redback::backup::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    if let Ok(m) = Manifest::from_json(data) {
        let again = Manifest::from_json(&m.to_json()).expect("a written manifest reads back");
        assert_eq!(again, m);
    }
});
