//! Download links and the downloads the daemon serves itself: the
//! storage's presigned URL when it has one, else a signed link to
//! `/download/<token>`, and the stored object (or the RDB inside it) as a
//! stream. Must not sign tokens itself: `links` does.

use super::*;

impl Service {
    /// A download link for a backup: the storage's presigned URL for the
    /// network when it has one, else a link the daemon serves, with the
    /// provider's lifetime for that network (1 hour without a provider).
    pub async fn download_link(
        &self,
        backup_id: &str,
        network: Network,
    ) -> Result<Link, ServiceError> {
        let b = self.backup_record(backup_id)?;
        let m = self.instance(&b.instance)?;
        let (ttl, label) = match &m.provider {
            Some(p) => {
                let d = p.descriptor();
                let l = d
                    .download_links
                    .iter()
                    .find(|l| l.network == network)
                    .ok_or_else(|| {
                        ServiceError::Forbidden(format!(
                            "{} offers no download link for the {} network",
                            d.display_name,
                            match network {
                                Network::Internal => "internal",
                                Network::Public => "public",
                            }
                        ))
                    })?;
                (l.ttl_secs, Some(l.label.clone()))
            }
            None => (3600, None),
        };
        let storage = self.storage(&b.storage)?;
        let now = self.clock.now();
        let expires = now.as_second() + ttl as i64;
        let expires_at = jiff::Timestamp::from_second(expires)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let data_key = b.data_key.clone().unwrap_or_default();
        // A presigned link would hand out ciphertext: an encrypted backup's
        // link is served by the daemon, which decrypts.
        let encrypted = self.manifest_of(&b)?.data.encryption.is_some();
        let presigned = if encrypted {
            Ok(None)
        } else {
            storage.presign_get(&data_key, ttl, network).await
        };
        match presigned {
            Ok(Some(url)) => Ok(Link {
                url,
                network,
                expires_at,
                label,
                served_by: "storage",
            }),
            Ok(None) => Ok(Link {
                url: format!(
                    "{}/download/{}",
                    self.live().config.daemon.public_url,
                    self.links.mint(backup_id, expires)
                ),
                network,
                expires_at,
                label,
                served_by: "daemon",
            }),
            Err(e) => Err(ServiceError::Unavailable(e.to_string())),
        }
    }

    /// The stored object of a backup as a byte stream, or (`plain`) the RDB
    /// inside it, decompressed on the fly; with a file name and, when
    /// known, the length.
    pub async fn download_stream(
        &self,
        backup_id: &str,
        plain: bool,
    ) -> Result<(ByteStream, String, Option<u64>), ServiceError> {
        let b = self.backup_record(backup_id)?;
        let manifest = self.manifest_of(&b)?;
        let storage = self.storage(&b.storage)?;
        let compressed = matches!(
            manifest.data.compression,
            crate::config::Compression::Zstd { .. }
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let name = format!(
            "{}-{}.rdb{}",
            b.instance,
            b.id,
            if compressed && !plain { ".zst" } else { "" }
        );
        let encrypted = manifest.data.encryption.as_ref();
        if plain || encrypted.is_some() {
            // The restore path's reader: download (hashed) -> decrypt ->
            // zstd -> RDB; the stored format of an encrypted backup is
            // served decrypted (the daemon never hands out ciphertext).
            let len = match (plain, encrypted) {
                (true, _) => Some(manifest.data.raw_bytes),
                (false, Some(e)) => crate::crypt::plain_len(manifest.data.stored_bytes, e),
                (false, None) => Some(manifest.data.stored_bytes),
            };
            backup::stream::readable(storage.as_ref(), &manifest)
                .map_err(backup::VerifyError::from)?;
            let (download, mut reader) = if plain {
                backup::stream::open(storage, &manifest)
            } else {
                backup::stream::open_stored(storage, &manifest)
            };
            let expected = manifest.data.sha256.clone();
            let id = b.id.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            let piece = bytes::Bytes::copy_from_slice(&buf[..n]);
                            if tx.blocking_send(Ok(piece)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                // The reader ends wherever the download stopped: the body
                // ends cleanly only after the whole object, with the
                // manifest's sha256, was read.
                let problem = match runtime.block_on(download) {
                    Ok(Ok((_, sha))) if sha == expected => return,
                    Ok(Ok((_, sha))) => {
                        format!("the stored object's sha256 is {sha}, the manifest says {expected}")
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => format!("the download stopped: {e}"),
                };
                let message = format!("backup {id}: {problem}");
                let _ = tx.blocking_send(Err(std::io::Error::other(message)));
            });
            return Ok((Box::pin(stream_of(rx)), name, len));
        }
        let mut download = storage
            .open_download(&manifest.data.key, 0, None)
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        tokio::spawn(async move {
            loop {
                let piece = match download.read(1 << 20).await {
                    Ok(c) if c.is_empty() => return,
                    Ok(c) => Ok(bytes::Bytes::from(c)),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok((
            Box::pin(stream_of(rx)),
            name,
            Some(manifest.data.stored_bytes),
        ))
    }
}
