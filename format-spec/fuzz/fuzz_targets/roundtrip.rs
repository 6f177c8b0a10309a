//! Encodes arbitrary tensor data with every lossless codec the compiler may
//! pick, and with plane layouts the fuzzer makes up, then decodes it: the
//! bytes must come back exactly. Panics and mismatches are bugs.
//!
//! Input layout: byte 0 picks the element size (bits 0-1), float or not
//! (bit 2), expansion (bit 3) and rotation of the made-up layout (bit 4);
//! byte 1 is the number of made-up plane widths, which follow; the rest is
//! the data. With expansion, the first two data bytes give a length (in
//! units of 512 elements, up to a little over two tiles) and the
//! rest is a pattern repeated to that length, every repeat perturbed, so
//! that whole tiles, the 32 lanes and the fast decoder are reached from
//! short inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tic_format::codec::{
    candidates, choose_codec, decode_chunk, encode_chunk, CodecSpec, PlanesParams,
};

fn expand(rest: &[u8], elem: usize) -> Vec<u8> {
    let [a, b, pattern @ ..] = rest else {
        return rest.to_vec();
    };
    if pattern.is_empty() {
        return Vec::new();
    }
    let elems = (usize::from(u16::from_le_bytes([*a, *b])) % 300) * 512;
    let len = elems * elem;
    let mut out = Vec::with_capacity(len);
    let mut round = 0u8;
    while out.len() < len {
        let take = pattern.len().min(len - out.len());
        // Each repeat flips a few bits so the data is not purely periodic.
        out.extend(pattern[..take].iter().enumerate().map(|(i, &x)| {
            if i % 251 == usize::from(round) % 251 {
                x ^ round
            } else {
                x
            }
        }));
        round = round.wrapping_add(1);
    }
    out
}

fn check(spec: &CodecSpec, elem: usize, data: &[u8]) {
    let stored = match encode_chunk(spec, elem, data) {
        Ok(s) => s,
        // Made-up layouts may be invalid; the compiler's own picks never are.
        Err(e) => panic!("encoding with {} failed: {e}", spec.name()),
    };
    let mut out = vec![0u8; data.len()];
    if let Err(e) = decode_chunk(spec, elem, &stored, &mut out) {
        panic!("decoding {} failed: {e}", spec.name());
    }
    assert!(out == data, "{} did not round trip", spec.name());
}

fuzz_target!(|input: &[u8]| {
    let [flags, nw, rest @ ..] = input else {
        return;
    };
    let elem = [1usize, 2, 4, 8][usize::from(flags & 3)];
    let float = flags & 4 != 0;
    let nw = usize::from(*nw % 9).min(rest.len());
    let (widths, rest) = rest.split_at(nw);
    let data = if flags & 8 != 0 {
        expand(rest, elem)
    } else {
        rest.to_vec()
    };
    let data = &data[..data.len() / elem * elem];

    let mut specs: Vec<CodecSpec> = candidates(elem, float).iter().map(|c| c.spec()).collect();
    specs.push(choose_codec(elem, float, data, 1 << 16));
    let made_up = PlanesParams::new(flags & 16 != 0, widths);
    if made_up.validate(elem).is_ok() {
        specs.push(made_up.spec());
    }
    for spec in &specs {
        check(spec, elem, data);
    }
});
