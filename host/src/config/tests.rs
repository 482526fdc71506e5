use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/redback/test.toml"), &|name| {
        (name == "S3_SECRET").then(|| "s3cr3t".to_string())
    })
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn defaults_and_relative_paths_resolve_against_the_config_folder() {
    let c = parse("[storage.local]\nplugin = \"storage-local\"\nroot = \"backups\"\n").unwrap();
    assert_eq!(c.daemon.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.daemon.plugin_dir, Path::new("/etc/redback/plugins"));
    assert_eq!(c.daemon.state_dir, Path::new("/etc/redback/var"));
    let s = &c.storages["local"];
    assert_eq!(s.root.as_deref(), Some(Path::new("/etc/redback/backups")));
    assert!(s.settings.is_empty(), "host keys are not plugin settings");
    assert_eq!(c.daemon.data_priority, crate::data_runtime::Priority::Idle);
    let c = parse("[daemon]\ndata_priority = \"low\"\n").unwrap();
    assert_eq!(c.daemon.data_priority, crate::data_runtime::Priority::Low);
}

#[test]
fn secrets_come_from_env_and_are_masked() {
    let c = parse(
        "[storage.s3]\nplugin = \"storage-s3\"\nendpoint = \"http://127.0.0.1:9000\"\nsecret_key_env = \"S3_SECRET\"\npart_size_mib = 8\n",
    )
    .unwrap();
    let s = &c.storages["s3"];
    assert_eq!(s.settings["secret_key"].expose(), "s3cr3t");
    assert_eq!(s.settings["secret_key"].to_string(), "***");
    assert!(!format!("{s:?}").contains("s3cr3t"));
    assert_eq!(s.settings["part_size_mib"].expose(), "8");
    assert_eq!(s.allow_hosts, vec!["http://127.0.0.1:9000".to_string()]);
}

#[test]
fn the_public_half_of_a_key_pair_is_not_a_secret() {
    let c = parse(
        "[storage.cos]\nplugin = \"storage-cos\"\nsecret_id = \"AKIDexample\"\nsecret_key_env = \"S3_SECRET\"\n",
    )
    .unwrap();
    assert_eq!(
        c.storages["cos"].settings["secret_id"].expose(),
        "AKIDexample"
    );
    let e = error("[storage.cos]\nplugin = \"storage-cos\"\nsecret_key = \"plain\"\n");
    assert!(e.contains("secret_key_env"), "{e}");
}

#[test]
fn an_endpoint_grants_its_bucket_subdomain() {
    let c = parse(
        "[storage.cos]\nplugin = \"storage-cos\"\nbucket = \"backups-1250000000\"\n\
         endpoint = \"https://cos.ap-guangzhou.myqcloud.com\"\n\
         public_endpoint = \"http://10.0.0.9:8080\"\nsecret_key_env = \"S3_SECRET\"\n",
    )
    .unwrap();
    let s = &c.storages["cos"];
    assert_eq!(
        s.allow_hosts,
        vec![
            "https://backups-1250000000.cos.ap-guangzhou.myqcloud.com".to_string(),
            "https://cos.ap-guangzhou.myqcloud.com".to_string(),
            "http://10.0.0.9:8080".to_string(),
        ]
    );
}

#[test]
fn errors_name_the_file_the_key_and_the_fix() {
    let e = error("[storage.s3]\nplugin = \"storage-s3\"\nsecret_key = \"plain\"\n");
    assert!(
        e.contains("/etc/redback/test.toml") && e.contains("storage.s3.secret_key"),
        "{e}"
    );
    assert!(e.contains("secret_key_env"), "{e}");

    let e = error("[storage.s3]\nplugin = \"storage-s3\"\nsecret_key_env = \"NOPE\"\n");
    assert!(
        e.contains("storage.s3.secret_key_env") && e.contains("`NOPE`"),
        "{e}"
    );

    let e = error("[storage.x]\nroot = \"/tmp\"\n");
    assert!(
        e.contains("storage.x.plugin") && e.contains("missing"),
        "{e}"
    );

    let e = error("[daemon]\nlisten = \"localhost\"\n");
    assert!(e.contains("daemon.listen") && e.contains("IP:PORT"), "{e}");

    let e = error("[daemon]\ndata_priority = \"high\"\n");
    assert!(
        e.contains("daemon.data_priority") && e.contains("`high`") && e.contains("\"normal\""),
        "{e}"
    );

    let e = error("[daemon]\nlisten_addr = \"127.0.0.1:1\"\n");
    assert!(e.contains("test.toml") && e.contains("listen_addr"), "{e}");

    let e = error("[plugins.storage-local]\nsha256 = \"abc\"\n");
    assert!(
        e.contains("plugins.storage-local.sha256") && e.contains("sha256sum"),
        "{e}"
    );

    let e = error("[storage.a]\nplugin = \"p\"\nx = [1]\n");
    assert!(e.contains("storage.a.x"), "{e}");
}

#[test]
fn a_setting_given_twice_is_refused() {
    let e = error(
        "[storage.a]\nplugin = \"p\"\ntoken_env = \"S3_SECRET\"\ntoken_file = \"/dev/null\"\n",
    );
    assert!(e.contains("given twice"), "{e}");
}

const STORAGE: &str = "[storage.local]\nplugin = \"storage-local\"\nroot = \"b\"\n";

#[test]
fn instances_validate_with_their_defaults() {
    let c = parse(&format!(
        "{STORAGE}[instance.orders]\naddress = \"10.0.0.5:6379\"\nstorage = \"local\"\nprefer_replica = true\npassword_env = \"S3_SECRET\"\n"
    ))
    .unwrap();
    let i = &c.instances["orders"];
    assert_eq!(i.compression, Compression::Zstd { level: 1 });
    assert_eq!(i.prefix, "redback");
    assert!(i.prefer_replica);
    assert_eq!(i.password.as_ref().unwrap().expose(), "s3cr3t");
    assert!(!format!("{i:?}").contains("s3cr3t"));
}

#[test]
fn instance_errors_name_the_key_and_the_fix() {
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"10.0.0.5\"\nstorage = \"local\"\n"
    ));
    assert!(
        e.contains("instance.a.address") && e.contains("HOST:PORT"),
        "{e}"
    );
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"h:1\"\nstorage = \"s3\"\n"
    ));
    assert!(
        e.contains("instance.a.storage") && e.contains("local"),
        "{e}"
    );
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"h:1\"\nstorage = \"local\"\npassword = \"pw\"\n"
    ));
    assert!(
        e.contains("instance.a.password") && e.contains("password_env") && !e.contains("\"pw\""),
        "{e}"
    );
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"h:1\"\nstorage = \"local\"\ncompression = \"lz4\"\n"
    ));
    assert!(
        e.contains("instance.a.compression") && e.contains("zstd"),
        "{e}"
    );
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"h:1\"\nstorage = \"local\"\nzstd_level = 40\n"
    ));
    assert!(e.contains("instance.a.zstd_level"), "{e}");
    let e = error(&format!(
        "{STORAGE}[instance.a]\naddress = \"h:1\"\nstorage = \"local\"\nprefix = \"../x\"\n"
    ));
    assert!(e.contains("instance.a.prefix"), "{e}");
}

/// A TOML error used to quote the source line under it: a secret written
/// on that line by mistake reached the log and the reload's API reply.
#[test]
fn regression_a_syntax_error_does_not_quote_the_line_holding_a_secret() {
    let e = error("[daemon]\ntimezone = \"UTC\"\n[instance.a]\npassword = \"hunter2-secret\n");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.starts_with("/etc/redback/test.toml: line 4, column "),
        "{e}"
    );
    let e = error("[daemon]\nmax_concurrent_backups = \"hunter2-secret\"\n");
    assert!(!e.contains("hunter2"), "{e}");
    assert!(
        e.contains(
            "line 2, column 26 (`max_concurrent_backups = …` in `[daemon]`): \
             invalid type: string \"***\""
        ),
        "{e}"
    );
    // A table's own errors name the table: its header holds no value.
    let e = error("[instance.broken]\n");
    assert!(
        e.contains("(`[instance.broken]`): missing field `address`"),
        "{e}"
    );
}
