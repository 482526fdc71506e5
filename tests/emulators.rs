//! The COS / OSS emulator (tests/emulators/objstore.py), which checks every
//! signature with the vendors' official SDK signing code, is itself proven
//! by tests/emulators/selftest.py: the vendors' SDK clients drive it (put,
//! get, ranges, listing, multipart, the listing of unfinished uploads,
//! presigned URLs, wrong keys) and the vendors' worked signature examples
//! go through its verifier. Needs
//! `scripts/test-servers.sh emulators` (or `REDBACK_EMULATOR_PYTHON`).

mod common;

use std::process::Command;

use common::emulator::{self, Emulator, Vendor};
use common::http_get;

#[test]
fn emulator_agrees_with_the_vendor_sdks() {
    // The harness first: each vendor starts, refuses an unsigned request in
    // its own error format, and logs why.
    for vendor in [Vendor::Cos, Vendor::Oss] {
        let e = Emulator::start(vendor);
        let (status, body) = http_get(&format!("{}/probe", e.endpoint()));
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, 403, "{vendor:?}: {body}");
        assert!(
            body.contains("<Code>AccessDenied</Code>"),
            "{vendor:?}: {body}"
        );
        assert!(
            e.log().contains("GET /probe 403 AccessDenied"),
            "{vendor:?}: {}",
            e.log()
        );
    }

    let out = Command::new(emulator::python())
        .arg(emulator::script("selftest.py"))
        .output()
        .expect("run tests/emulators/selftest.py");
    assert!(
        out.status.success(),
        "selftest.py failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
