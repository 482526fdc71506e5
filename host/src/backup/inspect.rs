//! Looking inside a stored backup without restoring it: keys per db and
//! type, the biggest keys, and the keys matching a pattern.

use std::sync::Arc;

use super::{Manifest, VerifyError};
use crate::rdb::{Item, ParseOptions, Parser, Stats, show_bytes};
use crate::restore::KeyFilter;
use crate::storage::Storage;

/// Most matching keys listed (the count covers them all).
pub const MAX_LISTED: usize = 1000;

/// One key that matched the pattern.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MatchedKey {
    pub db: u64,
    /// Non-printable bytes as `\xNN`.
    pub key: String,
    pub kind: String,
    pub bytes: u64,
    pub expire_at_ms: Option<i64>,
}

/// What `inspect` found.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Inspection {
    pub id: String,
    pub stats: Stats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub matched: u64,
    pub keys: Vec<MatchedKey>,
}

/// Streams backup `m` through the parser (values walked, not kept).
pub async fn inspect(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    pattern: Option<&str>,
    top: usize,
) -> Result<Inspection, VerifyError> {
    let (m, pattern) = (m.clone(), pattern.map(str::to_string));
    crate::data_runtime::run(async move { look(storage, &m, pattern.as_deref(), top).await }).await
}

async fn look(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    pattern: Option<&str>,
    top: usize,
) -> Result<Inspection, VerifyError> {
    let mismatch = |message: String| VerifyError::Mismatch {
        id: m.id.clone(),
        message,
    };
    super::stream::readable(storage.as_ref(), m)?;
    let (download, reader) = super::stream::open(storage, m);
    let mut filter = pattern.and_then(KeyFilter::parse);
    let id = m.id.clone();
    // A decryption failure is told as such; any other is a mismatch.
    let failure = move |e: crate::rdb::RdbError| match crate::crypt::CryptError::cause_in(&e) {
        Some(c) => VerifyError::Encryption(c.clone()),
        None => VerifyError::Mismatch {
            id: id.clone(),
            message: e.to_string(),
        },
    };
    let parsed = tokio::task::spawn_blocking(move || {
        let mut p = Parser::with_options(
            reader,
            ParseOptions {
                capture_values: false,
            },
        )
        .map_err(&failure)?;
        let mut stats = Stats::new(p.version(), top);
        let (mut matched, mut keys) = (0u64, Vec::new());
        while let Some(item) = p.next().map_err(&failure)? {
            stats.record(&item);
            if let (Item::Key(e), Some(f)) = (&item, filter.as_mut())
                && f.matches(&e.key)
            {
                matched += 1;
                if keys.len() < MAX_LISTED {
                    keys.push(MatchedKey {
                        db: e.db,
                        key: show_bytes(&e.key),
                        kind: e.kind.name().to_string(),
                        bytes: e.value_len,
                        expire_at_ms: e.expire_at_ms,
                    });
                }
            }
        }
        stats.finish(&p);
        Ok::<_, VerifyError>((stats, matched, keys))
    });
    let downloaded = download.await;
    let parsed = parsed
        .await
        .map_err(|e| mismatch(format!("the parser stopped: {e}")))?;
    if let Err(e @ VerifyError::Encryption(_)) = parsed {
        return Err(e);
    }
    let (_, sha) = downloaded.map_err(|e| mismatch(format!("the download stopped: {e}")))??;
    if sha != m.data.sha256 {
        return Err(mismatch(format!(
            "the stored object's sha256 is {sha}, the manifest says {}",
            m.data.sha256
        )));
    }
    let (stats, matched, keys) = parsed?;
    Ok(Inspection {
        id: m.id.clone(),
        stats,
        pattern: pattern.map(str::to_string),
        matched,
        keys,
    })
}
