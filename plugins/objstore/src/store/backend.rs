//! The storage contract on an object store: the `Guest` implementation
//! the S3, COS and OSS plugins export, each with its own [`Plugin`].
//! `delete` aborts the key's unfinished multipart uploads (`unfinished.rs`)
//! before it deletes the object.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;

use super::settings::Settings;
use super::unfinished;
use super::upload::ObjectUpload;
use super::{Call, Client, head};
use crate::bindings::exports::redback::storage::backend::{
    Download, Guest, GuestDownload, Network, Upload,
};
use crate::bindings::redback::storage::types::{Error, ObjectMeta, Page};
use crate::http::{self, Response};
use crate::keys::{key_problem, prefix_problem, quoted};
use crate::xml;

/// What a plugin brings: its name and how its settings become a client.
pub trait Plugin: 'static {
    const NAME: &'static str;
    fn configure(settings: &mut Settings) -> Result<Client, Error>;
}

/// The exported component of plugin `P`; see the `export!` macro.
pub struct Backend<P>(PhantomData<P>);

thread_local! {
    static CLIENT: RefCell<Option<Rc<Client>>> = const { RefCell::new(None) };
}

fn client() -> Result<Rc<Client>, Error> {
    CLIENT
        .with_borrow(|c| c.clone())
        .ok_or_else(|| Error::Other("called before `configure` succeeded".into()))
}

fn check_key(key: &str) -> Result<(), Error> {
    key_problem(key).map_or(Ok(()), |p| Err(Error::InvalidKey(p)))
}

/// A download: the body of one ranged `GET`, read as the host asks.
pub struct ObjectDownload {
    body: RefCell<Option<Response>>,
}

impl GuestDownload for ObjectDownload {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let mut body = self.body.borrow_mut();
        let Some(r) = body.as_mut() else {
            return Ok(Vec::new());
        };
        let bytes = r.read(max_bytes as usize).map_err(|f| {
            Error::Unavailable(format!("reading an object from the bucket: {}", f.message))
        })?;
        if bytes.is_empty() {
            *body = None;
        }
        Ok(bytes)
    }
}

impl<P: Plugin> Guest for Backend<P> {
    type Upload = ObjectUpload;
    type Download = ObjectDownload;

    fn configure(settings: Vec<(String, String)>) -> Result<(), Error> {
        let mut settings = Settings::new(P::NAME, settings);
        let client = P::configure(&mut settings)?;
        settings.finish()?;
        CLIENT.set(Some(Rc::new(client)));
        Ok(())
    }

    fn start_upload(key: String) -> Result<Upload, Error> {
        check_key(&key)?;
        Ok(Upload::new(ObjectUpload::start(client()?, key)))
    }

    fn open_download(key: String, offset: u64, length: Option<u64>) -> Result<Download, Error> {
        check_key(&key)?;
        let client = client()?;
        let empty = || {
            Download::new(ObjectDownload {
                body: RefCell::new(None),
            })
        };
        if length == Some(0) {
            head(&client, &key)?;
            return Ok(empty());
        }
        let mut call = Call::new(format!("GET {}", quoted(&key)), "GET", &key);
        if offset > 0 || length.is_some() {
            let end = length.map_or(String::new(), |n| (offset + n - 1).to_string());
            call = call.header("range", format!("bytes={offset}-{end}"));
            for (k, v) in client.dialect.range_headers() {
                call = call.header(&k, v);
            }
        }
        let r = call.expect(&client, &[200, 206, 416])?;
        if r.status == 416 {
            // The offset is at or past the end: an empty download.
            return Ok(empty());
        }
        if offset > 0 && r.status == 200 {
            return Err(Error::Other(format!(
                "GET {} from byte {offset}: the service ignored the range and sent the whole object",
                quoted(&key)
            )));
        }
        Ok(Download::new(ObjectDownload {
            body: RefCell::new(Some(r)),
        }))
    }

    fn stat(key: String) -> Result<ObjectMeta, Error> {
        check_key(&key)?;
        head(&*client()?, &key)
    }

    fn list(prefix: String, cursor: Option<String>, max_keys: u32) -> Result<Page, Error> {
        if let Some(p) = prefix_problem(&prefix) {
            return Err(Error::InvalidKey(p));
        }
        let client = client()?;
        let what = format!("listing {}", quoted(&prefix));
        let max_keys = max_keys.clamp(1, 1000);
        // Start after the last key seen, not at a continuation token: the
        // contract's cursor survives inserts and deletes between pages.
        let query = client
            .dialect
            .list_query(&prefix, cursor.as_deref(), max_keys);
        let mut r = Call::new(what.clone(), "GET", "")
            .queries(query)
            .expect(&client, &[200])?;
        let body = r
            .read_all(16 << 20)
            .map_err(|f| Error::Unavailable(format!("{what}: {}", f.message)))?;
        let body = String::from_utf8_lossy(&body);
        let mut objects = Vec::new();
        for c in xml::elements(&body, "Contents") {
            let key = xml::text(c, "Key")
                .ok_or_else(|| Error::Other(format!("{what}: an entry without <Key>")))?;
            objects.push(ObjectMeta {
                size_bytes: xml::text(c, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                modified_unix_ms: xml::text(c, "LastModified")
                    .and_then(|t| crate::time::parse_iso8601(&t))
                    .unwrap_or(0),
                etag: xml::text(c, "ETag"),
                key,
            });
        }
        if objects.len() > max_keys as usize {
            return Err(Error::Other(format!(
                "{what}: the service returned {} objects for a page of {max_keys}",
                objects.len()
            )));
        }
        if objects.iter().any(|o| !o.key.starts_with(&prefix)) {
            return Err(Error::Other(format!(
                "{what}: the service returned keys outside the prefix"
            )));
        }
        let truncated = xml::text(&body, "IsTruncated").as_deref() == Some("true");
        let next_cursor = match objects.last() {
            Some(last) if truncated => Some(last.key.clone()),
            _ => None,
        };
        Ok(Page {
            objects,
            next_cursor,
        })
    }

    fn delete(key: String) -> Result<(), Error> {
        check_key(&key)?;
        let client = client()?;
        // The unfinished uploads first: one that completes before its
        // abort makes an object the delete below removes, and none can
        // complete after. The other order could leave an object behind.
        unfinished::abort_uploads_of(&client, &key)?;
        Call::new(format!("DELETE {}", quoted(&key)), "DELETE", &key)
            .expect(&client, &[200, 204, 404])?;
        Ok(())
    }

    fn presign_get(
        key: String,
        ttl_seconds: u32,
        network: Network,
    ) -> Result<Option<String>, Error> {
        check_key(&key)?;
        let client = client()?;
        head(&client, &key)?;
        let ep = match network {
            Network::Internal => &client.endpoints.internal,
            Network::Public => &client.endpoints.public,
        };
        let ttl = ttl_seconds.clamp(1, client.dialect.max_link_ttl());
        let query = client
            .dialect
            .presign_get(ep, &key, ttl, http::now_unix_secs());
        Ok(Some(format!(
            "{}://{}{}?{query}",
            ep.scheme(),
            ep.authority,
            ep.path(&key)
        )))
    }
}
