//! The config parser on arbitrary text: TOML syntax, then validation into a
//! typed `Config`. Relative paths resolve under a temp folder that holds
//! one secret file (`secret`); the environment has a secret for each name
//! ending in PASSWORD, SECRET or KEY, and `EMPTY`. Errors
//! must name things, never panic.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use redback::config::Config;

static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join("redback-fuzz-config");
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("secret"), "s3cret\n").expect("secret file");
    dir
});

fn env(name: &str) -> Option<String> {
    // As the example configs name them: `*_PASSWORD`, `*_SECRET`, `*_KEY`.
    if name == "EMPTY" {
        Some(String::new())
    } else if ["PASSWORD", "SECRET", "KEY"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        Some("s3cret".into())
    } else {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let _budget = redback_fuzz::Budget::start(data.len());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, &DIR.join("redback.toml"), &env) {
        // Secrets from the env or a file never show in Debug (logs). Text
        // that writes the value itself in some plain key may show it.
        let shown = format!("{config:?}");
        assert!(
            text.contains("s3cret") || !shown.contains("s3cret"),
            "a secret in Config's Debug: {shown}"
        );
    }
});
