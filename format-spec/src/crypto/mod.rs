//! Encryption constructions (see format-spec/ENCRYPTION.md). Work in progress.
