//! Seeds for the cargo-fuzz targets of `format-spec/fuzz/`, written by an
//! ignored test: `cargo test -p tic-format -- --ignored write_fuzz_seeds`
//! fills `format-spec/fuzz/corpus/<target>/` (git-ignored).
//!
//! - `decode_chunk`: real stored chunks of 70 000 elements (two tiles, so
//!   the 32-lane fast decoder runs with real code tables), cut from the
//!   example model's largest tensors and encoded with the chooser's pick;
//! - `roundtrip`: slices of the same tensors, plain and as short patterns
//!   the target expands to a few tiles;
//! - `parse_artifact`: the preamble, header, signature and recipients
//!   sections of the artifact test vectors, and the example's safetensors
//!   headers;
//! - `key_files`: the key files of the artifact test vectors;
//! - `open_artifact`: the signed artifact vector's header and payload.

use std::path::{Path, PathBuf};

use crate::codec::{choose_codec, decode_chunk, encode_chunk};
use crate::header::{Preamble, PREAMBLE_LEN};
use crate::safetensors::{header_len, parse_header};
use crate::DType;

/// Elements per chunk seed: a little over one 65 536-symbol tile.
const SEED_ELEMS: usize = 70_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// An example shard: its file name, its safetensors header bytes, and the
/// data of every tensor of at least [`SEED_ELEMS`] elements with its dtype.
struct Shard {
    name: String,
    st_header: Vec<u8>,
    big: Vec<(DType, Vec<u8>)>,
}

fn example_shards() -> Vec<Shard> {
    let dir = root().join("../examples/model");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "safetensors") {
            continue;
        }
        let b = std::fs::read(&path).unwrap();
        let n = header_len(b[..8].try_into().unwrap(), b.len() as u64).unwrap() as usize;
        let data = &b[8 + n..];
        let tensors = parse_header(&b[8..8 + n], data.len() as u64).unwrap();
        let big = tensors
            .iter()
            .filter(|t| (t.end - t.begin) as usize >= SEED_ELEMS * t.dtype.size())
            .map(|t| (t.dtype, data[t.begin as usize..t.end as usize].to_vec()))
            .collect();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.push(Shard {
            name,
            st_header: b[..8 + n].to_vec(),
            big,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[test]
#[ignore = "writes format-spec/fuzz/corpus/"]
fn write_fuzz_seeds() {
    let mut k = 0;
    for shard in example_shards() {
        let file = &shard.name;
        write(
            "parse_artifact",
            &format!("{file}.header"),
            &shard.st_header,
        );
        for (dtype, data) in shard.big.iter().take(3) {
            let es = dtype.size();
            // The targets' element-size code: 1, 2, 4, 8 bytes = 0..3.
            let code = es.trailing_zeros() as u8;
            let slice = &data[..SEED_ELEMS * es];
            let spec = choose_codec(es, dtype.is_float(), slice, 1 << 16);
            let stored = encode_chunk(&spec, es, slice).unwrap();
            let mut back = vec![0; slice.len()];
            decode_chunk(&spec, es, &stored, &mut back).unwrap();
            assert!(back == slice, "seed chunk {k} does not round trip");
            let mut seed = vec![code, spec.params.len() as u8];
            seed.extend_from_slice(&spec.params);
            seed.extend_from_slice(&stored);
            write("decode_chunk", &format!("chunk-{k}"), &seed);
            // roundtrip: flags = element-size code | float (bit 2), no
            // made-up widths; then the data, or (bit 3) a length in units
            // of 512 elements and a pattern to expand to it.
            let flags = code | 4;
            let mut plain = vec![flags, 0];
            plain.extend_from_slice(&slice[..8192 * es]);
            write("roundtrip", &format!("slice-{k}"), &plain);
            let mut expand = vec![flags | 8, 0, 140, 0];
            expand.extend_from_slice(&slice[..4096]);
            write("roundtrip", &format!("pattern-{k}"), &expand);
            k += 1;
        }
    }
    assert!(
        k > 0,
        "no tensor of {SEED_ELEMS} elements in examples/model"
    );
    let vectors = root().join("test-vectors/artifacts");
    for name in [
        "small-signed.tic",
        "small-encrypted.tic",
        "packed-signed.tic",
    ] {
        let b = std::fs::read(vectors.join(name)).unwrap();
        let pre: &[u8; PREAMBLE_LEN] = b[..PREAMBLE_LEN].try_into().unwrap();
        let p = Preamble::parse(pre, b.len() as u64).unwrap();
        let section = |at: u64, len: u64| &b[at as usize..(at + len) as usize];
        write("parse_artifact", &format!("{name}.preamble"), pre);
        let parts = [
            ("header", p.header_offset(), p.header_len),
            ("signature", p.signature_offset(), p.signature_len),
            ("recipients", p.recipients_offset(), p.recipients_len),
        ];
        for (what, at, len) in parts {
            if len > 0 {
                write(
                    "parse_artifact",
                    &format!("{name}.{what}"),
                    section(at, len),
                );
            }
        }
        if p.recipients_len == 0 {
            // open_artifact: a u32 header length, the header, the payload.
            let mut seed = (p.header_len as u32).to_le_bytes().to_vec();
            seed.extend_from_slice(section(p.header_offset(), p.header_len));
            seed.extend_from_slice(section(p.payload_offset(), p.payload_len));
            write("open_artifact", name, &seed);
        }
    }
    for name in [
        "signing.key",
        "signing.pub",
        "recipient.agekey",
        "recipient.symkey",
    ] {
        write(
            "key_files",
            name,
            &std::fs::read(vectors.join(name)).unwrap(),
        );
    }
}
