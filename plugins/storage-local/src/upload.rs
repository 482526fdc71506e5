//! One upload: bytes go to a uniquely named file under `.redback-partial/`,
//! written in place at a tracked offset (no buffering, no copy), and `finish`
//! renames it onto the key so the object appears whole or not at all. Owns
//! the cleanup of that temp file on `abort` and on drop.

use std::cell::RefCell;
use std::rc::Rc;

use wasip2::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};

use crate::config::Config;
use crate::errors::fs_error;
use crate::exports::redback::storage::backend::GuestUpload;
use crate::keys::{PARTIAL_DIR, partial_tag, quoted};
use crate::object_meta;
use crate::redback::storage::types::{Error, ObjectMeta};

/// A concurrent `delete` may remove the parent directories we just created
/// (it prunes empty ones) before our rename lands; trying again recreates
/// them.
const RENAME_ATTEMPTS: usize = 3;

pub(crate) struct LocalUpload {
    config: Rc<Config>,
    key: String,
    /// Path of the temp file relative to the root.
    temp_path: String,
    state: RefCell<State>,
}

struct State {
    /// `None` once `finish` or `abort` has started: no more writes.
    file: Option<Descriptor>,
    written_bytes: u64,
    /// The temp file may still exist and must be removed if we do not
    /// finish (a `finish` that failed before its rename leaves it too).
    temp_exists: bool,
}

impl LocalUpload {
    pub(crate) fn start(config: Rc<Config>, key: String) -> Result<Self, Error> {
        match config.root.create_directory_at(PARTIAL_DIR) {
            Ok(()) | Err(ErrorCode::Exist) => {}
            Err(code) => {
                return Err(fs_error(
                    "create the partial-upload directory for",
                    &key,
                    code,
                ));
            }
        }
        // Tagged with the key (so `delete` finds it) and random after that:
        // several instances may upload the same key at once, and the last
        // `finish` simply wins.
        let temp_path = format!(
            "{PARTIAL_DIR}/{}{:016x}{:016x}.part",
            partial_tag(&key),
            wasip2::random::random::get_random_u64(),
            wasip2::random::random::get_random_u64()
        );
        let file = config
            .root
            .open_at(
                PathFlags::empty(),
                &temp_path,
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE,
                DescriptorFlags::READ | DescriptorFlags::WRITE,
            )
            .map_err(|code| fs_error("create the partial file for", &key, code))?;
        Ok(Self {
            config,
            key,
            temp_path,
            state: RefCell::new(State {
                file: Some(file),
                written_bytes: 0,
                temp_exists: true,
            }),
        })
    }

    fn closed_error(&self) -> Error {
        Error::NotFound(format!(
            "the upload of {} was already finished or aborted",
            quoted(&self.key)
        ))
    }

    /// Creates each missing parent directory of the key, shallowest first.
    fn create_parents(&self) -> Result<(), Error> {
        for (slash, _) in self.key.match_indices('/') {
            match self.config.root.create_directory_at(&self.key[..slash]) {
                Ok(()) | Err(ErrorCode::Exist) => {}
                Err(code) => return Err(fs_error("create the directories of", &self.key, code)),
            }
        }
        Ok(())
    }

    fn move_into_place(&self) -> Result<(), Error> {
        let root = &self.config.root;
        let mut attempt = 1;
        loop {
            self.create_parents()?;
            match root.rename_at(&self.temp_path, root, &self.key) {
                Ok(()) => return Ok(()),
                Err(ErrorCode::NoEntry) if attempt < RENAME_ATTEMPTS => attempt += 1,
                Err(code) => {
                    return Err(fs_error(
                        "move the finished upload into place at",
                        &self.key,
                        code,
                    ));
                }
            }
        }
    }

    /// Makes the rename itself durable. Not every filesystem or host can
    /// sync a directory, and the data is already synced, so failures are
    /// ignored.
    fn sync_parent_dir(&self) {
        let root = &self.config.root;
        match self.key.rfind('/') {
            None => {
                let _ = root.sync();
            }
            Some(slash) => {
                if let Ok(dir) = root.open_at(
                    PathFlags::empty(),
                    &self.key[..slash],
                    OpenFlags::DIRECTORY,
                    DescriptorFlags::READ,
                ) {
                    let _ = dir.sync();
                }
            }
        }
    }

    fn remove_temp(&self, state: &mut State) {
        state.file = None;
        if !state.temp_exists {
            return;
        }
        match self.config.root.unlink_file_at(&self.temp_path) {
            Ok(()) | Err(ErrorCode::NoEntry) => state.temp_exists = false,
            // Hidden from list and stat either way; the next `configure`
            // after 24 h sweeps it.
            Err(code) => eprintln!(
                "storage-local: cannot remove partial upload {} of {}: {}",
                self.temp_path,
                quoted(&self.key),
                code.name()
            ),
        }
    }
}

impl GuestUpload for LocalUpload {
    fn write(&self, chunk: Vec<u8>) -> Result<(), Error> {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        let Some(file) = &state.file else {
            return Err(self.closed_error());
        };
        // Writes are positional: a failed chunk is rolled back by going
        // back to where it started, so the host's second try of the same
        // chunk overwrites whatever part of it landed (the contract: a
        // `write` that fails with `unavailable` took none of the chunk).
        let start = state.written_bytes;
        let mut at = start;
        let mut rest = chunk.as_slice();
        while !rest.is_empty() {
            let written = file
                .write(rest, at)
                .map_err(|code| fs_error("write the upload of", &self.key, code))?;
            if written == 0 {
                return Err(Error::Other(format!(
                    "cannot write the upload of {}: the filesystem accepted 0 bytes",
                    quoted(&self.key)
                )));
            }
            at += written;
            // `written` <= rest.len(), which is a usize.
            rest = &rest[written as usize..];
        }
        state.written_bytes = at;
        Ok(())
    }

    fn finish(&self) -> Result<ObjectMeta, Error> {
        let mut state = self.state.borrow_mut();
        let Some(file) = state.file.take() else {
            return Err(self.closed_error());
        };
        // A chunk that failed and was not sent again may have left bytes
        // past the last good write: they are not part of the object.
        file.set_size(state.written_bytes)
            .map_err(|code| fs_error("trim the upload of", &self.key, code))?;
        if self.config.fsync {
            file.sync()
                .map_err(|code| fs_error("sync the upload of", &self.key, code))?;
        }
        // Stat the descriptor, not the key: another instance may replace the
        // key right after our rename, and we report what we stored.
        let stat = file
            .stat()
            .map_err(|code| fs_error("stat the upload of", &self.key, code))?;
        drop(file);
        self.move_into_place()?;
        state.temp_exists = false;
        if self.config.fsync {
            self.sync_parent_dir();
        }
        Ok(object_meta(self.key.clone(), &stat))
    }

    fn abort(&self) -> Result<(), Error> {
        self.remove_temp(&mut self.state.borrow_mut());
        Ok(())
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        let mut state = std::mem::replace(
            self.state.get_mut(),
            State {
                file: None,
                written_bytes: 0,
                temp_exists: false,
            },
        );
        self.remove_temp(&mut state);
    }
}
