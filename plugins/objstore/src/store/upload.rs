//! Uploads: one `PUT` when the object is at most a part, a multipart
//! upload otherwise (initiate on the first full part, one `PUT` per part,
//! complete on `finish`, abort on `abort` or drop). A full part is sent by
//! the next `write` (or `finish`) before it takes its chunk, so a `write`
//! that fails took none of its chunk, as the contract asks. S3, COS and OSS show
//! nothing of either until it is complete, as the contract asks, and share
//! the multipart calls (`?uploads`, `?partNumber&uploadId`, the
//! `CompleteMultipartUpload` document, `DELETE ?uploadId`).

use std::cell::RefCell;
use std::rc::Rc;

use super::{Call, Client, head};
use crate::bindings::exports::redback::storage::backend::GuestUpload;
use crate::bindings::redback::storage::types::{Error, ObjectMeta};
use crate::keys::quoted;
use crate::xml;

/// How far the service's clock may be behind ours when we judge whether an
/// object was written by our own completion.
const CLOCK_MARGIN_MS: u64 = 15 * 60 * 1000;

pub struct ObjectUpload {
    state: RefCell<State>,
}

struct State {
    client: Rc<Client>,
    key: String,
    /// Bytes not yet sent: less than a part and a chunk.
    buf: Vec<u8>,
    upload_id: Option<String>,
    /// ETags of the parts sent, in order.
    etags: Vec<String>,
    size: u64,
    /// Completed or aborted: nothing more to clean up.
    closed: bool,
}

impl ObjectUpload {
    pub fn start(client: Rc<Client>, key: String) -> ObjectUpload {
        ObjectUpload {
            state: RefCell::new(State {
                buf: Vec::new(),
                client,
                key,
                upload_id: None,
                etags: Vec::new(),
                size: 0,
                closed: false,
            }),
        }
    }
}

impl State {
    fn what(&self, doing: &str) -> String {
        format!("{doing} {}", quoted(&self.key))
    }

    fn initiate(&mut self) -> Result<String, Error> {
        let what = self.what("starting the multipart upload of");
        let mut r = Call::new(what.clone(), "POST", &self.key)
            .query("uploads", "")
            .expect(&self.client, &[200])?;
        xml::text(&r.text(), "UploadId")
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::Other(format!("{what}: the answer has no UploadId")))
    }

    fn send_part(&mut self, part: &[u8]) -> Result<(), Error> {
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.initiate()?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.etags.len() + 1;
        let what = self.what(&format!("uploading part {number} of"));
        let r = Call::new(what.clone(), "PUT", &self.key)
            .query("partNumber", number.to_string())
            .query("uploadId", id)
            .body(part)
            .expect(&self.client, &[200])?;
        let etag = r
            .header("etag")
            .ok_or_else(|| Error::Other(format!("{what}: the answer has no ETag")))?
            .to_string();
        self.etags.push(etag);
        Ok(())
    }

    /// Sends every full part at the front of `buf`. A part that fails
    /// stays in `buf` with everything after it, so nothing is lost and the
    /// next `write` or `finish` sends it again.
    fn send_full_parts(&mut self) -> Result<(), Error> {
        let part = self.client.part_size;
        while self.buf.len() >= part {
            let buf = std::mem::take(&mut self.buf);
            let sent = self.send_part(&buf[..part]);
            self.buf = buf;
            sent?;
            self.buf.drain(..part);
        }
        Ok(())
    }

    /// Completes the multipart upload. Completion is not idempotent: when
    /// an attempt's answer is lost and the retry finds the upload already
    /// gone (NoSuchUpload, or AccessDenied on some servers), the object
    /// may be complete. It counts as ours when it has our size and part
    /// count and was written after we started completing.
    fn complete(&mut self) -> Result<(), Error> {
        let started_ms = crate::http::now_unix_secs() * 1000;
        let outcome = self.complete_once();
        if outcome.is_err()
            && let Ok(meta) = head(&self.client, &self.key)
        {
            let parts = format!("-{}\"", self.etags.len());
            let ours = meta.size_bytes == self.size
                && meta.etag.as_deref().is_some_and(|e| e.ends_with(&parts))
                && meta.modified_unix_ms + CLOCK_MARGIN_MS >= started_ms;
            if ours {
                return Ok(());
            }
        }
        outcome
    }

    fn complete_once(&mut self) -> Result<(), Error> {
        let id = self.upload_id.clone().expect("a multipart upload");
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (i, etag) in self.etags.iter().enumerate() {
            doc.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                i + 1,
                xml::escape(etag)
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let what = self.what("completing the multipart upload of");
        let mut r = Call::new(what.clone(), "POST", &self.key)
            .query("uploadId", id)
            .header("content-type", "application/xml")
            .body(doc.as_bytes())
            .expect(&self.client, &[200])?;
        // The service may answer 200 and still fail, with an <Error> document.
        let body = r.text();
        if body.contains("<Error>") {
            return Err(Error::Unavailable(format!(
                "{what}: {}: {}",
                xml::text(&body, "Code").unwrap_or_default(),
                xml::text(&body, "Message").unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn put_whole(&mut self) -> Result<(), Error> {
        let body = std::mem::take(&mut self.buf);
        Call::new(self.what("uploading"), "PUT", &self.key)
            .body(&body)
            .expect(&self.client, &[200])?;
        Ok(())
    }

    fn abort(&mut self) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.buf = Vec::new();
        let Some(id) = self.upload_id.take() else {
            return Ok(());
        };
        abort_upload(&self.client, &self.key, id)
    }
}

/// Aborts the multipart upload `id` of `key`: its parts are dropped and it
/// can no longer complete. One already gone (404 NoSuchUpload: aborted or
/// completed meanwhile) is no error.
pub fn abort_upload(client: &Client, key: &str, id: String) -> Result<(), Error> {
    Call::new(
        format!("aborting the multipart upload of {}", quoted(key)),
        "DELETE",
        key,
    )
    .query("uploadId", id)
    .expect(client, &[200, 204, 404])?;
    Ok(())
}

impl GuestUpload for ObjectUpload {
    fn write(&self, chunk: Vec<u8>) -> Result<(), Error> {
        let mut s = self.state.borrow_mut();
        if s.closed {
            return Err(Error::Other(
                s.what("writing to a finished or aborted upload of"),
            ));
        }
        // The contract: a `write` that fails with `unavailable` took none
        // of its chunk and the host sends it again. So the only thing that
        // can fail, sending the full parts earlier chunks buffered, happens
        // before this chunk is taken; taking it cannot fail.
        s.send_full_parts()?;
        let part = s.client.part_size;
        let need = s.buf.len() + chunk.len();
        if need > s.buf.capacity() {
            // A first chunk gets exactly its size (a manifest stays small);
            // a buffer that grows past it gets room for a part and a chunk
            // at once instead of doubling its way there.
            let target = if s.buf.is_empty() {
                need
            } else {
                need.max(part + chunk.len())
            };
            let len = s.buf.len();
            s.buf.reserve_exact(target - len);
        }
        s.buf.extend_from_slice(&chunk);
        s.size += chunk.len() as u64;
        Ok(())
    }

    fn finish(&self) -> Result<ObjectMeta, Error> {
        let mut s = self.state.borrow_mut();
        if s.closed {
            return Err(Error::Other(
                s.what("finishing a finished or aborted upload of"),
            ));
        }
        if s.upload_id.is_none() && s.buf.len() <= s.client.part_size {
            s.put_whole()?;
        } else {
            s.send_full_parts()?;
            if !s.buf.is_empty() {
                let last = std::mem::take(&mut s.buf);
                s.send_part(&last)?;
            }
            s.complete()?;
        }
        s.closed = true;
        let meta = head(&s.client, &s.key)?;
        if meta.size_bytes != s.size {
            return Err(Error::Other(format!(
                "{}: the bucket holds {} bytes, {} were sent",
                s.what("after uploading"),
                meta.size_bytes,
                s.size
            )));
        }
        Ok(meta)
    }

    fn abort(&self) -> Result<(), Error> {
        self.state.borrow_mut().abort()
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        // Dropped without finish: the parts must not linger (the service
        // bills them and a lifecycle rule may be missing).
        let _ = self.state.get_mut().abort();
    }
}
