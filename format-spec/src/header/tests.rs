//! One test per reader rule of SPEC.md §4 (parsing) and §7 (consistency),
//! each starting from the header of a spec test vector and breaking exactly
//! one rule. A rule is checked both by [`Header::check`] on the struct and
//! by [`Header::parse`] on its encoding, with the same error.

use super::*;
use crate::codec::CodecError;

const SIGNED: &[u8] = include_bytes!("../../test-vectors/artifacts/small-signed.tic");
const ENCRYPTED: &[u8] = include_bytes!("../../test-vectors/artifacts/small-encrypted.tic");

fn header_bytes(artifact: &[u8]) -> &[u8] {
    let pre: &[u8; PREAMBLE_LEN] = artifact[..PREAMBLE_LEN].try_into().unwrap();
    let p = Preamble::parse(pre, artifact.len() as u64).unwrap();
    &artifact[PREAMBLE_LEN..PREAMBLE_LEN + p.header_len as usize]
}

/// The signed vector's header: file 0 `config.json` (a blob, tensor 0),
/// file 1 `model.safetensors` (tensors 1-3: BF16 `layer.weight` in two
/// chunks, F32 `layer.bias`, I64 `position_ids`), five chunks.
fn base() -> Header {
    let h = Header::parse(header_bytes(SIGNED)).unwrap();
    assert_eq!(h.files[0].kind, FileKind::Blob);
    assert_eq!(h.files[1].kind, FileKind::Safetensors);
    assert_eq!(h.tensors[1].name, "layer.weight");
    assert_eq!(h.tensors[1].chunk_count, 2);
    assert_eq!(h.tensors[3].name, "position_ids");
    assert_eq!(h.tensors[3].first_chunk as usize, h.chunks.len() - 1);
    h
}

/// `h` breaks a rule: `check` and `parse` of its bytes both reject it, with
/// the same error, which is returned.
fn rejected(h: &Header) -> FormatError {
    let by_check = h.check().expect_err("check accepted a broken header");
    let by_parse = Header::parse(&h.to_bytes()).expect_err("parse accepted a broken header");
    assert_eq!(by_check.to_string(), by_parse.to_string());
    by_check
}

/// `h` breaks a §7 rule whose message contains `needle`.
fn inconsistent(h: &Header, needle: &str) {
    match rejected(h) {
        FormatError::Inconsistent(m) if m.contains(needle) => {}
        e => panic!("expected an inconsistency about {needle:?}, got: {e}"),
    }
}

/// Byte offsets in `h.to_bytes()` of file 0's `kind` and path, tensor 0's
/// `lossy` flag and tensor 1's name (tensor 0, the blob, has none).
struct Offsets {
    file_kind: usize,
    file_path: usize,
    tensor_name: usize,
    tensor_lossy: usize,
}

fn offsets(h: &Header) -> Offsets {
    let enc = match h.encryption {
        Encryption::None => 0,
        Encryption::ChaCha20Poly1305 { .. } => 64,
    };
    let files = 1 + h.creator.len() + 8 + 1 + enc + 4;
    let file_len = |f: &FileEntry| 2 + f.path.len() + 1 + 8 + 32 + 4 + f.st_header.len() + 8;
    let tensors = files + h.files.iter().map(file_len).sum::<usize>() + 4;
    let t = &h.tensors[0];
    assert!(t.lossy.is_none());
    // name, dtype and rank, shape, codec id and params, then orig_len,
    // sha256, first_chunk and chunk_count before the lossy flag.
    let lossy = 2 + t.name.len() + 2 + 8 * t.shape.len() + 4 + t.codec.params.len() + 48;
    Offsets {
        file_kind: files + 2 + h.files[0].path.len(),
        file_path: files + 2,
        tensor_name: tensors + lossy + 1 + 2,
        tensor_lossy: tensors + lossy,
    }
}

#[test]
fn vector_headers_parse_and_encode_to_the_same_bytes() {
    for artifact in [SIGNED, ENCRYPTED] {
        let bytes = header_bytes(artifact);
        let h = Header::parse(bytes).unwrap();
        assert_eq!(h.to_bytes(), bytes);
        h.check().unwrap();
    }
}

#[test]
fn every_truncation_and_an_appended_byte_are_rejected() {
    let bytes = header_bytes(SIGNED);
    for n in 0..bytes.len() {
        let e = Header::parse(&bytes[..n]).expect_err("a truncated header parsed");
        assert!(
            matches!(e, FormatError::Truncated { .. }),
            "cut at {n}: {e}"
        );
    }
    let mut long = bytes.to_vec();
    long.push(0);
    let e = Header::parse(&long).unwrap_err();
    assert!(
        matches!(e, FormatError::TrailingBytes { count: 1, .. }),
        "{e}"
    );
}

#[test]
fn counts_are_checked_against_the_bytes_left_before_allocating() {
    let h = base();
    let bytes = h.to_bytes();
    let at = offsets(&h).file_path - 6;
    for (count, limit) in [(65_536u32, false), (65_537, true), (u32::MAX, true)] {
        let mut b = bytes.clone();
        b[at..at + 4].copy_from_slice(&count.to_le_bytes());
        match Header::parse(&b).unwrap_err() {
            FormatError::LimitExceeded { what, .. } if limit => assert_eq!(what, "file count"),
            FormatError::Truncated { field, .. } if !limit => assert_eq!(field, "file count"),
            e => panic!("file count {count}: {e}"),
        }
    }
}

#[test]
fn unknown_encryption_file_kind_and_lossy_values_are_rejected() {
    let h = base();
    let o = offsets(&h);
    let at_encryption = 1 + h.creator.len() + 8;
    for (at, what) in [
        (at_encryption, "encryption algorithm"),
        (o.file_kind, "file kind"),
        (o.tensor_lossy, "lossy flag"),
    ] {
        let mut b = h.to_bytes();
        b[at] = 2;
        match Header::parse(&b).unwrap_err() {
            FormatError::UnknownValue { what: w, value: 2 } => assert_eq!(w, what),
            e => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn strings_must_be_utf8() {
    let h = base();
    let o = offsets(&h);
    for (at, field) in [
        (1, "creator"),
        (o.file_path, "path"),
        (o.tensor_name, "tensor name"),
    ] {
        let mut b = h.to_bytes();
        b[at] = 0xff;
        match Header::parse(&b).unwrap_err() {
            FormatError::BadUtf8 { field: f, .. } => assert_eq!(f, field),
            e => panic!("{field}: {e}"),
        }
    }
}

#[test]
fn ignorable_extensions_are_kept_and_critical_or_unknown_flags_rejected() {
    let mut h = base();
    h.extensions.push(Extension {
        kind: 7,
        critical: false,
        data: b"later".to_vec(),
    });
    let bytes = h.to_bytes();
    assert_eq!(Header::parse(&bytes).unwrap(), h);
    // The flags byte sits before the data's u32 length and the 5 data bytes.
    let flags = bytes.len() - 5 - 4 - 1;
    for (v, critical) in [(1u8, true), (2, false)] {
        let mut b = bytes.clone();
        b[flags] = v;
        match Header::parse(&b).unwrap_err() {
            FormatError::UnknownCriticalExtension { kind: 7 } if critical => {}
            FormatError::UnknownValue {
                what: "extension flags",
                value: 2,
            } if !critical => {}
            e => panic!("flags {v}: {e}"),
        }
    }
}

#[test]
fn unsafe_and_duplicate_paths_are_rejected() {
    let mut h = base();
    h.files[0].path = "../config.json".into();
    assert!(matches!(rejected(&h), FormatError::UnsafePath { .. }));
    let mut h = base();
    h.files[0].path = "model.safetensors/config.json".into();
    assert!(matches!(rejected(&h), FormatError::DuplicatePath { .. }));
}

#[test]
fn rule_1_files_own_consecutive_runs_of_tensors() {
    let mut h = base();
    h.files[1].first_tensor += 1;
    inconsistent(&h, "starts at tensor 2 but 1 was expected");
    let mut h = base();
    h.files[1].tensor_count += 1;
    inconsistent(&h, "claims tensors past the end");
    let mut h = base();
    h.files[1].tensor_count -= 1;
    h.files[1].size -= h.tensors[3].orig_len;
    inconsistent(&h, "some tensors belong to no file");
}

#[test]
fn rule_2_blob_entries_and_safetensors_headers() {
    let blob_rule = "must have exactly one unnamed U8 entry of shape [size]";
    let mut h = base();
    h.tensors[0].name = "x".into();
    inconsistent(&h, blob_rule);
    let mut h = base();
    h.tensors[0].dtype = DType::I8;
    inconsistent(&h, blob_rule);
    let mut h = base();
    h.tensors[0].shape.insert(0, 1);
    inconsistent(&h, blob_rule);
    let mut h = base();
    h.files[0].st_header = vec![0; 8];
    h.files[0].size += 8;
    inconsistent(&h, blob_rule);

    let mut h = base();
    h.files[1].size -= h.files[1].st_header.len() as u64 - 7;
    h.files[1].st_header.truncate(7);
    inconsistent(&h, "has no header bytes");
    let mut h = base();
    h.files[1].st_header[0] ^= 8;
    inconsistent(&h, "length prefix says");
    let mut h = base();
    h.tensors[3].name = h.tensors[2].name.clone();
    inconsistent(&h, "repeats in file");
}

#[test]
fn rule_3_file_size_is_header_plus_tensors() {
    let mut h = base();
    h.files[1].size += 1;
    inconsistent(&h, "has size");
    // Tensor lengths whose sum passes u64 (found by the parse_artifact
    // fuzzer: the message's own sum overflowed and panicked).
    let mut h = base();
    h.tensors[1].orig_len = u64::MAX - 8;
    inconsistent(&h, "add up to more than 2^64 bytes");
}

#[test]
fn rule_4_shapes_codecs_and_lossy_records() {
    let mut h = base();
    h.tensors[1].shape = vec![u64::MAX, 2];
    inconsistent(&h, "shape product overflows");
    let mut h = base();
    h.tensors[1].shape = vec![256, 321];
    inconsistent(&h, "does not make");
    // A rank-0 tensor has one element.
    let mut h = base();
    let bias = h.tensors[2].first_chunk as usize;
    h.tensors[2].shape = vec![];
    inconsistent(&h, "does not make");
    h.tensors[2].orig_len = 4;
    h.chunks[bias].orig_len = 4;
    h.files[1].size -= 28;
    h.check().unwrap();
    // Packed dtypes: 4-byte units become 1-byte ones, and the element
    // count times the bits must fill whole bytes: 4 bytes hold 8 F4 or
    // (16/3 of) F6 elements.
    h.tensors[2].codec = crate::codec::CodecSpec::raw();
    for (dtype, shape, ok) in [
        (DType::F4, vec![2, 4], true),
        (DType::F4, vec![7], false),
        (DType::F6E2M3, vec![5], false),
        (DType::F6E3M2, vec![4], false),
        (DType::F8E4M3Fnuz, vec![4], true),
    ] {
        h.tensors[2].dtype = dtype;
        h.tensors[2].shape = shape;
        if ok {
            h.check().unwrap();
        } else {
            inconsistent(&h, "does not make");
        }
    }
    // A chunk of a packed tensor may end inside an element: 3 bytes of F6
    // are 4 elements, and the tensor's first chunk is not a multiple of 3
    // bytes. (Its last chunk loses a byte to make the whole a multiple.)
    let mut h = base();
    let w = h.tensors[1].first_chunk as usize;
    let cut = h.tensors[1].orig_len % 3;
    h.chunks[w + 1].orig_len -= cut;
    h.tensors[1].orig_len -= cut;
    h.files[1].size -= cut;
    h.tensors[1].dtype = DType::F6E2M3;
    h.tensors[1].shape = vec![h.tensors[1].orig_len / 3 * 4];
    h.tensors[1].codec = crate::codec::CodecSpec::raw();
    assert_ne!(
        h.chunks[w].orig_len % 3,
        0,
        "{} bytes",
        h.chunks[w].orig_len
    );
    h.check().unwrap();

    let mut h = base();
    h.tensors[1].codec.id = 99;
    assert!(matches!(
        rejected(&h),
        FormatError::Codec {
            source: CodecError::UnknownCodec { id: 99 },
            ..
        }
    ));
    let mut h = base();
    h.tensors[1].codec.params = vec![1, 2, 9, 8];
    assert!(matches!(
        rejected(&h),
        FormatError::Codec {
            source: CodecError::BadParams { .. },
            ..
        }
    ));
    let mut h = base();
    h.tensors[1].lossy = Some(LossyRecord {
        bound_kind: 1,
        bound: 0.01,
        max_abs: 0.0,
        max_rel: 0.0,
        mean_rel: 0.0,
        rms_rel: 0.0,
    });
    inconsistent(&h, "lossy record must be present exactly when");
}

#[test]
fn rule_5_tensors_own_consecutive_runs_of_whole_chunks() {
    let mut h = base();
    h.tensors[2].first_chunk += 1;
    inconsistent(&h, "starts at chunk");
    let w = base().tensors[1].first_chunk as usize;
    for bad in [0, 3] {
        let mut h = base();
        h.chunks[w].orig_len = bad;
        inconsistent(&h, "empty or not whole units");
    }
    let mut h = base();
    h.chunks[w].orig_len -= 2;
    inconsistent(&h, "its chunks decode to");
    // Chunk lengths whose sum passes u64 (found by the parse_artifact
    // fuzzer, like the file sizes of rule 3).
    let mut h = base();
    h.chunks[w].orig_len = u64::MAX - 1;
    h.chunks[w + 1].orig_len = u64::MAX - 1;
    inconsistent(&h, "decode to more than 2^64 bytes");

    // A chunk over 64 MiB, in a blob whose sizes all agree.
    let mut h = base();
    let big = (64 << 20) + 1;
    h.files[0].size = big;
    h.tensors[0].shape = vec![big];
    h.tensors[0].orig_len = big;
    h.chunks[h.tensors[0].first_chunk as usize].orig_len = big;
    match rejected(&h) {
        FormatError::LimitExceeded { what, .. } => assert_eq!(what, "chunk original length"),
        e => panic!("{e}"),
    }
}

#[test]
fn an_empty_tensor_has_no_chunk_and_starts_at_the_running_count() {
    // position_ids becomes empty: its chunk, the last, goes.
    let mut h = base();
    let last = h.chunks.pop().unwrap();
    h.payload_len -= last.stored_len;
    h.files[1].size -= h.tensors[3].orig_len;
    let t = &mut h.tensors[3];
    (t.shape, t.orig_len, t.chunk_count) = (vec![1, 0], 0, 0);
    t.codec = crate::codec::CodecSpec::raw();
    h.check().unwrap();
    assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    h.tensors[3].first_chunk = 0;
    inconsistent(&h, "starts at chunk 0");
}

#[test]
fn rule_6_the_chunks_tile_the_payload() {
    let mut h = base();
    h.chunks[1].offset += 1;
    inconsistent(&h, "payload offset");
    let mut h = base();
    h.payload_len += 1;
    inconsistent(&h, "the chunks fill");
    let mut h = base();
    let extra = (129 << 20) + 1 - h.chunks.last().unwrap().stored_len;
    h.chunks.last_mut().unwrap().stored_len += extra;
    h.payload_len += extra;
    match rejected(&h) {
        FormatError::LimitExceeded { what, .. } => assert_eq!(what, "chunk stored length"),
        e => panic!("{e}"),
    }
    // Encrypted chunks hold at least a tag.
    let mut h = Header::parse(header_bytes(ENCRYPTED)).unwrap();
    let c = h.chunks.last_mut().unwrap();
    let cut = c.stored_len - 15;
    c.stored_len = 15;
    h.payload_len -= cut;
    inconsistent(&h, "shorter than an authentication tag");
}
