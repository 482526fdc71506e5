//! storage-template: a minimal redback storage plugin to copy and adapt. It
//! keeps each object as a file under the directory redback grants it (`/data`,
//! passed as the `root` setting); the key is the file's path below it.
//!
//! It shows everything the contract in `wit/storage.wit` demands: key checks,
//! uploads that appear only when finished (temp file + rename), ranged
//! downloads, sorted paginated listing with a cursor, idempotent delete and
//! `presign-get` answering "no links". To talk to your own service instead,
//! replace the file calls; keep the rules.
//!
//! It uses `std::fs` because it is the simplest to read. That is not the
//! fastest way in WebAssembly: redback's bundled `storage-local` writes with
//! raw WASI descriptor calls, which FACTS.md measured at 2-4x the speed.

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use exports::redback::storage::backend::{
    Download, Guest, GuestDownload, GuestUpload, Network, Upload,
};
use redback::storage::types::{Error, ObjectMeta, Page};

wit_bindgen::generate!({
    path: "wit",
    world: "redback:storage/storage-backend",
});

struct Template;

export!(Template);

/// Uploads in progress live here, out of sight of `stat` and `list`.
const PARTIAL_DIR: &str = ".redback-partial";

thread_local! {
    /// The `root` setting; `configure` runs before any other call.
    static ROOT: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

fn root() -> Result<PathBuf, Error> {
    ROOT.with_borrow(|root| root.clone())
        .ok_or_else(|| Error::Other("called before `configure` succeeded".into()))
}

/// The key rules of the contract, in its order, plus the partial directory.
fn check_key(key: &str) -> Result<(), Error> {
    let problem = if key.is_empty() {
        "is empty"
    } else if key.len() > 1024 {
        "is longer than 1,024 bytes"
    } else if key.starts_with('/') {
        "starts with `/`"
    } else if key.contains('\0') {
        "contains a NUL byte"
    } else if key.contains('\\') {
        "contains a `\\`"
    } else if key.split('/').any(str::is_empty) {
        "has an empty segment"
    } else if key.split('/').any(|s| s == "." || s == "..") {
        "has a `.` or `..` segment"
    } else if key.split('/').next() == Some(PARTIAL_DIR) {
        "starts with the reserved `.redback-partial` directory"
    } else {
        return Ok(());
    };
    let shown: String = key.chars().take(100).collect();
    Err(Error::InvalidKey(format!("key {shown:?} {problem}")))
}

/// Every error sentence names the operation and the key; the kind decides
/// whether redback retries.
fn io_error(op: &str, key: &str, e: std::io::Error) -> Error {
    let sentence = format!("cannot {op} {key:?}: {e}");
    match e.kind() {
        ErrorKind::NotFound => Error::NotFound(sentence),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            Error::AccessDenied(sentence)
        }
        // May clear by itself, so redback retries these.
        ErrorKind::StorageFull
        | ErrorKind::QuotaExceeded
        | ErrorKind::WouldBlock
        | ErrorKind::ResourceBusy
        | ErrorKind::Interrupted => Error::Unavailable(sentence),
        _ => Error::Other(sentence),
    }
}

fn meta(key: String, metadata: &fs::Metadata) -> ObjectMeta {
    let modified_unix_ms = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    ObjectMeta {
        key,
        size_bytes: metadata.len(),
        modified_unix_ms,
        etag: Some(format!("{:x}-{modified_unix_ms:x}", metadata.len())),
    }
}

/// Appends to `out` every object below `dir`, whose keys start with
/// `dir_key` ("" or ending in `/`).
fn collect_keys(dir: &Path, dir_key: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be a key
        };
        if dir_key.is_empty() && name == PARTIAL_DIR {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_keys(&entry.path(), &format!("{dir_key}{name}/"), out)?;
        } else if kind.is_file() {
            out.push(format!("{dir_key}{name}"));
        }
    }
    Ok(())
}

/// The start of the name of every partial file of `key`: a 64-bit FNV-1a
/// hash of the key, so `delete` finds the uploads of that key a killed
/// process left behind.
fn partial_tag(key: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}-")
}

/// Removes the partial files of `key`: uploads a killed process never
/// finished nor aborted (the contract's `delete` takes them too).
fn remove_partials_of(root: &Path, key: &str) -> Result<(), Error> {
    let Ok(entries) = fs::read_dir(root.join(PARTIAL_DIR)) else {
        return Ok(());
    };
    let tag = partial_tag(key);
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&tag) {
            match fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove a partial upload of", key, e)),
            }
        }
    }
    Ok(())
}

/// An instance that crashed mid-upload leaves its partial file behind;
/// remove those untouched for a day (a live upload writes far more often).
fn sweep_stale_partials(root: &Path) {
    let Ok(entries) = fs::read_dir(root.join(PARTIAL_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 24 * 60 * 60));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Guest for Template {
    type Upload = FileUpload;
    type Download = FileDownload;

    fn configure(settings: Vec<(String, String)>) -> Result<(), Error> {
        let mut root = None;
        for (key, value) in settings {
            match key.as_str() {
                "root" => root = Some(PathBuf::from(value)),
                // Never echo the value: it may be a secret.
                _ => {
                    return Err(Error::InvalidConfig(format!(
                        "unknown setting `{key}`; this plugin accepts only `root`"
                    )));
                }
            }
        }
        let root = root.ok_or_else(|| {
            Error::InvalidConfig(
                "setting `root` is missing (plugin.toml needs filesystem = true)".into(),
            )
        })?;
        if !root.is_dir() {
            return Err(Error::InvalidConfig(format!(
                "setting `root` is {root:?}, which is not a directory this plugin can see"
            )));
        }
        sweep_stale_partials(&root);
        ROOT.set(Some(root));
        Ok(())
    }

    fn start_upload(key: String) -> Result<Upload, Error> {
        check_key(&key)?;
        let root = root()?;
        let partial_dir = root.join(PARTIAL_DIR);
        fs::create_dir_all(&partial_dir).map_err(|e| io_error("prepare the upload of", &key, e))?;
        // A random name: two instances may upload the same key at once. std
        // has no random API, but `RandomState` is seeded from WASI random.
        let random = |n: u8| RandomState::new().hash_one(n);
        // Tagged with the key, so `delete` finds it.
        let name = format!("{}{:016x}{:016x}", partial_tag(&key), random(1), random(2));
        let temp = partial_dir.join(format!("{name}.part"));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| io_error("start the upload of", &key, e))?;
        Ok(Upload::new(FileUpload {
            final_path: root.join(&key),
            key,
            temp,
            file: RefCell::new(Some(file)),
            finished: Cell::new(false),
        }))
    }

    fn open_download(key: String, offset: u64, length: Option<u64>) -> Result<Download, Error> {
        check_key(&key)?;
        let path = root()?.join(&key);
        let mut file = File::open(&path).map_err(|e| io_error("open", &key, e))?;
        let metadata = file.metadata().map_err(|e| io_error("open", &key, e))?;
        if !metadata.is_file() {
            return Err(Error::NotFound(format!(
                "{key:?} is a directory, not an object"
            )));
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("seek in", &key, e))?;
        let available = metadata.len().saturating_sub(offset);
        Ok(Download::new(FileDownload {
            key,
            file: RefCell::new(file),
            remaining: Cell::new(length.map_or(available, |l| l.min(available))),
        }))
    }

    fn stat(key: String) -> Result<ObjectMeta, Error> {
        check_key(&key)?;
        let metadata = fs::metadata(root()?.join(&key)).map_err(|e| io_error("stat", &key, e))?;
        if !metadata.is_file() {
            return Err(Error::NotFound(format!(
                "{key:?} is a directory, not an object"
            )));
        }
        Ok(meta(key, &metadata))
    }

    fn list(prefix: String, cursor: Option<String>, max_keys: u32) -> Result<Page, Error> {
        if prefix.starts_with('/') || prefix.contains('\0') || prefix.split('/').any(|s| s == "..")
        {
            return Err(Error::InvalidKey(format!(
                "list prefix {prefix:?} cannot match any key"
            )));
        }
        let root = root()?;
        // Simple, not fast: every page walks the whole tree below the
        // prefix's directory and sorts it. Sorting full keys (not names per
        // directory) gives the byte order the contract wants: `a-c` < `a/b`.
        let dir_key = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
        // `a//` and `a/./` name a real directory, but no valid key starts so.
        let no_key_fits = dir_key
            .split('/')
            .rev()
            .skip(1)
            .any(|s| s.is_empty() || s == ".");
        let mut keys = Vec::new();
        if !no_key_fits {
            match collect_keys(&root.join(dir_key), dir_key, &mut keys) {
                Ok(()) => {}
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                Err(e) => return Err(io_error("list", &prefix, e)),
            }
        }
        keys.retain(|k| k.starts_with(&prefix) && cursor.as_ref().is_none_or(|c| k > c));
        keys.sort_unstable();
        let max_keys = max_keys.max(1) as usize;
        let more = keys.len() > max_keys;
        keys.truncate(max_keys);
        let mut objects = Vec::with_capacity(keys.len());
        for key in keys {
            match fs::metadata(root.join(&key)) {
                Ok(metadata) => objects.push(meta(key, &metadata)),
                Err(e) if e.kind() == ErrorKind::NotFound => {} // deleted meanwhile
                Err(e) => return Err(io_error("stat", &key, e)),
            }
        }
        // The cursor is the last key returned, so it stays valid while
        // objects come and go.
        let next_cursor = if more {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(Page {
            objects,
            next_cursor,
        })
    }

    fn delete(key: String) -> Result<(), Error> {
        check_key(&key)?;
        let root = root()?;
        remove_partials_of(&root, &key)?;
        match fs::remove_file(root.join(&key)) {
            Ok(()) => {}
            // Deleting what is not there succeeds: redback retries deletes.
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            // A directory, or a path through a file, is no object either.
            Err(_) if !root.join(&key).is_file() => return Ok(()),
            Err(e) => return Err(io_error("delete", &key, e)),
        }
        // Best effort: drop directories the delete left empty.
        let mut dir = Path::new(&key).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            if fs::remove_dir(root.join(d)).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn presign_get(
        key: String,
        _ttl_seconds: u32,
        _network: Network,
    ) -> Result<Option<String>, Error> {
        // A directory has no links of its own: redback serves the download.
        Self::stat(key).map(|_| None)
    }
}

pub struct FileUpload {
    key: String,
    temp: PathBuf,
    final_path: PathBuf,
    /// `None` once finished or aborted.
    file: RefCell<Option<File>>,
    finished: Cell<bool>,
}

impl GuestUpload for FileUpload {
    fn write(&self, chunk: Vec<u8>) -> Result<(), Error> {
        let mut file = self.file.borrow_mut();
        let file = file
            .as_mut()
            .ok_or_else(|| Error::NotFound(format!("upload of {:?} is closed", self.key)))?;
        // The contract: a `write` that fails with `unavailable` took none of
        // its chunk (redback sends it again), so a failed one is rolled back.
        let start = file
            .stream_position()
            .map_err(|e| io_error("find the end of", &self.key, e))?;
        let Err(e) = file.write_all(&chunk) else {
            return Ok(());
        };
        let failed = io_error("write", &self.key, e);
        match file
            .set_len(start)
            .and_then(|()| file.seek(SeekFrom::Start(start)))
        {
            Ok(_) => Err(failed),
            // Not rolled back: the upload cannot go on, so not `unavailable`.
            Err(e) => Err(Error::Other(format!(
                "cannot roll back a failed write of {:?}: {e}",
                self.key
            ))),
        }
    }

    fn finish(&self) -> Result<ObjectMeta, Error> {
        let file = self.file.borrow_mut().take();
        let file =
            file.ok_or_else(|| Error::NotFound(format!("upload of {:?} is closed", self.key)))?;
        // Durable before visible: sync the data, then rename into place.
        file.sync_all()
            .map_err(|e| io_error("sync", &self.key, e))?;
        drop(file);
        if let Some(parent) = self.final_path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| io_error("create the directories of", &self.key, e))?;
        }
        fs::rename(&self.temp, &self.final_path).map_err(|e| io_error("finish", &self.key, e))?;
        self.finished.set(true);
        let metadata =
            fs::metadata(&self.final_path).map_err(|e| io_error("stat", &self.key, e))?;
        Ok(meta(self.key.clone(), &metadata))
    }

    fn abort(&self) -> Result<(), Error> {
        self.file.borrow_mut().take();
        if !self.finished.get() {
            // Already gone is fine: abort may be called twice.
            let _ = fs::remove_file(&self.temp);
        }
        Ok(())
    }
}

impl Drop for FileUpload {
    /// Dropped without `finish`: the partial data must not stay.
    fn drop(&mut self) {
        let _ = self.abort();
    }
}

pub struct FileDownload {
    key: String,
    file: RefCell<File>,
    /// Bytes left in the requested range.
    remaining: Cell<u64>,
}

impl GuestDownload for FileDownload {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let wanted = u64::from(max_bytes).min(self.remaining.get()) as usize;
        let mut buf = vec![0; wanted];
        let read = self
            .file
            .borrow_mut()
            .read(&mut buf)
            .map_err(|e| io_error("read", &self.key, e))?;
        buf.truncate(read);
        // A read of 0 bytes means the file ended early: end the stream.
        self.remaining.set(if read == 0 {
            0
        } else {
            self.remaining.get() - read as u64
        });
        Ok(buf)
    }
}
