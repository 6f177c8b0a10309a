//! Loading onto an NVIDIA GPU, bit for bit.
//!
//! Every GPU load here asks for `Device::Cuda(0)` with `fallback_to_cpu:
//! false` (so a silent fallback to the CPU cannot pass for a GPU decode),
//! `verify: false` (so the runtime's own digest check cannot hide a wrong
//! byte behind an error; the tests compare the bytes themselves) and a
//! nonzero `poison` byte in every output buffer (so a byte the kernels never
//! wrote shows up instead of hiding behind a zero).
//!
//! Without a usable GPU (CI has none) every test prints `skipped: no usable
//! GPU (why)` and passes, unless `TIC_REQUIRE_GPU=1` is set, when it fails
//! with that reason. The test binary needs no cargo at run time:
//!
//! ```sh
//! cargo test -p tic-tests --test gpu_load --no-run   # prints the binary's path
//! TIC_REQUIRE_GPU=1 target/debug/deps/gpu_load-HASH --test-threads 1
//! ```
//!
//! `TIC_GPU_ARTIFACT_DIR=DIR` also loads every `*.tic` in `DIR` (see
//! [`artifacts_in_tic_gpu_artifact_dir_match_their_header_digests`]).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use support::Rng;
use tic_format::codec::{CODEC_PLANES, CODEC_RAW};
use tic_format::crypto::{Identity, Recipient};
use tic_format::DType;
use tic_runtime::{Artifact, Device, ErrorKind, LoadOptions, RuntimeError};
use tic_tests::*;

/// The two poison bytes: a byte left unwritten reads as one in the first
/// load and as the other in the second.
const POISON_A: u8 = 0xA5;
const POISON_B: u8 = 0x5A;

/// Element counts that are not multiples of the 32 lanes, of a tile (65,536
/// symbols) or of a chunk; 300,001 spans five one-tile chunks.
const ODD_LENGTHS: [usize; 6] = [1, 31, 33, 65_535, 65_537, 300_001];

// ---------------------------------------------------------------------------
// Helpers

/// The skip rule: `Some(gpu description)` when GPU 0 can decode tic
/// artifacts; otherwise prints `skipped: no usable GPU (why)` and returns
/// `None`, or panics with the reason when `TIC_REQUIRE_GPU=1`.
fn usable_gpu() -> Option<String> {
    match tic_runtime::probe_cuda(0) {
        Ok(gpu) => Some(gpu),
        Err(why) => {
            if std::env::var("TIC_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("TIC_REQUIRE_GPU=1 but there is no usable GPU: {why}");
            }
            eprintln!("skipped: no usable GPU ({why})");
            None
        }
    }
}

/// GPU 0, no fallback, no digest check by the runtime, outputs poisoned.
fn gpu_options(poison: u8) -> LoadOptions {
    LoadOptions {
        device: Device::Cuda(0),
        verify: false,
        fallback_to_cpu: false,
        poison: Some(poison),
        ..LoadOptions::new(Device::Cuda(0))
    }
}

fn cpu_options() -> LoadOptions {
    LoadOptions::new(Device::Cpu)
}

/// Panics, naming the tensor and the first differing byte, unless `got`
/// is `want`. With `poison`, also says how many differing bytes hold the
/// poison byte (bytes the decoder never wrote).
fn assert_same_bytes(ctx: &str, name: &str, got: &[u8], want: &[u8], poison: Option<u8>) {
    if got == want {
        return;
    }
    let common = got.len().min(want.len());
    let first = (0..common).find(|&i| got[i] != want[i]);
    let differing: Vec<usize> = (0..common).filter(|&i| got[i] != want[i]).collect();
    let poisoned = poison.map(|p| differing.iter().filter(|&&i| got[i] == p).count());
    let at = match first {
        Some(i) => format!(
            "first differing byte at index {i}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        ),
        None => "no byte differs within the shorter length".to_string(),
    };
    panic!(
        "{ctx}: tensor {name}: {} bytes, want {}; {at}; {} of the first {common} bytes differ{}",
        got.len(),
        want.len(),
        differing.len(),
        match (poison, poisoned) {
            (Some(p), Some(n)) => format!(", {n} of them hold the poison byte {p:#04x}"),
            _ => String::new(),
        }
    );
}

/// `xs` as little-endian bytes.
fn le16(xs: impl IntoIterator<Item = u16>) -> Vec<u8> {
    xs.into_iter().flat_map(u16::to_le_bytes).collect()
}
fn le32(xs: impl IntoIterator<Item = u32>) -> Vec<u8> {
    xs.into_iter().flat_map(u32::to_le_bytes).collect()
}
fn le64(xs: impl IntoIterator<Item = u64>) -> Vec<u8> {
    xs.into_iter().flat_map(u64::to_le_bytes).collect()
}

fn tensor(name: impl Into<String>, dtype: &'static str, shape: &[u64], data: Vec<u8>) -> Tensor {
    let t = Tensor {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        data,
    };
    let elems: u64 = t.shape.iter().product();
    let bytes = DType::from_name(dtype)
        .expect("known dtype")
        .byte_len(elems);
    assert_eq!(bytes, Some(t.data.len() as u64), "test data of {}", t.name);
    t
}

/// A scrambled order of `0..n` (Fisher–Yates with `rng`).
fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        v.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    v
}

/// Gaussian-like "weights" with the float specials sprinkled in: NaN with
/// a payload, both infinities, the smallest subnormal, -0, a random
/// NaN/Inf-exponent pattern.
fn weights16(rng: &mut Rng, n: usize, bf16: bool) -> Vec<u8> {
    le16((0..n).map(|i| match i % 997 {
        0 => 0x7fc1,
        1 => 0xff80,
        2 => 0x0001,
        3 => 0x8000,
        4 => 0x7c00 | (rng.next() as u16 & 0x83ff), // F16 Inf/NaN family
        5 => 0x7f80 | (rng.next() as u16 & 0x807f), // BF16 Inf/NaN family
        _ if bf16 => half::bf16::from_f64(rng.normal(0.02)).to_bits(),
        _ => half::f16::from_f64(rng.normal(0.02)).to_bits(),
    }))
}

const F32_SPECIALS: [u32; 12] = [
    0x7fc0_0001, // quiet NaN with a payload
    0x7f80_0001, // signalling NaN
    0xffff_ffff, // negative NaN, all payload bits
    0x7f80_0000, // +inf
    0xff80_0000, // -inf
    0x0000_0000, // +0
    0x8000_0000, // -0
    0x0000_0001, // smallest subnormal
    0x007f_ffff, // largest subnormal
    0x8000_0001, // negative subnormal
    0x0080_0000, // smallest normal
    0x7f7f_ffff, // largest finite
];

const F64_SPECIALS: [u64; 12] = [
    0x7ff8_0000_0000_0001,
    0x7ff0_0000_0000_0001,
    0xffff_ffff_ffff_ffff,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0,
    0x8000_0000_0000_0000,
    1,
    0x000f_ffff_ffff_ffff,
    0x8000_0000_0000_0001,
    0x0010_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
];

fn weights32(rng: &mut Rng, n: usize) -> Vec<u8> {
    le32((0..n).map(|i| match i % 1009 {
        k if k < F32_SPECIALS.len() => F32_SPECIALS[k],
        _ => (rng.normal(0.05) as f32).to_bits(),
    }))
}

fn weights64(rng: &mut Rng, n: usize) -> Vec<u8> {
    le64((0..n).map(|i| match i % 1009 {
        k if k < F64_SPECIALS.len() => F64_SPECIALS[k],
        _ => rng.normal(1.0).to_bits(),
    }))
}

/// Tensors of every dtype tic supports, with adversarial contents: every
/// 16-bit pattern (all 256 BF16 exponents, NaN payloads, infinities,
/// subnormals, both zeros) and every 8-bit one; F32 and F64 random bits,
/// specials and gaussian weights; odd element counts up to several chunks;
/// constant tensors; empty and 0-d tensors.
fn gpu_tensors() -> Vec<Tensor> {
    let mut rng = Rng(0x6a09_e667_f3bc_c908);
    let mut v: Vec<Tensor> = Vec::new();

    // Every 16-bit pattern, scrambled, once and (over several chunks) three
    // times plus one.
    let order = shuffled(&mut rng, 65_536);
    let all16 = || order.iter().map(|&i| i as u16);
    v.push(tensor(
        "bf16.all_patterns",
        "BF16",
        &[256, 256],
        le16(all16()),
    ));
    v.push(tensor("f16.all_patterns", "F16", &[65_536], le16(all16())));
    let thrice: Vec<u16> = (0..3).flat_map(|_| all16()).chain([0xffff]).collect();
    v.push(tensor(
        "bf16.all_patterns_x3_plus_1",
        "BF16",
        &[196_609],
        le16(thrice.clone()),
    ));
    v.push(tensor(
        "f16.all_patterns_x3_plus_1",
        "F16",
        &[196_609],
        le16(thrice),
    ));

    for n in ODD_LENGTHS {
        let data = weights16(&mut rng, n, true);
        v.push(tensor(
            format!("bf16.weights_{n}"),
            "BF16",
            &[n as u64],
            data,
        ));
        let data = weights32(&mut rng, n);
        v.push(tensor(format!("f32.weights_{n}"), "F32", &[n as u64], data));
    }
    for n in [33, 65_537] {
        let data = weights16(&mut rng, n, false);
        v.push(tensor(format!("f16.weights_{n}"), "F16", &[n as u64], data));
        let data = weights64(&mut rng, n);
        v.push(tensor(format!("f64.weights_{n}"), "F64", &[n as u64], data));
    }
    // Random bits with every special first.
    let mut f: Vec<u32> = F32_SPECIALS.to_vec();
    f.extend((0..65_537 - F32_SPECIALS.len()).map(|_| rng.next() as u32));
    v.push(tensor("f32.random_bits_65537", "F32", &[65_537], le32(f)));
    let mut d: Vec<u64> = F64_SPECIALS.to_vec();
    d.extend((0..33 - F64_SPECIALS.len()).map(|_| rng.next()));
    v.push(tensor("f64.random_bits_33", "F64", &[33], le64(d)));
    v.push(tensor("f64.specials", "F64", &[12], le64(F64_SPECIALS)));
    v.push(tensor("f32.scalar", "F32", &[], le32([0xc2f7_0000])));

    // Every 8-bit pattern, in order, and scrambled over two chunks.
    for dt in DType::all().filter(|d| d.bits() == 8).map(DType::name) {
        let name = dt.to_lowercase();
        v.push(tensor(
            format!("{name}.all_patterns"),
            dt,
            &[16, 16],
            (0..=255u8).collect(),
        ));
        let order = shuffled(&mut rng, 256);
        let data: Vec<u8> = (0..65_537).map(|i| order[i % 256] as u8).collect();
        v.push(tensor(
            format!("{name}.all_patterns_65537"),
            dt,
            &[65_537],
            data,
        ));
    }
    v.push(tensor("u8.random_31", "U8", &[31], pseudo_random(7, 31)));
    // Packed sub-byte dtypes: their bytes are the codec's units, and a
    // chunk may end inside an element.
    let nibbles: Vec<u8> = (0..65_537).map(|_| (rng.next() % 4) as u8 * 0x11).collect();
    v.push(tensor("f4.small_131074", "F4", &[2, 65_537], nibbles));
    v.push(tensor("f4.random_2", "F4", &[2], pseudo_random(8, 1)));
    v.push(tensor(
        "f6_e2m3.random_87384",
        "F6_E2M3",
        &[87_384],
        pseudo_random(9, 65_538),
    ));
    v.push(tensor(
        "f6_e3m2.random_4",
        "F6_E3M2",
        &[4],
        pseudo_random(10, 3),
    ));

    // Integers: small values (compressible), ramps and random bits.
    let small: Vec<u16> = (0..65_537).map(|_| (rng.next() % 7) as u16).collect();
    v.push(tensor("i16.small_65537", "I16", &[65_537], le16(small)));
    let r: Vec<u16> = (0..31).map(|_| rng.next() as u16).collect();
    v.push(tensor("u16.random_31", "U16", &[31], le16(r)));
    v.push(tensor(
        "i32.ramp_300001",
        "I32",
        &[300_001],
        le32(0..300_001),
    ));
    let r: Vec<u32> = (0..33).map(|_| rng.next() as u32).collect();
    v.push(tensor("u32.random_33", "U32", &[33], le32(r)));
    v.push(tensor(
        "i64.positions_65535",
        "I64",
        &[1, 65_535],
        le64(0..65_535),
    ));
    v.push(tensor("u64.random_1", "U64", &[1], le64([rng.next()])));
    let r: Vec<u64> = (0..65_537).map(|_| rng.next()).collect();
    v.push(tensor("u64.random_65537", "U64", &[65_537], le64(r)));
    let r: Vec<u64> = (0..33).map(|_| rng.next()).collect();
    v.push(tensor("c64.random_33", "C64", &[33], le64(r)));

    // Constant tensors.
    v.push(tensor(
        "const.bf16_zeros_300001",
        "BF16",
        &[300_001],
        vec![0; 600_002],
    ));
    v.push(tensor(
        "const.f32_same_65537",
        "F32",
        &[65_537],
        le32(std::iter::repeat_n(0x3e00_0000, 65_537)),
    ));
    v.push(tensor(
        "const.u8_same_70001",
        "U8",
        &[70_001],
        vec![0x7b; 70_001],
    ));
    v.push(tensor(
        "const.i64_minus_one_1000",
        "I64",
        &[1000],
        vec![0xff; 8000],
    ));
    v.push(tensor(
        "const.f16_neg_zero_33",
        "F16",
        &[33],
        le16([0x8000; 33]),
    ));

    // Empty tensors.
    v.push(tensor("empty.bf16", "BF16", &[0], vec![]));
    v.push(tensor("empty.f32_3x0", "F32", &[3, 0], vec![]));
    v
}

/// How an artifact's payload is protected.
#[derive(Clone, Copy, Debug)]
enum Protection {
    Plain,
    Symmetric,
    Age,
}

/// A signed artifact in a temporary directory, with what opens it.
struct Compiled {
    _dir: TempDir,
    path: PathBuf,
    key: SigningKey,
    ids: Vec<Identity>,
}

impl Compiled {
    fn open(&self) -> Artifact {
        Artifact::open(
            &self.path,
            &options(&[self.key.verifying_key()], false, self.ids.clone()),
        )
        .unwrap_or_else(|e| panic!("opening {}: {e}", self.path.display()))
    }
}

/// Compiles `tensors` (one safetensors file, small chunks: one 65,536-element
/// tile each) into a signed artifact with `protection`.
fn compile_tensors(tensors: &[Tensor], protection: Protection) -> Compiled {
    let dir = tempdir().unwrap();
    let model = model_with(&dir.path().join("model"), tensors);
    let path = dir.path().join("gpu.tic");
    let key = signing_key();
    let (recipients, ids) = match protection {
        Protection::Plain => (vec![], vec![]),
        Protection::Symmetric => {
            let k = symmetric_key();
            (
                vec![Recipient::Symmetric(k.clone())],
                vec![Identity::Symmetric(k)],
            )
        }
        Protection::Age => {
            let id = age::x25519::Identity::generate();
            (
                vec![Recipient::Age(id.to_public())],
                vec![Identity::Age(id)],
            )
        }
    };
    compile(&model, &path, Some(&key), recipients);
    Compiled {
        _dir: dir,
        path,
        key,
        ids,
    }
}

/// Loads every tensor on the GPU with `opts` and checks each against the
/// original bytes and against the CPU load: name, dtype, shape, device and
/// every byte.
fn check_full_gpu_load(art: &Artifact, want: &[Tensor], opts: &LoadOptions, ctx: &str) {
    let gpu = art
        .load_with(None, opts)
        .unwrap_or_else(|e| panic!("{ctx}: GPU load failed: {e}"));
    let cpu = art
        .load_with(None, &cpu_options())
        .unwrap_or_else(|e| panic!("{ctx}: CPU load failed: {e}"));
    let names = |ts: &[tic_runtime::DeviceTensor]| -> Vec<String> {
        ts.iter().map(|t| t.name.clone()).collect()
    };
    let want_names: Vec<String> = want.iter().map(|t| t.name.clone()).collect();
    assert_eq!(
        names(&gpu),
        want_names,
        "{ctx}: GPU tensors, in header order"
    );
    assert_eq!(
        names(&cpu),
        want_names,
        "{ctx}: CPU tensors, in header order"
    );
    for ((g, c), w) in gpu.iter().zip(&cpu).zip(want) {
        assert_eq!(g.dtype.name(), w.dtype, "{ctx}: dtype of {}", w.name);
        assert_eq!(g.shape, w.shape, "{ctx}: shape of {}", w.name);
        assert_eq!(g.len(), w.data.len(), "{ctx}: length of {}", w.name);
        if w.data.is_empty() {
            // The runtime may hand an empty tensor out as an empty host
            // buffer (some drivers refuse 0-byte device allocations).
            assert!(g.is_empty(), "{ctx}: {} should be empty", w.name);
        } else {
            assert_eq!(g.device(), Device::Cuda(0), "{ctx}: device of {}", w.name);
        }
        let got = g
            .to_host()
            .unwrap_or_else(|e| panic!("{ctx}: copying {} back: {e}", w.name));
        assert_same_bytes(ctx, &w.name, &got, &w.data, opts.poison);
        let on_cpu = c.to_host().unwrap();
        assert_same_bytes(
            &format!("{ctx} (CPU load)"),
            &w.name,
            &on_cpu,
            &w.data,
            None,
        );
        assert_same_bytes(
            &format!("{ctx} (GPU vs CPU)"),
            &w.name,
            &got,
            &on_cpu,
            opts.poison,
        );
    }
}

/// Checks that the artifact exercises what the GPU tests mean to: both
/// lossless codecs, every dtype, tensors over several chunks, and enough
/// chunks for several decoder batches with a small staging buffer.
fn check_coverage(art: &Artifact, want: &[Tensor]) {
    let h = art.header();
    let codecs: std::collections::BTreeSet<u16> = h.tensors.iter().map(|t| t.codec.id).collect();
    assert!(
        codecs.contains(&CODEC_RAW) && codecs.contains(&CODEC_PLANES),
        "the chooser should pick raw for some tensors and planes for others, got codecs {codecs:?}"
    );
    let dtypes: std::collections::BTreeSet<&str> = want.iter().map(|t| t.dtype).collect();
    assert_eq!(
        dtypes.len(),
        DType::all().count(),
        "every supported dtype is covered"
    );
    let most = h.tensors.iter().map(|t| t.chunk_count).max().unwrap_or(0);
    assert!(
        most >= 5,
        "a tensor should span several chunks, most is {most}"
    );
    assert!(h.chunks.len() >= 40, "{} chunks", h.chunks.len());
}

fn adversarial_round_trip(protection: Protection) {
    let Some(gpu) = usable_gpu() else { return };
    let want = gpu_tensors();
    let c = compile_tensors(&want, protection);
    let art = c.open();
    assert_eq!(
        art.header().is_encrypted(),
        !matches!(protection, Protection::Plain)
    );
    check_coverage(&art, &want);
    // A staging buffer smaller than the largest chunk (512 KiB of F64):
    // raised to fit it, and the chunks go through in many batches.
    let opts = LoadOptions {
        staging_bytes: Some(256 << 10),
        ..gpu_options(POISON_A)
    };
    check_full_gpu_load(&art, &want, &opts, &format!("{protection:?} on {gpu}"));
}

// ---------------------------------------------------------------------------
// 1. Adversarial tensors of every dtype, plaintext and encrypted.

/// Runs without a GPU: the tensors the GPU tests use are valid, cover what
/// [`check_coverage`] asks, and the CPU load (the bytes every GPU load is
/// compared with) gives them back exactly.
#[test]
fn gpu_test_tensors_cover_every_dtype_and_load_exact_on_the_cpu() {
    let want = gpu_tensors();
    let c = compile_tensors(&want, Protection::Plain);
    let art = c.open();
    check_coverage(&art, &want);
    let cpu = art.load_with(None, &cpu_options()).unwrap();
    assert_eq!(cpu.len(), want.len());
    for (c, w) in cpu.iter().zip(&want) {
        assert_eq!(
            (c.name.as_str(), c.dtype.name()),
            (w.name.as_str(), w.dtype)
        );
        assert_same_bytes("CPU load", &w.name, &c.to_host().unwrap(), &w.data, None);
    }
}

#[test]
fn every_dtype_and_bit_pattern_decodes_bit_exact_on_the_gpu() {
    adversarial_round_trip(Protection::Plain);
}

#[test]
fn every_dtype_decodes_bit_exact_on_the_gpu_encrypted_to_a_symmetric_key() {
    adversarial_round_trip(Protection::Symmetric);
}

#[test]
fn every_dtype_decodes_bit_exact_on_the_gpu_encrypted_to_an_age_recipient() {
    adversarial_round_trip(Protection::Age);
}

// ---------------------------------------------------------------------------
// 2. Two poison bytes: a byte the kernels leave unwritten would read as the
//    poison, which differs between the two loads.

#[test]
fn every_output_byte_is_written_whatever_the_poison() {
    let Some(gpu) = usable_gpu() else { return };
    let want = gpu_tensors();
    for protection in [Protection::Plain, Protection::Symmetric] {
        let c = compile_tensors(&want, protection);
        let art = c.open();
        let mut loads = Vec::new();
        for poison in [POISON_A, POISON_B] {
            // The default staging size this time: few, large batches.
            let ctx = format!("{protection:?}, poison {poison:#04x}, on {gpu}");
            let got = art
                .load_with(None, &gpu_options(poison))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(got.len(), want.len(), "{ctx}");
            let bytes: Vec<Vec<u8>> = got.iter().map(|t| t.to_host().unwrap()).collect();
            for ((t, b), w) in got.iter().zip(&bytes).zip(&want) {
                assert_eq!(t.name, w.name, "{ctx}");
                assert_same_bytes(&ctx, &w.name, b, &w.data, Some(poison));
            }
            loads.push(bytes);
        }
        for (w, (a, b)) in want.iter().zip(loads[0].iter().zip(&loads[1])) {
            assert_same_bytes(
                &format!("{protection:?}: poison {POISON_A:#04x} vs {POISON_B:#04x}"),
                &w.name,
                a,
                b,
                None,
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Subsets, in the order asked.

#[test]
fn a_subset_loads_exactly_the_tensors_asked_in_that_order() {
    let Some(gpu) = usable_gpu() else { return };
    let want = gpu_tensors();
    let by_name: BTreeMap<&str, &Tensor> = want.iter().map(|t| (t.name.as_str(), t)).collect();
    // A late multi-chunk tensor, an early one, an empty one, a one-element
    // one: not in header order.
    let ask = [
        "const.bf16_zeros_300001",
        "bf16.all_patterns",
        "empty.f32_3x0",
        "f32.weights_300001",
        "u64.random_1",
    ];
    for protection in [Protection::Plain, Protection::Age] {
        let c = compile_tensors(&want, protection);
        let art = c.open();
        let pos = |n: &str| art.header().tensors.iter().position(|t| t.name == n);
        assert!(
            pos(ask[0]) > pos(ask[1]),
            "the subset is not in header order"
        );
        for subset in [&ask[..2], &ask[..]] {
            let ctx = format!("{protection:?}, subset {subset:?}, on {gpu}");
            let got = art
                .load_with(Some(subset), &gpu_options(POISON_B))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            let names: Vec<&str> = got.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, subset, "{ctx}");
            for t in &got {
                let w = by_name[t.name.as_str()];
                assert_eq!((t.dtype.name(), &t.shape), (w.dtype, &w.shape), "{ctx}");
                if !w.data.is_empty() {
                    assert_eq!(t.device(), Device::Cuda(0), "{ctx}: {}", w.name);
                }
                assert_same_bytes(
                    &ctx,
                    &w.name,
                    &t.to_host().unwrap(),
                    &w.data,
                    Some(POISON_B),
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Real weights.

/// The tensors of every `*.safetensors` file directly in `dir`, read with a
/// plain JSON parse of the safetensors header (not tic's parser), by name:
/// (dtype, shape, bytes).
fn read_safetensors_dir(dir: &Path) -> BTreeMap<String, (String, Vec<u64>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("safetensors") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let json: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        let data = &bytes[8 + n..];
        for (name, v) in json.as_object().expect("a JSON object") {
            if name == "__metadata__" {
                continue;
            }
            let offs: Vec<usize> = v["data_offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect();
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            let dtype = v["dtype"].as_str().unwrap().to_string();
            let old = out.insert(
                name.clone(),
                (dtype, shape, data[offs[0]..offs[1]].to_vec()),
            );
            assert!(old.is_none(), "tensor {name} twice in {}", dir.display());
        }
    }
    out
}

#[test]
fn shared_minilm_models_load_bit_exact_on_the_gpu() {
    let Some(gpu) = usable_gpu() else { return };
    // `../shared` beside the repository this binary was built from; on a
    // machine where that path does not exist (a prebuilt binary run
    // elsewhere) this check is skipped.
    let models = support::shared_models();
    let dirs: Vec<PathBuf> = ["all-MiniLM-L6-v2-bf16", "all-MiniLM-L6-v2"]
        .iter()
        .filter_map(|m| models.as_ref().map(|d| d.join(m)))
        .filter(|d| d.is_dir())
        .collect();
    if dirs.len() < 2 {
        eprintln!("SKIPPED: ../shared/models/all-MiniLM-L6-v2{{,-bf16}} are not present");
        return;
    }
    for dir in &dirs {
        let want = read_safetensors_dir(dir);
        assert!(want.len() > 50, "{}: {} tensors", dir.display(), want.len());
        let protections: &[Protection] = if dir.ends_with("all-MiniLM-L6-v2-bf16") {
            &[Protection::Plain, Protection::Symmetric]
        } else {
            &[Protection::Plain]
        };
        for &protection in protections {
            let tmp = tempdir().unwrap();
            let path = tmp.path().join("m.tic");
            let key = signing_key();
            let (recipients, ids) = match protection {
                Protection::Symmetric => {
                    let k = symmetric_key();
                    (
                        vec![Recipient::Symmetric(k.clone())],
                        vec![Identity::Symmetric(k)],
                    )
                }
                _ => (vec![], vec![]),
            };
            tic_compiler::compile(
                dir,
                &path,
                &tic_compiler::CompileOptions {
                    signing_key: Some(key.clone()),
                    recipients,
                    ..Default::default()
                },
                &tic_runtime::NoProgress,
            )
            .unwrap();
            let art = Artifact::open(&path, &options(&[key.verifying_key()], false, ids)).unwrap();
            let ctx = format!("{} ({protection:?}) on {gpu}", dir.display());
            let got = art
                .load_with(None, &gpu_options(POISON_A))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(got.len(), want.len(), "{ctx}: tensor count");
            let planes = art
                .header()
                .tensors
                .iter()
                .filter(|t| t.codec.id == CODEC_PLANES)
                .count();
            assert!(planes > 0, "{ctx}: no tensor was coded with planes");
            for t in &got {
                let (dtype, shape, bytes) = want
                    .get(&t.name)
                    .unwrap_or_else(|| panic!("{ctx}: loaded {} is not in the model", t.name));
                assert_eq!((t.dtype.name(), &t.shape), (dtype.as_str(), shape), "{ctx}");
                assert_eq!(t.device(), Device::Cuda(0), "{ctx}: {}", t.name);
                assert_same_bytes(&ctx, &t.name, &t.to_host().unwrap(), bytes, Some(POISON_A));
            }
        }
    }
}

/// `TIC_GPU_ARTIFACT_DIR=DIR`: every `*.tic` in `DIR` is opened (unsigned or
/// with its signature unchecked; with the identities in `NAME.tic.identity`
/// or `NAME.identity` beside it, if there is one), every tensor loaded on
/// the GPU (poisoned, no runtime digest check), and the SHA-256 of each
/// tensor's bytes compared with the header's. Passes, doing nothing, when
/// the variable is unset.
#[test]
fn artifacts_in_tic_gpu_artifact_dir_match_their_header_digests() {
    let Some(dir) = std::env::var_os("TIC_GPU_ARTIFACT_DIR") else {
        eprintln!("SKIPPED: TIC_GPU_ARTIFACT_DIR is not set");
        return;
    };
    let Some(gpu) = usable_gpu() else { return };
    let dir = PathBuf::from(dir);
    let mut arts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("TIC_GPU_ARTIFACT_DIR={}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("tic"))
        .collect();
    arts.sort();
    assert!(!arts.is_empty(), "no *.tic in {}", dir.display());
    for path in &arts {
        let identity_files = [
            PathBuf::from(format!("{}.identity", path.display())),
            path.with_extension("identity"),
        ];
        let ids = match identity_files.iter().find(|p| p.is_file()) {
            Some(p) => {
                tic_runtime::read_identities(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            }
            None => Vec::new(),
        };
        let art = Artifact::open(path, &options(&[], true, ids))
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        let start = std::time::Instant::now();
        let got = art
            .load_with(None, &gpu_options(POISON_A))
            .unwrap_or_else(|e| panic!("{}: GPU load on {gpu}: {e}", path.display()));
        let took = start.elapsed();
        let named = art.header().tensors.iter().filter(|t| !t.name.is_empty());
        assert_eq!(got.len(), named.count(), "{}", path.display());
        let mut bytes = 0;
        for t in &got {
            let entry = art.tensor(&t.name).unwrap();
            let host = t.to_host().unwrap();
            bytes += host.len();
            assert_eq!(
                host.len() as u64,
                entry.orig_len,
                "{}: {}",
                path.display(),
                t.name
            );
            assert!(
                tic_format::sha256(&host) == entry.sha256,
                "{}: tensor {} ({}, codec {}) differs from its header SHA-256",
                path.display(),
                t.name,
                t.dtype,
                entry.codec.name()
            );
            if !host.is_empty() {
                assert_eq!(
                    t.device(),
                    Device::Cuda(0),
                    "{}: {}",
                    path.display(),
                    t.name
                );
            }
        }
        eprintln!(
            "{}: {} tensors, {bytes} bytes loaded on {gpu} in {took:.2?}, every SHA-256 matches",
            path.display(),
            got.len()
        );
    }
}

// ---------------------------------------------------------------------------
// 5. A tampered chunk.

#[test]
fn a_tampered_chunk_is_named_and_the_other_tensors_still_load() {
    let Some(gpu) = usable_gpu() else { return };
    let mut rng = Rng(0xbb67_ae85_84ca_a73b);
    let want = vec![
        tensor(
            "first",
            "BF16",
            &[70_000],
            weights16(&mut rng, 70_000, true),
        ),
        tensor("second", "F32", &[200_000], weights32(&mut rng, 200_000)),
        tensor("third", "U8", &[1000], pseudo_random(3, 1000)),
    ];
    for protection in [Protection::Plain, Protection::Symmetric] {
        let c = compile_tensors(&want, protection);
        let (chunk, offset) = {
            let art = c.open();
            let h = art.header();
            let t = art.tensor("second").unwrap();
            assert!(t.chunk_count >= 3, "{} chunks", t.chunk_count);
            // The second chunk of the second tensor.
            let i = t.first_chunk as u64 + 1;
            let ch = &h.chunks[i as usize];
            (
                i,
                art.preamble().payload_offset() + ch.offset + ch.stored_len / 2,
            )
        };
        xor_byte(&c.path, offset, 0x10);
        // The signature covers the header, not the payload: it still opens.
        let art = c.open();
        let ctx = format!("{protection:?}, chunk {chunk} damaged, on {gpu}");
        for (opts, on) in [(gpu_options(POISON_A), "GPU"), (cpu_options(), "CPU")] {
            for names in [None, Some(&["second"][..]), Some(&["third", "second"][..])] {
                let e = art.load_with(names, &opts).unwrap_err();
                assert!(
                    matches!(&e, RuntimeError::ChunkDigest { chunk: named, tensor, .. }
                        if *named == chunk && tensor.contains("second")),
                    "{ctx}: {on} load of {names:?}: want ChunkDigest for chunk {chunk} of `second`, got {e:?}"
                );
                assert_eq!(e.kind(), ErrorKind::Verification, "{ctx}");
            }
        }
        // The tensors whose chunks are intact still load, bit for bit.
        for names in [&["first"][..], &["third"][..], &["third", "first"][..]] {
            let got = art
                .load_with(Some(names), &gpu_options(POISON_A))
                .unwrap_or_else(|e| panic!("{ctx}: loading {names:?}: {e}"));
            assert_eq!(got.len(), names.len());
            for (t, n) in got.iter().zip(names) {
                let w = want.iter().find(|w| w.name == *n).unwrap();
                assert_eq!(t.name, *n, "{ctx}");
                assert_eq!(t.device(), Device::Cuda(0), "{ctx}");
                assert_same_bytes(&ctx, n, &t.to_host().unwrap(), &w.data, Some(POISON_A));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 6. A damaged stream that passes its digest (a writer bug): the chunk is
//    changed, its digest in the header updated and the header signed again,
//    as a buggy compiler holding the key would. Plaintext only: making an
//    encrypted chunk that passes its tag needs the payload key, which the
//    public API does not hand out.

/// Positions to damage in a stored planes chunk: the first section's
/// header, a Huffman header, code lengths and tile directory, the lanes,
/// the end (padding), and the second section's header.
fn damage_positions(stored: &[u8]) -> Vec<usize> {
    let len = stored.len();
    let mut at = vec![
        0,
        1,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        12,
        16,
        40,
        80,
        150,
        len / 4,
        len / 2,
        3 * len / 4,
        len - 2,
        len - 1,
    ];
    let first = u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
    let second = 4 + first;
    at.extend([second, second + 3, second + 4, second + 5, second + 9]);
    at.retain(|&p| p < len);
    at.sort_unstable();
    at.dedup();
    at
}

#[test]
fn a_damaged_stream_that_passes_its_digest_is_never_returned_as_good() {
    let Some(gpu) = usable_gpu() else { return };
    let mut rng = Rng(0x3c6e_f372_fe94_f82b);
    let want = vec![
        tensor("w", "BF16", &[70_000], weights16(&mut rng, 70_000, true)),
        tensor("r", "U64", &[4096], le64((0..4096).map(|_| rng.next()))),
    ];
    let c = compile_tensors(&want, Protection::Plain);
    let original = Parts::read(&c.path);
    let header = original.parsed_header();
    let entry = |name: &str| header.tensors.iter().find(|t| t.name == name).unwrap();
    assert_eq!(
        entry("w").codec.id,
        CODEC_PLANES,
        "w should be coded with planes"
    );
    assert_eq!(entry("r").codec.id, CODEC_RAW, "r should be stored raw");

    let mut cases: Vec<(&str, usize, u8)> = Vec::new();
    let w_chunk = entry("w").first_chunk as usize;
    let w_stored = &original.payload[original.chunk_in_payload(&header, w_chunk)];
    for p in damage_positions(w_stored) {
        for mask in [0x01, 0x80] {
            cases.push(("w", p, mask));
        }
    }
    cases.push(("r", 12_345, 0x04));

    let dir = tempdir().unwrap();
    let (mut rejected, mut wrong_bytes, mut same_bytes) = (0, 0, 0);
    for (k, &(name, pos, mask)) in cases.iter().enumerate() {
        let t = entry(name);
        let ci = t.first_chunk as usize;
        let mut parts = original.clone();
        let range = parts.chunk_in_payload(&header, ci);
        parts.payload[range.start + pos] ^= mask;
        let stored = parts.payload[range.clone()].to_vec();
        let mut h = header.clone();
        h.chunks[ci].sha256 = tic_format::sha256(&stored);
        parts.set_header(&h);
        parts.sign(&c.key);
        let path = dir.path().join(format!("damaged-{k}.tic"));
        parts.write(&path);
        let art = Artifact::open(&path, &options(&[c.key.verifying_key()], false, vec![]))
            .unwrap_or_else(|e| panic!("re-signed artifact does not open: {e}"));
        let ctx = format!("{name} chunk {ci}, byte {pos} ^ {mask:#04x}, on {gpu}");

        // What the reference (CPU) decoder makes of the damaged chunk.
        let orig_len = h.chunks[ci].orig_len as usize;
        let mut decoded = vec![0u8; orig_len];
        let reference =
            tic_format::codec::decode_chunk(&t.codec, t.dtype.size(), &stored, &mut decoded);
        let w = &want.iter().find(|w| w.name == name).unwrap().data;
        let mut expected = w.clone();
        let chunk_start: usize = h
            .tensor_chunks(t)
            .take_while(|(i, _)| *i != ci as u64)
            .map(|(_, c)| c.orig_len as usize)
            .sum();
        expected[chunk_start..chunk_start + orig_len].copy_from_slice(&decoded);

        let names = [name];
        let raw = art.load_with(Some(&names), &gpu_options(POISON_A));
        let checked = art.load_with(
            Some(&names),
            &LoadOptions {
                verify: true,
                ..gpu_options(POISON_B)
            },
        );
        let cpu = art.load_with(Some(&names), &cpu_options());
        match reference {
            Err(why) => {
                // A conforming decoder must reject the stream (CODECS.md §5).
                rejected += 1;
                for (r, what) in [(&raw, "GPU, verify off"), (&checked, "GPU, verify on")] {
                    match r {
                        Ok(_) => panic!(
                            "{ctx}: {what}: the reference decoder rejects the chunk ({why}) but the GPU load returned it"
                        ),
                        Err(e) => assert!(
                            matches!(e, RuntimeError::Decode { .. } | RuntimeError::TensorDigest { .. }),
                            "{ctx}: {what}: want a Decode error (the reference says {why}), got {e:?}"
                        ),
                    }
                }
                let e = cpu.unwrap_err();
                assert!(
                    matches!(e, RuntimeError::Decode { .. }),
                    "{ctx}: CPU: {e:?}"
                );
            }
            Ok(()) => {
                // The stream is valid: the GPU must decode it exactly as the
                // reference does, whatever that gives.
                let got = raw
                    .unwrap_or_else(|e| {
                        panic!("{ctx}: GPU, verify off: the reference decodes the chunk, the GPU load failed: {e}")
                    })
                    .remove(0);
                assert_same_bytes(
                    &format!("{ctx}: GPU vs the reference decoder"),
                    name,
                    &got.to_host().unwrap(),
                    &expected,
                    Some(POISON_A),
                );
                if expected == *w {
                    same_bytes += 1;
                    let got = checked.unwrap_or_else(|e| panic!("{ctx}: GPU, verify on: {e}"));
                    assert_same_bytes(&ctx, name, &got[0].to_host().unwrap(), w, None);
                    cpu.unwrap_or_else(|e| panic!("{ctx}: CPU: {e}"));
                } else {
                    wrong_bytes += 1;
                    for (r, what) in [(checked, "GPU, verify on"), (cpu, "CPU")] {
                        let e = r.expect_err(&format!("{ctx}: {what}: wrong bytes returned"));
                        assert!(
                            matches!(e, RuntimeError::TensorDigest { .. }),
                            "{ctx}: {what}: want TensorDigest, got {e:?}"
                        );
                    }
                }
            }
        }
    }
    eprintln!(
        "{} damaged streams: {rejected} rejected, {wrong_bytes} decoded to other bytes, {same_bytes} to the same bytes",
        cases.len()
    );
    assert!(
        rejected > 0 && wrong_bytes > 0,
        "both outcomes are exercised"
    );
}
