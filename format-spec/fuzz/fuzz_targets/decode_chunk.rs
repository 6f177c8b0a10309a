//! Decodes arbitrary bytes as a stored chunk of every codec and element
//! size: errors are fine, panics and out-of-bounds writes are not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tic_format::codec::{decode_chunk, CodecSpec};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // First byte: element size; next: params length; then params; rest: stream.
    let elem = [1usize, 2, 4, 8][(data[0] & 3) as usize];
    let plen = (data[1] as usize % 12).min(data.len() - 2);
    let params = data[2..2 + plen].to_vec();
    let stream = &data[2 + plen..];
    for id in [0u16, 1, 2, 3] {
        let spec = CodecSpec {
            id,
            params: params.clone(),
        };
        if spec.validate(elem).is_ok() {
            // Original length: a few plausible sizes, bounded; 70 000
            // elements is two tiles, where the 32-lane fast decoder runs
            // (the codec vector u8-two-tiles is a seed of that size).
            for n in [0usize, 1, 31, 1000, 70_000] {
                let mut out = vec![0u8; n * elem];
                let _ = decode_chunk(&spec, elem, stream, &mut out);
            }
        }
    }
});
