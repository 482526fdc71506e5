//! `list`: a depth-first walk of the directory tree that yields keys in
//! ascending byte order of the full key, starts at the directory part of the
//! prefix, and skips every subtree that holds only keys at or before the
//! cursor. The cursor is a key, not a position, so it survives inserts and
//! deletes between pages.
//!
//! Why sorting each directory is enough: inside one directory, a
//! subdirectory `d` is sorted as `d/`, the prefix of all its keys. A file
//! name never contains `/`, and two different `x/` never prefix each other,
//! so comparing an entry with `d/` already decides how it compares with
//! every key under `d/`. (Sorting bare names would be wrong: `a-c` < `a/b`
//! because `-` < `/`, but `a` < `a-c`.)

use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, DescriptorType, ErrorCode, OpenFlags, PathFlags,
};

use crate::config::Config;
use crate::errors::fs_error;
use crate::keys::{MAX_KEY_BYTES, PARTIAL_DIR, check_prefix, prefix_dir_can_match};
use crate::object_meta;
use crate::redback::storage::types::{Error, ObjectMeta, Page};

pub(crate) fn list(
    config: &Config,
    prefix: &str,
    cursor: Option<&str>,
    max_keys: u32,
) -> Result<Page, Error> {
    check_prefix(prefix)?;
    let empty = Page {
        objects: Vec::new(),
        next_cursor: None,
    };
    // `a/b/c` is walked from `a/b/`, keeping only names that start with `c`.
    let (dir_key, name_prefix) = match prefix.rfind('/') {
        Some(slash) => prefix.split_at(slash + 1),
        None => ("", prefix),
    };
    if !prefix_dir_can_match(dir_key) {
        return Ok(empty);
    }
    let opened;
    let start = if dir_key.is_empty() {
        &config.root
    } else {
        match open_dir(&config.root, &dir_key[..dir_key.len() - 1]) {
            Ok(dir) => {
                opened = dir;
                &opened
            }
            Err(ErrorCode::NoEntry | ErrorCode::NotDirectory) => return Ok(empty),
            Err(code) => return Err(fs_error("list", prefix, code)),
        }
    };
    let mut walk = Walk {
        cursor,
        // The host asks for 1 to 1,000; a page of 0 could never advance.
        limit: max_keys.max(1) as usize,
        objects: Vec::new(),
        more: false,
    };
    walk.visit(start, dir_key, name_prefix)?;
    let next_cursor = if walk.more {
        walk.objects.last().map(|meta| meta.key.clone())
    } else {
        None
    };
    Ok(Page {
        objects: walk.objects,
        next_cursor,
    })
}

struct Walk<'a> {
    cursor: Option<&'a str>,
    limit: usize,
    objects: Vec<ObjectMeta>,
    /// Set when an object past the page was seen: there is a next page.
    more: bool,
}

struct Entry {
    /// The name, with `/` appended for a directory: the sort key.
    sort_name: String,
    is_dir: bool,
}

impl Walk<'_> {
    /// Walks `dir`, whose keys all start with `dir_key` (`""` or ending in
    /// `/`), keeping entries whose name starts with `name_prefix`.
    fn visit(&mut self, dir: &Descriptor, dir_key: &str, name_prefix: &str) -> Result<(), Error> {
        let mut entries = read_entries(dir, dir_key, name_prefix)?;
        entries.sort_unstable_by(|a, b| a.sort_name.as_bytes().cmp(b.sort_name.as_bytes()));
        for entry in entries {
            let key = format!("{dir_key}{}", entry.sort_name);
            let name = entry.sort_name.trim_end_matches('/');
            if entry.is_dir {
                if self.subtree_is_before_cursor(&key) {
                    continue;
                }
                match open_dir(dir, name) {
                    Ok(sub) => self.visit(&sub, &key, "")?,
                    // Removed since we read the directory (a concurrent delete).
                    Err(ErrorCode::NoEntry | ErrorCode::NotDirectory) => {}
                    Err(code) => return Err(fs_error("list", &key, code)),
                }
            } else {
                if self.cursor.is_some_and(|cursor| key.as_str() <= cursor) {
                    continue;
                }
                if self.objects.len() == self.limit {
                    self.more = true;
                    return Ok(());
                }
                match dir.stat_at(PathFlags::empty(), name) {
                    Ok(stat) if stat.type_ == DescriptorType::RegularFile => {
                        self.objects.push(object_meta(key, &stat));
                    }
                    Ok(_) | Err(ErrorCode::NoEntry) => {}
                    Err(code) => return Err(fs_error("stat", &key, code)),
                }
            }
            if self.more {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Every key under `dir_key` (ending in `/`) is at or before the cursor
    /// when `dir_key` sorts before it without being its prefix.
    fn subtree_is_before_cursor(&self, dir_key: &str) -> bool {
        self.cursor
            .is_some_and(|cursor| dir_key < cursor && !cursor.starts_with(dir_key))
    }
}

fn read_entries(dir: &Descriptor, dir_key: &str, name_prefix: &str) -> Result<Vec<Entry>, Error> {
    let stream = dir
        .read_directory()
        .map_err(|code| fs_error("list", dir_key, code))?;
    let mut entries = Vec::new();
    while let Some(entry) = stream
        .read_directory_entry()
        .map_err(|code| fs_error("list", dir_key, code))?
    {
        let name = entry.name;
        // Partial uploads are never objects; names with `\` or NUL, or too
        // long, could not be keys and would fail `stat`.
        if !name.starts_with(name_prefix)
            || name == "."
            || name == ".."
            || (dir_key.is_empty() && name == PARTIAL_DIR)
            || name.contains(['\\', '\0'])
            || dir_key.len() + name.len() > MAX_KEY_BYTES
        {
            continue;
        }
        let type_ = match entry.type_ {
            // Some filesystems do not report the type in the directory.
            DescriptorType::Unknown => match dir.stat_at(PathFlags::empty(), &name) {
                Ok(stat) => stat.type_,
                Err(_) => continue,
            },
            known => known,
        };
        match type_ {
            DescriptorType::Directory => entries.push(Entry {
                sort_name: format!("{name}/"),
                is_dir: true,
            }),
            DescriptorType::RegularFile => entries.push(Entry {
                sort_name: name,
                is_dir: false,
            }),
            // Symlinks, sockets and the like are not objects storage-local wrote.
            _ => {}
        }
    }
    Ok(entries)
}

fn open_dir(parent: &Descriptor, path: &str) -> Result<Descriptor, ErrorCode> {
    parent.open_at(
        PathFlags::empty(),
        path,
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ,
    )
}
