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
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        instance: String,
        /// A name or remark for this manual backup.
        #[arg(long)]
        name: Option<String>,
        /// Print the manifest as JSON instead of the backup id.
        #[arg(long)]
        json: bool,
    },
    /// List the complete backups of an instance (from storage).
    Backups {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        instance: String,
        #[arg(long)]
        json: bool,
    },
    /// Check a backup without restoring it: sha256 of the stored object,
    /// decompression, a full parse with the RDB's CRC-64, and the counts of
    /// the manifest.
    Verify {
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
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
        /// Confirm: a restore overwrites data.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// Clone a backup into a new instance: an empty address, or a new local
    /// redis-server started on the backup.
    Clone {
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
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
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the plugins of the config's plugin directory, and the refused ones.
    List {
        #[arg(long)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the storage conformance suite against a plugin folder or a
    /// configured storage; exits non-zero if any check fails.
    Check {
        /// A plugin folder (plugin.toml + component).
        #[arg(conflicts_with_all = ["config", "storage"], required_unless_present = "config")]
        folder: Option<PathBuf>,
        /// A setting for the plugin's `configure`, as in a [storage.NAME]
        /// table (`root=/tmp/x`, `secret_key_env=VAR`, `allow_hosts=h1,h2`).
        #[arg(long = "set", value_name = "KEY=VALUE", requires = "folder")]
        set: Vec<String>,
        /// Check a storage of this config instead of a folder.
        #[arg(long, requires = "storage")]
        config: Option<PathBuf>,
        /// The storage of the config to check.
        #[arg(long, requires = "config")]
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
        match cli.command {
            Command::Serve { config, listen } => serve::run(&config, listen).await,
            Command::Backup {
                config,
                instance,
                name,
                json,
            } => backup_cmd::backup(&config, &instance, name, json).await,
            Command::Backups {
                config,
                instance,
                json,
            } => backup_cmd::list(&config, &instance, json).await,
            Command::Verify {
                config,
                backup,
                instance,
                json,
            } => backup_cmd::verify(&config, &backup, instance.as_deref(), json).await,
            Command::Inspect {
                config,
                backup,
                instance,
                keys,
                top,
                json,
            } => {
                backup_cmd::inspect(
                    &config,
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
                restore_cmd::restore(&config, &backup, instance.as_deref(), t, how).await
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
                restore_cmd::clone(&config, &backup, instance.as_deref(), t, force, s, json).await
            }
            Command::Catalog {
                command: CatalogCommand::Rebuild { config, json },
            } => catalog_cmd::rebuild(&config, json).await,
            Command::Config {
                command: ConfigCommand::Check { config, json },
            } => config_cmd::check(&config, json).await,
            Command::Plugin {
                command: PluginCommand::List { config, json },
            } => plugin_cmd::list(&config, json).await,
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
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
