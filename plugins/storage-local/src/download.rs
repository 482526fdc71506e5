//! One ranged download: reads the open file with positioned `read(len,
//! offset)` calls, so a concurrent replacement of the key (a rename onto it)
//! does not mix two versions into one stream.

use std::cell::Cell;

use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, OpenFlags, PathFlags,
};

use crate::config::Config;
use crate::errors::fs_error;
use crate::exports::redback::storage::backend::GuestDownload;
use crate::keys::quoted;
use crate::redback::storage::types::Error;

pub(crate) struct LocalDownload {
    file: Descriptor,
    key: String,
    position_bytes: Cell<u64>,
    /// One past the last byte to return: the end of the requested range,
    /// or of the file as it was when opened.
    end_bytes: u64,
}

impl LocalDownload {
    pub(crate) fn open(
        config: &Config,
        key: String,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Self, Error> {
        let file = config
            .root
            .open_at(
                PathFlags::empty(),
                &key,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(|code| fs_error("open for reading", &key, code))?;
        let stat = file.stat().map_err(|code| fs_error("stat", &key, code))?;
        if stat.type_ != DescriptorType::RegularFile {
            return Err(Error::NotFound(format!(
                "cannot open for reading {}: it is a directory, not an object",
                quoted(&key)
            )));
        }
        let end_bytes = stat
            .size
            .min(offset.saturating_add(length.unwrap_or(u64::MAX)));
        Ok(Self {
            file,
            key,
            position_bytes: Cell::new(offset),
            end_bytes,
        })
    }
}

impl GuestDownload for LocalDownload {
    fn read(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        let position = self.position_bytes.get();
        if position >= self.end_bytes {
            return Ok(Vec::new());
        }
        let wanted = u64::from(max_bytes).min(self.end_bytes - position);
        let (mut bytes, _at_end) = self
            .file
            .read(wanted, position)
            .map_err(|code| fs_error("read", &self.key, code))?;
        if bytes.is_empty() {
            // The file shrank under us (someone truncated it in place):
            // end the stream rather than spin.
            self.position_bytes.set(self.end_bytes);
            return Ok(bytes);
        }
        // A reply longer than asked would fail the whole download.
        bytes.truncate(wanted as usize);
        self.position_bytes.set(position + bytes.len() as u64);
        Ok(bytes)
    }
}
