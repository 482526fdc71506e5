//! `redback config check`: validate a config and show what the daemon
//! would run, secrets masked.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;

use crate::config::Config;
use crate::daemon::config_view::resolved_view;

pub(super) async fn check(path: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let view = resolved_view(&config).await?;
    print_view(&view, json_out)
}

/// Prints a resolved view (TOML for people, JSON with --json) and its
/// problems; fails if there are any.
pub(super) fn print_view(view: &Value, json_out: bool) -> anyhow::Result<ExitCode> {
    let problems: Vec<String> = view["problems"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if json_out {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        // TOML reads like the file the operator wrote.
        let mut shown = view.clone();
        if let Some(o) = shown.as_object_mut() {
            o.remove("problems");
        }
        let text = toml::to_string_pretty(&strip_nulls(shown))
            .unwrap_or_else(|e| format!("(cannot show the resolved config: {e})\n"));
        print!("{text}");
        if problems.is_empty() {
            eprintln!("config OK: {}", view["file"].as_str().unwrap_or_default());
        }
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// TOML has no null: drop them.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}
