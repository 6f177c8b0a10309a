//! The real kernel sources, executed on the CPU by tests/emu (one OS thread
//! per CUDA thread, AddressSanitizer and UBSan on), fed by the real planner.
//! Checks bit-exact decoding against the original data, ChaCha20 against
//! the `chacha20` crate, and that corrupt streams are reported and never
//! make a kernel touch memory outside its buffers.
//!
//! This checks the kernels' logic, not their behaviour on a GPU (warp
//! scheduling, memory model, performance): see kernels/README.md.

mod common;

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use common::emulator::{harness, run, TestChunk};
use common::encoder::{self, bf16_weights, encode_planes, f32_weights, planes_params, Mode, Rng};
use tic_kernels::plan::{Limits, CODEC_PLANES};
use tic_kernels::{Codec, Keystream, StreamError};

fn skip() -> bool {
    harness().is_none()
}

fn planes_chunk(data: &[u8], e: usize, rotate: bool, widths: &[u8], modes: &[Mode]) -> TestChunk {
    TestChunk {
        codec: Codec::from_spec(CODEC_PLANES, &planes_params(rotate, widths), e).unwrap(),
        elem_size: e,
        orig_len: data.len() as u64,
        data: encode_planes(data, e, rotate, widths, modes),
        keystream: None,
    }
}

fn raw_chunk(data: &[u8], e: usize) -> TestChunk {
    TestChunk {
        codec: Codec::Raw,
        elem_size: e,
        orig_len: data.len() as u64,
        data: data.to_vec(),
        keystream: None,
    }
}

fn assert_decodes(chunks: &[TestChunk], originals: &[Vec<u8>], limits: Limits) -> usize {
    let out = run(chunks, limits);
    for (i, (got, want)) in out.outputs.iter().zip(originals).enumerate() {
        assert_eq!(out.errors[i], None, "chunk {i} reported an error");
        if got != want {
            let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
            panic!(
                "chunk {i}: {} bytes, first difference at byte {at}: got {:#04x}, want {:#04x}",
                want.len(),
                got[at],
                want[at]
            );
        }
    }
    out.batches
}

/// A stream built by hand from the description, to pin the bit layout:
/// three U8 elements 0, 1, 2 in one Huffman plane with lengths 1, 2, 3 and
/// ESC 3, so codes 0, 10, 110 and ESC 111 (canonical), stored bit-reversed.
#[test]
fn hand_made_stream() {
    if skip() {
        return;
    }
    let mut s = Vec::new();
    let mut body = vec![
        0x00, 0x00, // first symbol 0
        0x03, 0x00, // 3 symbols
        0x21, 0x33, // lengths 1, 2 | 3, ESC 3 (low nibble first)
        0x00, 0x00, 0x00, 0x00, // tile 0 at offset 0
        0x01, 0x00, 0x01, 0x00, 0x01, 0x00, // lanes 0, 1, 2: one byte each
    ];
    body.extend_from_slice(&[0u8; 58]); // lanes 3..31 empty
    body.extend_from_slice(&[
        0x00, // lane 0: code "0"
        0x01, // lane 1: code "10", first bit at bit 0
        0x03, // lane 2: code "110"
    ]);
    s.extend_from_slice(&(1 + body.len() as u32).to_le_bytes());
    s.push(2);
    s.extend_from_slice(&body);
    let chunk = TestChunk {
        codec: Codec::from_spec(CODEC_PLANES, &[0, 1, 8], 1).unwrap(),
        elem_size: 1,
        orig_len: 3,
        data: s.clone(),
        keystream: None,
    };
    assert_decodes(&[chunk], &[vec![0, 1, 2]], Limits::default());

    // ESC: symbol 200 has no code; it follows ESC (111) as 8 raw bits.
    let data = [0u8, 200, 1, 0];
    let enc = encode_planes(&data, 1, false, &[8], &[Mode::Huffman { max_coded: 2 }]);
    assert_decodes(
        &[TestChunk {
            codec: Codec::from_spec(CODEC_PLANES, &[0, 1, 8], 1).unwrap(),
            elem_size: 1,
            orig_len: 4,
            data: enc,
            keystream: None,
        }],
        &[data.to_vec()],
        Limits::default(),
    );
}

#[test]
fn bf16_tiles_lanes_and_modes() {
    if skip() {
        return;
    }
    let mut rng = Rng(1);
    let configs: &[(bool, &[u8], &[Mode])] = &[
        (
            true,
            &[8, 8],
            &[Mode::Huffman { max_coded: 1024 }, Mode::Raw],
        ),
        (
            true,
            &[8, 4, 4],
            &[
                Mode::Huffman { max_coded: 12 },
                Mode::Huffman { max_coded: 16 },
                Mode::Raw,
            ],
        ),
        (
            false,
            &[1, 8, 7],
            &[Mode::Raw, Mode::Huffman { max_coded: 40 }, Mode::Raw],
        ),
        (false, &[16], &[Mode::Raw]),
    ];
    // Element counts around lane, warp and tile boundaries, and enough tiles
    // for several decode blocks (4 tiles per block).
    let sizes = [1usize, 31, 32, 33, 1000, 65536, 65537, 5 * 65536 + 4321];
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    for (rotate, widths, modes) in configs {
        for &n in &sizes {
            let data = bf16_weights(&mut rng, n);
            chunks.push(planes_chunk(&data, 2, *rotate, widths, modes));
            originals.push(data);
        }
    }
    assert_decodes(&chunks, &originals, Limits::default());
}

#[test]
fn every_element_size() {
    if skip() {
        return;
    }
    let mut rng = Rng(2);
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    // U8 as 8 one-bit planes, all Huffman coded: 8 decode tables, more than
    // the 5 kept in shared memory below, so some are read from global.
    let u8s: Vec<u8> = (0..70_000)
        .map(|_| (rng.below(7) * rng.below(7)) as u8)
        .collect();
    chunks.push(planes_chunk(
        &u8s,
        1,
        false,
        &[1; 8],
        &[Mode::Huffman { max_coded: 2 }; 8],
    ));
    originals.push(u8s.clone());
    chunks.push(planes_chunk(
        &u8s,
        1,
        true,
        &[4, 4],
        &[Mode::Huffman { max_coded: 16 }, Mode::Raw],
    ));
    originals.push(u8s);
    // F32: exponent, 8 high mantissa bits, 16 raw bits.
    let f32s = f32_weights(&mut rng, 100_003);
    chunks.push(planes_chunk(
        &f32s,
        4,
        true,
        &[8, 8, 16],
        &[
            Mode::Huffman { max_coded: 64 },
            Mode::Huffman { max_coded: 256 },
            Mode::Raw,
        ],
    ));
    originals.push(f32s);
    // F64 / U64: five planes, one constant (the top bits are always zero).
    let u64s: Vec<u8> = (0..9_999)
        .flat_map(|_| (rng.next() >> 10).to_le_bytes())
        .collect();
    chunks.push(planes_chunk(
        &u64s,
        8,
        false,
        &[10, 10, 12, 16, 16],
        &[
            Mode::Const,
            Mode::Huffman { max_coded: 100 },
            Mode::Raw,
            Mode::Raw,
            Mode::Raw,
        ],
    ));
    originals.push(u64s);
    let limits = Limits {
        max_shared_tables: 5,
        ..Limits::default()
    };
    assert_decodes(&chunks, &originals, limits);
}

#[test]
fn escapes_single_codes_and_constants() {
    if skip() {
        return;
    }
    let mut rng = Rng(3);
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    let data = bf16_weights(&mut rng, 20_000);
    for max_coded in [0usize, 1, 2, 3] {
        chunks.push(planes_chunk(
            &data,
            2,
            true,
            &[8, 8],
            &[Mode::Huffman { max_coded }, Mode::Raw],
        ));
        originals.push(data.clone());
    }
    // A constant plane and a single-symbol Huffman plane (length-1 code).
    let consts: Vec<u8> = (0..5000u32)
        .flat_map(|i| ((i % 7) as u16 | 0x4100).to_le_bytes())
        .collect();
    chunks.push(planes_chunk(
        &consts,
        2,
        false,
        &[8, 8],
        &[Mode::Const, Mode::Huffman { max_coded: 7 }],
    ));
    originals.push(consts.clone());
    chunks.push(planes_chunk(
        &consts,
        2,
        false,
        &[8, 8],
        &[Mode::Huffman { max_coded: 1 }, Mode::Raw],
    ));
    originals.push(consts);
    // Skewed 10-bit symbols: long codes get cut to 12 bits.
    let skew: Vec<u8> = (0..65_536)
        .flat_map(|_| {
            let mut s = 0u16;
            while s < 1023 && rng.below(3) != 0 {
                s += 1;
            }
            s.to_le_bytes()
        })
        .collect();
    chunks.push(planes_chunk(
        &skew,
        2,
        false,
        &[6, 10],
        &[Mode::Const, Mode::Huffman { max_coded: 1024 }],
    ));
    originals.push(skew);
    assert_decodes(&chunks, &originals, Limits::default());
    // The skewed plane really needed length limiting.
    let lens = encoder::limited_lengths(&(0..30).map(|i| 1u64 << (30 - i)).collect::<Vec<_>>());
    assert_eq!(*lens.iter().max().unwrap(), 12);
}

#[test]
fn raw_chunks() {
    if skip() {
        return;
    }
    let mut rng = Rng(4);
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    for (n, e) in [
        (1usize, 1usize),
        (15, 1),
        (17, 1),
        (65_536, 1),
        (200_001, 1),
        (3, 2),
        (40_000, 4),
        (9, 8),
    ] {
        let data = rng.bytes(n * e);
        chunks.push(raw_chunk(&data, e));
        originals.push(data);
    }
    assert_decodes(&chunks, &originals, Limits::default());
}

fn chacha_encrypt(key: &[u8; 32], nonce: &[u8; 12], plain: &[u8]) -> Vec<u8> {
    let mut c = chacha20::ChaCha20::new(key.into(), nonce.into());
    c.seek(64u64); // block counter 1: block 0 is the Poly1305 key
    let mut out = plain.to_vec();
    c.apply_keystream(&mut out);
    out
}

#[test]
fn encrypted_chunks_are_decrypted_on_the_device() {
    if skip() {
        return;
    }
    let mut rng = Rng(5);
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    for (i, n) in [1usize, 63, 64, 65, 5000, 70_001].into_iter().enumerate() {
        let key: [u8; 32] = rng.bytes(32).try_into().unwrap();
        // tic's nonce: the chunk index, big-endian in bytes 0..11, byte 11
        // set for the last chunk.
        let mut nonce = [0u8; 12];
        nonce[..11].copy_from_slice(&(i as u128).to_be_bytes()[5..]);
        nonce[11] = (i == 5) as u8;
        let data = bf16_weights(&mut rng, n);
        let mut c = if i % 2 == 0 {
            planes_chunk(
                &data,
                2,
                true,
                &[8, 8],
                &[Mode::Huffman { max_coded: 30 }, Mode::Raw],
            )
        } else {
            raw_chunk(&data, 2)
        };
        c.data = chacha_encrypt(&key, &nonce, &c.data);
        c.keystream = Some(Keystream {
            key,
            nonce,
            counter: 1,
        });
        chunks.push(c);
        originals.push(data);
    }
    assert_decodes(&chunks, &originals, Limits::default());
}

#[test]
fn many_batches() {
    if skip() {
        return;
    }
    let mut rng = Rng(6);
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    for i in 0..24 {
        let data = bf16_weights(&mut rng, 3000 + 500 * i);
        chunks.push(if i % 3 == 0 {
            raw_chunk(&data, 2)
        } else {
            planes_chunk(
                &data,
                2,
                true,
                &[8, 8],
                &[Mode::Huffman { max_coded: 64 }, Mode::Raw],
            )
        });
        originals.push(data);
    }
    let limits = Limits {
        staging_bytes: 40_000,
        max_chunks: 5,
        max_lut_slots: 7,
        ..Limits::default()
    };
    let batches = assert_decodes(&chunks, &originals, limits);
    assert!(batches >= 5, "{batches} batches");
}

/// Builds a single-tile BF16 chunk ([8, 8], plane 0 Huffman) and returns
/// it with the offsets of its interesting fields.
struct Anatomy {
    chunk: TestChunk,
    /// Offset of plane 0's body (after the mode byte).
    body: usize,
    nibbles: usize,
    dir: usize,
    area: usize,
    /// Offset of plane 1's section.
    plane1: usize,
}

fn anatomy(n: usize) -> (Anatomy, Vec<u8>) {
    let mut rng = Rng(7);
    let data = bf16_weights(&mut rng, n);
    let chunk = planes_chunk(
        &data,
        2,
        true,
        &[8, 8],
        &[Mode::Huffman { max_coded: 20 }, Mode::Raw],
    );
    let s = &chunk.data;
    let section = u32::from_le_bytes(s[0..4].try_into().unwrap()) as usize;
    let body = 5;
    let count = u16::from_le_bytes(s[body + 2..body + 4].try_into().unwrap()) as usize;
    let nibbles = body + 4;
    let dir = nibbles + (count + 2) / 2;
    let area = dir + 68 * n.div_ceil(65536);
    let plane1 = 4 + section;
    (
        Anatomy {
            chunk,
            body,
            nibbles,
            dir,
            area,
            plane1,
        },
        data,
    )
}

fn set_section_len(s: &mut [u8], at: usize, len: usize) {
    s[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
}

#[test]
fn malformed_streams_are_reported() {
    if skip() {
        return;
    }
    let (a, data) = anatomy(1000);
    let good = a.chunk.clone();
    let sec0 = u32::from_le_bytes(good.data[0..4].try_into().unwrap()) as usize;
    let mut cases: Vec<(&str, TestChunk, StreamError)> = Vec::new();
    let mut case = |name: &'static str, want: StreamError, f: &dyn Fn(&mut Vec<u8>)| {
        let mut c = good.clone();
        f(&mut c.data);
        cases.push((name, c, want));
    };
    case("section past the end", StreamError::Section, &|s| {
        let l = s.len();
        set_section_len(s, 0, l)
    });
    case("empty section", StreamError::Section, &|s| {
        set_section_len(s, 0, 0)
    });
    case("chunk cut in a header", StreamError::Section, &|s| {
        s.truncate(2)
    });
    case("unknown mode", StreamError::Mode, &|s| s[4] = 3);
    case("raw plane too short", StreamError::RawLength, &|s| {
        let p1 = 4 + sec0;
        let l = u32::from_le_bytes(s[p1..p1 + 4].try_into().unwrap()) as usize;
        set_section_len(s, p1, l - 1);
        s.pop();
    });
    case("bytes after the last plane", StreamError::Trailing, &|s| {
        s.push(0)
    });
    case(
        "Huffman symbols past 2^w",
        StreamError::HuffmanTable,
        &|s| s[a.body..a.body + 2].copy_from_slice(&250u16.to_le_bytes()),
    );
    case("code length 13", StreamError::CodeLength, &|s| {
        s[a.nibbles] = 0x0D | (s[a.nibbles] & 0xF0)
    });
    case("over-subscribed", StreamError::Oversubscribed, &|s| {
        for b in &mut s[a.nibbles..a.dir] {
            *b = 0x11;
        }
    });
    case("tile offset not 0", StreamError::TileDirectory, &|s| {
        s[a.dir] = 1
    });
    case(
        "lane lengths overrun the area",
        StreamError::TileDirectory,
        &|s| s[a.dir + 4] = s[a.dir + 4].wrapping_add(1),
    );
    case("lane cut short", StreamError::LaneOverrun, &|s| {
        // Lane 31 is last in the area: take its last byte away. (Only one
        // lane may be damaged: with several, which error wins is a race.)
        let at = a.dir + 4 + 2 * 31;
        let l = u16::from_le_bytes(s[at..at + 2].try_into().unwrap());
        s[at..at + 2].copy_from_slice(&(l - 1).to_le_bytes());
        s.remove(a.plane1 - 1);
        set_section_len(s, 0, sec0 - 1);
    });
    case("lane with a spare byte", StreamError::LaneTrailing, &|s| {
        // Lane 31 is last in the area: give it one more byte.
        let at = a.dir + 4 + 2 * 31;
        let l = u16::from_le_bytes(s[at..at + 2].try_into().unwrap());
        s[at..at + 2].copy_from_slice(&(l + 1).to_le_bytes());
        s.insert(a.plane1, 0);
        set_section_len(s, 0, sec0 + 1);
    });
    case("bit pattern that is no code", StreamError::BadCode, &|s| {
        // Drop every code but ESC's length: most 12-bit patterns are no code.
        let count = u16::from_le_bytes(s[a.body + 2..a.body + 4].try_into().unwrap()) as usize;
        for q in 0..count {
            let b = &mut s[a.nibbles + q / 2];
            *b &= if q % 2 == 0 { 0xF0 } else { 0x0F };
        }
        // ESC keeps a 1-bit code "0"; lanes start with a 1 somewhere.
        let e = a.nibbles + count / 2;
        s[e] = if count.is_multiple_of(2) {
            (s[e] & 0xF0) | 1
        } else {
            (s[e] & 0x0F) | 0x10
        };
        for b in &mut s[a.area..a.plane1] {
            *b = 0xFF;
        }
    });
    case("constant wider than its plane", StreamError::Const, &|s| {
        let p1 = 4 + sec0;
        s.truncate(p1);
        s.extend_from_slice(&3u32.to_le_bytes());
        s.push(1);
        s.extend_from_slice(&256u16.to_le_bytes());
    });
    // Huffman mode on a 16-bit plane.
    let mut wide = raw_chunk(&data, 2);
    wide.codec = Codec::from_spec(CODEC_PLANES, &[0, 1, 16], 2).unwrap();
    wide.data = vec![5, 0, 0, 0, 2, 0, 0, 0, 0];
    cases.push(("Huffman plane of 16 bits", wide, StreamError::HuffmanWidth));

    let mut chunks: Vec<TestChunk> = cases.iter().map(|c| c.1.clone()).collect();
    chunks.push(good.clone());
    let out = run(&chunks, Limits::default());
    for (i, (name, _, want)) in cases.iter().enumerate() {
        assert_eq!(out.errors[i], Some(*want), "{name}");
    }
    // The good chunk in the same batch is unaffected.
    assert_eq!(out.errors[cases.len()], None);
    assert_eq!(out.outputs[cases.len()], data);
}

/// Random damage anywhere in valid streams: every run must stay inside its
/// buffers (AddressSanitizer aborts the emulator otherwise, and the arena
/// check catches writes between outputs) and most damage must be reported.
#[test]
fn random_corruption_stays_in_bounds() {
    if skip() {
        return;
    }
    let mut rng = Rng(8);
    let mut bases = Vec::new();
    for (n, modes) in [
        (3000usize, [Mode::Huffman { max_coded: 40 }, Mode::Raw]),
        (
            70_000,
            [
                Mode::Huffman { max_coded: 256 },
                Mode::Huffman { max_coded: 8 },
            ],
        ),
        (500, [Mode::Huffman { max_coded: 2 }, Mode::Const]),
    ] {
        let data: Vec<u8> = if modes[1] == Mode::Const {
            (0..n)
                .flat_map(|i| (((i % 5) as u16) << 8 | 0x42).to_le_bytes())
                .collect()
        } else {
            bf16_weights(&mut rng, n)
        };
        bases.push(planes_chunk(&data, 2, true, &[8, 8], &modes));
    }
    let mut chunks = Vec::new();
    for k in 0..150 {
        let mut c = bases[k % bases.len()].clone();
        let len = c.data.len();
        match rng.below(4) {
            0 => {
                // A few random bytes anywhere.
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(len as u64) as usize;
                    c.data[at] = rng.next() as u8;
                }
            }
            1 => {
                // A byte in the first 256 (headers, tables, directories).
                let at = rng.below(len.min(256) as u64) as usize;
                c.data[at] ^= 1 << rng.below(8);
            }
            2 => c.data.truncate(rng.below(len as u64) as usize),
            _ => {
                let at = rng.below(len as u64) as usize;
                let k = 1 + rng.below(8) as usize;
                let extra = rng.bytes(k);
                c.data.splice(at..at, extra);
            }
        }
        chunks.push(c);
    }
    let out = run(&chunks, Limits::default());
    let reported = out.errors.iter().filter(|e| e.is_some()).count();
    eprintln!("{reported} of {} damaged chunks reported", chunks.len());
    assert!(reported >= chunks.len() / 2, "only {reported} reported");
}

/// Streams made by the real encoder (`tic_format::codec`), with the codec
/// it chooses, decode bit-exactly on the emulated kernels: the GPU and the
/// CPU read the same bitstream the same way.
#[test]
fn streams_from_the_real_encoder() {
    if skip() {
        return;
    }
    let mut rng = Rng(0x5eed);
    let all16: Vec<u8> = (0..=u16::MAX).flat_map(|x| x.to_le_bytes()).collect();
    let positions: Vec<u8> = (0..4096i64).flat_map(|x| x.to_le_bytes()).collect();
    let cases: Vec<(Vec<u8>, usize, bool)> = vec![
        (bf16_weights(&mut rng, 200_000), 2, true),
        (all16.clone(), 2, true),
        (all16, 2, false),
        (f32_weights(&mut rng, 70_001), 4, true),
        (positions, 8, false),
        (vec![7u8; 100_000], 1, false),
    ];
    let mut chunks = Vec::new();
    let mut originals = Vec::new();
    for (data, e, float) in cases {
        let spec = tic_format::codec::choose_codec(e, float, &data, 1 << 19);
        let stored = tic_format::codec::encode_chunk(&spec, e, &data).unwrap();
        let codec = Codec::from_spec(spec.id, &spec.params, e).unwrap();
        chunks.push(TestChunk {
            codec,
            elem_size: e,
            orig_len: data.len() as u64,
            data: stored,
            keystream: None,
        });
        originals.push(data);
    }
    assert_decodes(&chunks, &originals, Limits::default());
}
