//! The command line: parses arguments (clap) and runs each command, either
//! one-shot from a config file or as the daemon (`serve`).
//!
//! Owns: argument parsing, logging set-up, human and `--json` output, exit
//! codes. Must not: hold logic another command or the API would need; that
//! lives in the library modules it calls.

mod backup_cmd;
mod catalog_cmd;
mod config_cmd;
mod plugin_cmd;
mod progress;
mod remote;
mod restore_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "redback",
    version,
    about = "Backs up and restores Redis; storage and provider semantics are WebAssembly plugins"
)]
pub struct Cli {
    /// Talk to the daemon at this URL (http://HOST:PORT) instead of running
    /// the command one-shot from --config.
    #[arg(long, global = true, env = "REDBACK_SERVER")]
    pub server: Option<String>,
    /// File holding the daemon's API token (else REDBACK_API_TOKEN).
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestoreModeArg {
    Auto,
    Handoff,
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: load plugins, open storages, serve the REST API.
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
        /// Address of the REST API, overriding `daemon.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Take a backup of an instance now (one-shot, from the config).
    Backup {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        instance: String,
        /// A name or remark for this manual backup.
        #[arg(long)]
        name: Option<String>,
        /// Print the manifest as JSON instead of the backup id.
        #[arg(long)]
        json: bool,
    },
    /// List the complete backups of an instance (from storage; from the
    /// daemon's catalog with --server).
    Backups {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        instance: String,
        /// Backups started at or after this RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Backups started before this RFC 3339 time.
        #[arg(long)]
        to: Option<String>,
        /// `automatic` or `manual`.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check a backup without restoring it: sha256 of the stored object,
    /// decompression, a full parse with the RDB's CRC-64, and the counts of
    /// the manifest.
    Verify {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The backup id (as `redback backups` shows it).
        #[arg(long)]
        backup: String,
        /// The instance it belongs to; searched in every instance if absent.
        #[arg(long)]
        instance: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Look inside a backup without restoring it: keys per db and type, the
    /// biggest keys, and the keys matching a pattern.
    Inspect {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        backup: String,
        #[arg(long)]
        instance: Option<String>,
        /// List keys matching these patterns (`user:*;k1`).
        #[arg(long)]
        keys: Option<String>,
        /// How many of the biggest keys to show.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup: the whole instance in place, or only chosen keys.
    Restore {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        backup: String,
        #[arg(long)]
        instance: Option<String>,
        /// Restore into this address instead of the instance's own.
        #[arg(long)]
        target: Option<String>,
        /// Environment variable holding the target's password (else the
        /// instance's credentials are used).
        #[arg(long, requires = "target")]
        target_password_env: Option<String>,
        /// Only these keys: `k1;k2;user:*` (Redis glob patterns).
        #[arg(long)]
        keys: Option<String>,
        /// Only keys of this db (with --keys).
        #[arg(long)]
        db: Option<u64>,
        /// Keep keys that exist in the target instead of replacing them.
        #[arg(long)]
        no_replace: bool,
        /// Keep going past keys the target refuses, and report them.
        #[arg(long)]
        best_effort: bool,
        /// How a whole instance is restored: `handoff` (the target loads the
        /// RDB as a replica of redback: fastest), `restore` (pipelined
        /// RESTORE commands), or `auto` (handoff).
        #[arg(long, value_enum, default_value_t = RestoreModeArg::Auto)]
        mode: RestoreModeArg,
        /// Handoff: where redback listens for the target (default: the
        /// address it reaches the target from, any port).
        #[arg(long)]
        listen: Option<String>,
        /// Handoff: the HOST:PORT the target should connect to, when it
        /// differs from the listen address.
        #[arg(long)]
        advertise: Option<String>,
        /// With --server: environment variable holding the instance password,
        /// for providers that confirm restores with it.
        #[arg(long)]
        confirm_password_env: Option<String>,
        /// Confirm: a restore overwrites data.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Clone a backup into a new instance: an empty address, or a new local
    /// redis-server started on the backup.
    Clone {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        backup: String,
        #[arg(long)]
        instance: Option<String>,
        /// An empty Redis to restore into.
        #[arg(long, conflicts_with = "spawn")]
        target: Option<String>,
        #[arg(long, requires = "target")]
        target_password_env: Option<String>,
        /// Restore into --target even if it holds keys.
        #[arg(long, requires = "target")]
        force: bool,
        /// Start a new redis-server loaded from the backup and leave it running.
        #[arg(long)]
        spawn: bool,
        /// Port of the new server (with --spawn).
        #[arg(long, requires = "spawn")]
        port: Option<u16>,
        /// Data directory of the new server (with --spawn).
        #[arg(long, requires = "spawn")]
        dir: Option<PathBuf>,
        /// The redis-server binary (with --spawn).
        #[arg(long, default_value = "redis-server")]
        redis_server: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The daemon's tasks, newest first (needs --server).
    Tasks {
        #[arg(long)]
        instance: Option<String>,
        /// One task, whole.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// An expiring download link for a backup (needs --server).
    Link {
        #[arg(long)]
        backup: String,
        /// `internal` (same region / private address) or `public`.
        #[arg(long, default_value = "public")]
        network: String,
        #[arg(long)]
        json: bool,
    },
    /// Show or change an instance's automatic backup policy, as its
    /// provider allows (needs --server).
    Policy {
        #[arg(long)]
        instance: String,
        /// Days of the week: `monday,thursday`.
        #[arg(long)]
        weekdays: Option<String>,
        /// Start window, `HH:MM-HH:MM` in the instance's time zone.
        #[arg(long)]
        window: Option<String>,
        #[arg(long)]
        retention_days: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Reload the daemon's config and plugin directory (needs --server;
    /// SIGHUP does the same).
    Reload {
        #[arg(long)]
        json: bool,
    },
    /// Delete the backups past their retention now (needs --server).
    Sweep {
        #[arg(long)]
        json: bool,
    },
    /// The daemon's catalog of backups and tasks.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Check a config file and show what it resolves to, secrets masked.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Inspect and check plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config (including each instance's policy, with its
    /// provider plugin) and print the resolved view; exits non-zero with
    /// every problem named if it is not valid.
    Check {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Make the catalog's backup list again from the manifests in storage
    /// (after the SQLite file was lost or damaged). Tasks, the window log
    /// and policies are kept.
    Rebuild {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Compare the catalog with what the storages and archive storages
    /// hold: good backups whose manifest or data object is missing or of the
    /// wrong size, manifests the catalog does not list, orphaned objects.
    /// Exits non-zero with each problem, where it is and the fix.
    Check {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Repair what `catalog check` finds: write missing manifests back from
    /// the catalog, record manifests the catalog lacks, delete orphaned
    /// objects (never one of a good backup or of work under way). The
    /// daemon runs it at start after a crash; one-shot, it refuses while
    /// the catalog shows work under way (use --server then).
    Cleanup {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the plugins of the config's plugin directory, and the refused ones.
    List {
        /// The TOML config (one-shot); not needed with --server.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the storage conformance suite against a plugin folder or a
    /// configured storage; exits non-zero if any check fails.
    Check {
        /// A plugin folder (plugin.toml + component).
        #[arg(conflicts_with_all = ["config", "storage"], required_unless_present_any = ["config", "storage"])]
        folder: Option<PathBuf>,
        /// A setting for the plugin's `configure`, as in a [storage.NAME]
        /// table (`root=/tmp/x`, `secret_key_env=VAR`, `allow_hosts=h1,h2`).
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "folder")]
        set: Vec<String>,
        /// Check a storage of this config instead of a folder.
        #[arg(long, requires = "storage")]
        config: Option<PathBuf>,
        /// The storage of the config (or, with --server, of the daemon) to check.
        #[arg(long)]
        storage: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        if let Some(url) = &cli.server
            && !matches!(cli.command, Command::Serve { .. })
        {
            let client = remote::client(url, cli.token_file.as_deref())?;
            return remote::run(&client, cli.command).await;
        }
        local(cli.command).await
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config file a one-shot command needs.
fn need(config: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    config.ok_or_else(|| {
        anyhow::anyhow!(
            "give --config FILE to run this one-shot, or --server http://HOST:PORT to ask a running daemon"
        )
    })
}

/// Runs a command here, from its config file.
pub(super) async fn local(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config, listen } => serve::run(&config, listen).await,
        Command::Backup {
            config,
            instance,
            name,
            json,
        } => backup_cmd::backup(&need(config)?, &instance, name, json).await,
        Command::Backups {
            config,
            instance,
            from,
            to,
            kind,
            json,
        } => {
            let filter = backup_cmd::Filter::parse(from, to, kind)?;
            backup_cmd::list(&need(config)?, &instance, &filter, json).await
        }
        Command::Verify {
            config,
            backup,
            instance,
            json,
        } => backup_cmd::verify(&need(config)?, &backup, instance.as_deref(), json).await,
        Command::Inspect {
            config,
            backup,
            instance,
            keys,
            top,
            json,
        } => {
            backup_cmd::inspect(
                &need(config)?,
                &backup,
                instance.as_deref(),
                keys.as_deref(),
                top,
                json,
            )
            .await
        }
        Command::Restore {
            config,
            backup,
            instance,
            target,
            target_password_env,
            keys,
            db,
            no_replace,
            best_effort,
            mode,
            listen,
            advertise,
            yes,
            json,
            ..
        } => {
            let t = restore_cmd::TargetArgs {
                target,
                target_password_env,
            };
            let how = restore_cmd::How {
                keys,
                db,
                no_replace,
                best_effort,
                mode,
                listen,
                advertise,
                yes,
                json,
            };
            restore_cmd::restore(&need(config)?, &backup, instance.as_deref(), t, how).await
        }
        Command::Clone {
            config,
            backup,
            instance,
            target,
            target_password_env,
            force,
            spawn,
            port,
            dir,
            redis_server,
            json,
        } => {
            let t = restore_cmd::TargetArgs {
                target,
                target_password_env,
            };
            let s = spawn.then_some(restore_cmd::SpawnArgs {
                port,
                dir,
                redis_server,
            });
            restore_cmd::clone(
                &need(config)?,
                &backup,
                instance.as_deref(),
                t,
                force,
                s,
                json,
            )
            .await
        }
        Command::Tasks { .. }
        | Command::Link { .. }
        | Command::Policy { .. }
        | Command::Reload { .. }
        | Command::Sweep { .. } => anyhow::bail!(
            "this command asks a running daemon: add --server http://HOST:PORT (or set REDBACK_SERVER)"
        ),
        Command::Catalog {
            command: CatalogCommand::Rebuild { config, json },
        } => catalog_cmd::rebuild(&need(config)?, json).await,
        Command::Catalog {
            command: CatalogCommand::Check { config, json },
        } => catalog_cmd::check(&need(config)?, json).await,
        Command::Catalog {
            command: CatalogCommand::Cleanup { config, json },
        } => catalog_cmd::cleanup(&need(config)?, json).await,
        Command::Config {
            command: ConfigCommand::Check { config, json },
        } => config_cmd::check(&need(config)?, json).await,
        Command::Plugin {
            command: PluginCommand::List { config, json },
        } => plugin_cmd::list(&need(config)?, json).await,
        Command::Plugin {
            command:
                PluginCommand::Check {
                    folder,
                    set,
                    config,
                    storage,
                    json,
                },
        } => plugin_cmd::check(folder, set, config, storage, json).await,
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("REDBACK_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
