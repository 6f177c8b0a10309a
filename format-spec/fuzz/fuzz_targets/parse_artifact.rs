//! Feeds arbitrary bytes to every parser an artifact goes through: the
//! preamble, the header, the signature section, the recipients section and
//! the safetensors header parser. None may panic or allocate what a length
//! field merely claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tic_format::header::{Header, Preamble, PREAMBLE_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() >= PREAMBLE_LEN {
        let pre: [u8; PREAMBLE_LEN] = data[..PREAMBLE_LEN].try_into().unwrap();
        let _ = Preamble::parse(&pre, data.len() as u64);
    }
    if let Ok(h) = Header::parse(data) {
        // A header that parses re-encodes to the same bytes.
        assert_eq!(h.to_bytes(), data);
    }
    let _ = tic_format::sign::SignatureSection::parse(data);
    let _ = tic_format::crypto::RecipientsSection::parse(data);
    let _ = tic_format::safetensors::parse_header(data, data.len() as u64);
});
