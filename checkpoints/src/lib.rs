//! Zoe's persisted state and its checkpoint store.
//!
//! A checkpoint is one pretty RON file holding the whole [`model::State`], numbered and written
//! atomically (temp file, fsync, rename, fsync the directory). Files only grow in number; the
//! newest is what a master loads. This crate knows nothing of HTTP or Docker.

pub mod archive;
pub mod codec;
pub mod model;
mod records;
pub mod store;

/// A fresh, empty folder for one test: `<temp>/zoe-<tag>-<pid>`, emptied first.
#[cfg(test)]
pub(crate) fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zoe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub use archive::{Archive, ArchiveFilter, ArchiveIndex, Archived};
pub use codec::{decode, encode, is_dns_label, validate, Encoder, LoadError};
pub use model::*;
pub use store::{
    free_space, private_dir, remove_temp_files, write_atomic, write_new, CheckpointFile, StateLock, Store,
};
