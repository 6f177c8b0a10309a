//! Feeds arbitrary bytes to every parser of a key or recipient that a user
//! hands tic: symmetric key files, age recipients and identity files,
//! Ed25519 PEM keys, and externally made signature files. Errors are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tic_format::{crypto, sign};

fuzz_target!(|data: &[u8]| {
    let _ = crypto::read_symmetric_key_file(data);
    let _ = sign::read_signature_file(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crypto::parse_recipient(text);
        let _ = crypto::parse_identity_file(text);
        let _ = sign::parse_private_key_pem(text);
        let _ = sign::parse_public_key_pem(text);
    }
});
