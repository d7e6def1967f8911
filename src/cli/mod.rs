//! The `zoe` command-line client (being written).
