//! Zoe's persisted state and its checkpoint store.
//!
//! A checkpoint is one pretty RON file holding the whole [`model::State`], numbered and written
//! atomically (temp file, fsync, rename, fsync the directory). Files only grow in number; the
//! newest is what a master loads. This crate knows nothing of HTTP or Docker.

pub mod archive;
pub mod codec;
pub mod model;
pub mod store;

pub use archive::{Archive, ArchiveFilter, ArchiveIndex, Archived};
pub use codec::{decode, encode, is_dns_label, validate, Encoder, LoadError};
pub use model::*;
pub use store::{
    free_space, private_dir, remove_temp_files, write_atomic, write_new, CheckpointFile, StateLock, Store,
};
