//! The multipart uploads a killed process left behind. `delete(key)` must
//! remove them too (the host deletes the keys of a backup a crash cut off
//! and expects nothing of it to remain), but their upload ids died with
//! the process: ListMultipartUploads (`GET /?uploads&prefix=<key>`, the
//! same call on S3, COS and OSS, each signed its own way) finds them, up
//! to 1,000 a page, and every one whose key is exactly `key` is aborted.
//!
//! A service without ListMultipartUploads (HTTP 501 or `NotImplemented`)
//! cannot say which uploads exist: this is noted once per instance in the
//! log and `delete` goes on with the object alone, leaving such uploads to
//! the bucket's lifecycle rule (AbortIncompleteMultipartUpload). Any other
//! failure fails the delete, so the host retries it or reports it: an
//! AccessDenied here means the credentials lack the ListMultipartUploads
//! or AbortMultipartUpload permission.

use std::cell::Cell;

use super::upload::abort_upload;
use super::{Call, Client, error_of};
use crate::bindings::redback::storage::types::Error;
use crate::keys::quoted;
use crate::uploads::parse_page;
use crate::xml;

/// Uploads asked for per page: the services' maximum.
const MAX_UPLOADS: u32 = 1000;
/// The largest page accepted: 1,000 uploads of 1,024-byte keys with the
/// owner and initiator elements S3 adds stay far below it.
const MAX_PAGE_BYTES: usize = 16 << 20;

thread_local! {
    /// This instance found that the service has no ListMultipartUploads,
    /// and said so in the log: it does not ask again.
    static UNSUPPORTED: Cell<bool> = const { Cell::new(false) };
}

/// Aborts every unfinished multipart upload of exactly `key`, and says in
/// the log how many there were, if any (a crash left them).
pub fn abort_uploads_of(client: &Client, key: &str) -> Result<(), Error> {
    if UNSUPPORTED.get() {
        return Ok(());
    }
    let Some(ids) = upload_ids_of(client, key)? else {
        return Ok(());
    };
    let count = ids.len();
    for id in ids {
        abort_upload(client, key, id)?;
    }
    if count > 0 {
        eprintln!(
            "aborted {count} unfinished multipart upload(s) of {}",
            quoted(key)
        );
    }
    Ok(())
}

/// The ids of the unfinished uploads of `key`, every page of them; `None`
/// when the service cannot list uploads.
fn upload_ids_of(client: &Client, key: &str) -> Result<Option<Vec<String>>, Error> {
    let what = format!(
        "listing the unfinished uploads of {} (ListMultipartUploads)",
        quoted(key)
    );
    let mut ids = Vec::new();
    let mut marker: Option<(String, String)> = None;
    loop {
        let mut call = Call::new(what.clone(), "GET", "")
            .query("uploads", "")
            .query("prefix", key)
            .query("max-uploads", MAX_UPLOADS.to_string());
        if let Some((key_marker, id_marker)) = &marker {
            call = call.query("key-marker", key_marker.clone());
            if !id_marker.is_empty() {
                call = call.query("upload-id-marker", id_marker.clone());
            }
        }
        let mut r = call.send(client)?;
        if r.status != 200 {
            let body = r.text();
            if r.status == 501 || xml::text(&body, "Code").as_deref() == Some("NotImplemented") {
                unsupported(&message(error_of(client, &what, &r, &body)));
                return Ok(None);
            }
            return Err(error_of(client, &what, &r, &body));
        }
        let body = r
            .read_all(MAX_PAGE_BYTES)
            .map_err(|f| Error::Unavailable(format!("{what}: {}", f.message)))?;
        let body = String::from_utf8_lossy(&body);
        let Some(page) = parse_page(&body).map_err(|m| Error::Other(format!("{what}: {m}")))?
        else {
            unsupported(&format!(
                "{what}: the service answered with a document other than \
                 ListMultipartUploadsResult"
            ));
            return Ok(None);
        };
        // The prefix also selects longer keys (`key.sha256`, `key/x`).
        ids.extend(
            page.uploads
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, id)| id),
        );
        match page.next {
            None => return Ok(Some(ids)),
            Some(next) if marker.as_ref() == Some(&next) => {
                return Err(Error::Other(format!(
                    "{what}: the service sent the page after {next:?} again"
                )));
            }
            Some(next) => marker = Some(next),
        }
    }
}

fn message(e: Error) -> String {
    match e {
        Error::NotFound(m)
        | Error::AccessDenied(m)
        | Error::InvalidConfig(m)
        | Error::InvalidKey(m)
        | Error::Unavailable(m)
        | Error::Other(m) => m,
    }
}

fn unsupported(detail: &str) {
    UNSUPPORTED.set(true);
    eprintln!(
        "{detail}: this service cannot list unfinished multipart uploads, so \
         `delete` removes the object only and the uploads of killed processes \
         stay until the bucket's lifecycle rule aborts them \
         (AbortIncompleteMultipartUpload); this instance will not ask again"
    );
}
