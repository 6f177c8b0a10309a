//! Codec bitstreams (see format-spec/CODECS.md). Work in progress.
