//! Codec tests: round trips on adversarial data, one test per decoder error,
//! an in-test fuzz loop, and the committed test vectors.

use super::huffman::{plan_code, DIR_ENTRY, ESC_THRESHOLDS};
use super::*;

/// Tiny deterministic xorshift64* generator (no external rand crate).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub(crate) fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

pub(crate) fn bf16_bytes(vals: impl IntoIterator<Item = f32>) -> Vec<u8> {
    vals.into_iter()
        .flat_map(|v| half::bf16::from_f32(v).to_bits().to_le_bytes())
        .collect()
}

fn f32_bytes(vals: impl IntoIterator<Item = f32>) -> Vec<u8> {
    vals.into_iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn planes(rotate: bool, widths: &[u8]) -> CodecSpec {
    PlanesParams::new(rotate, widths).spec()
}

/// Encodes and decodes, asserting a bit-exact round trip; returns the stored chunk.
fn roundtrip(spec: &CodecSpec, es: usize, data: &[u8]) -> Vec<u8> {
    let stored = encode_chunk(spec, es, data).unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    let mut out = vec![0xA5u8; data.len()];
    decode_chunk(spec, es, &stored, &mut out).unwrap_or_else(|e| panic!("{}: {e}", spec.name()));
    assert!(out == data, "{} round trip differs", spec.name());
    stored
}

/// Specs exercised for an element size: raw, the chooser's candidates with
/// both rotation settings, and a few odd plane layouts.
fn all_specs(es: usize) -> Vec<CodecSpec> {
    let mut v = vec![CodecSpec::raw()];
    for float in [false, true] {
        for c in candidates(es, float) {
            v.push(c.spec());
            v.push(PlanesParams::new(!c.rotate, &c.widths).spec());
        }
    }
    let extra: &[&[u8]] = match es {
        1 => &[&[1, 7], &[3, 5], &[1; 8], &[4, 4]],
        2 => &[&[16], &[1, 15], &[10, 6], &[6, 10], &[5, 5, 6], &[2; 8]],
        4 => &[&[16, 16], &[10, 6, 16], &[1, 10, 5, 16], &[4; 8]],
        8 => &[&[16, 16, 16, 16], &[10, 6, 16, 16, 16], &[8; 8]],
        _ => &[],
    };
    for w in extra {
        v.push(planes(true, w));
        v.push(planes(false, w));
    }
    v
}

fn roundtrip_all(es: usize, data: &[u8]) {
    for spec in all_specs(es) {
        roundtrip(&spec, es, data);
    }
    let chosen = choose_codec(es, true, data, 1 << 19);
    roundtrip(&chosen, es, data);
}

#[test]
fn all_bf16_bit_patterns() {
    let data: Vec<u8> = (0..=u16::MAX).flat_map(|x| x.to_le_bytes()).collect();
    roundtrip_all(2, &data);
    // Reversed order too, so tiles see different symbol mixes.
    let rev: Vec<u8> = (0..=u16::MAX).rev().flat_map(|x| x.to_le_bytes()).collect();
    roundtrip(&planes(true, &[10, 6]), 2, &rev);
}

#[test]
fn all_256_bf16_exponents() {
    let mut rng = Rng::new(1);
    let data: Vec<u8> = (0..20_000u32)
        .flat_map(|i| {
            let exp = (i % 256) as u16;
            let bits = (rng.next_u64() as u16 & 0x807f) | (exp << 7);
            bits.to_le_bytes()
        })
        .collect();
    roundtrip_all(2, &data);
}

#[test]
fn float_specials_every_width() {
    let f32s = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffbf_ffff),
        f32::from_bits(0x7f80_0001),
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::MIN_POSITIVE,
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
    ];
    let mut rng = Rng::new(2);
    let mut vals: Vec<f32> = (0..3000).map(|_| (rng.normal() * 0.02) as f32).collect();
    for (i, &s) in f32s.iter().cycle().take(600).enumerate() {
        vals[i * 5] = s;
    }
    roundtrip_all(4, &f32_bytes(vals.iter().copied()));
    roundtrip_all(2, &bf16_bytes(vals.iter().copied()));
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .chain(
            [0x7c01u16, 0xfe55, 0x0001, 0x8001, 0x7c00, 0xfc00]
                .iter()
                .flat_map(|x| x.to_le_bytes()),
        )
        .collect();
    roundtrip_all(2, &f16);
    let f64s: Vec<u8> = vals
        .iter()
        .map(|&v| f64::from(v))
        .chain([
            f64::NAN,
            f64::from_bits(0x7ff0_0000_dead_beef),
            f64::from_bits(1),
            -0.0,
        ])
        .flat_map(|v| v.to_le_bytes())
        .collect();
    roundtrip_all(8, &f64s);
    let f8: Vec<u8> = rng.bytes(5000).iter().map(|b| b & 0x8f).collect();
    roundtrip_all(1, &f8);
}

#[test]
fn edge_sizes() {
    let mut rng = Rng::new(3);
    for es in [1usize, 2, 4, 8] {
        for n in [0usize, 1, 2, 31, 32, 33, 65535, 65536, 65537, 131071] {
            if es == 8 && n > 70_000 {
                continue;
            }
            let vals: Vec<f64> = (0..n).map(|_| rng.normal() * 0.05).collect();
            let data: Vec<u8> = match es {
                1 => vals.iter().map(|v| (v * 400.0) as i8 as u8).collect(),
                2 => bf16_bytes(vals.iter().map(|&v| v as f32)),
                4 => f32_bytes(vals.iter().map(|&v| v as f32)),
                _ => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            let specs = if n >= 65535 {
                candidates(es, true).into_iter().map(|c| c.spec()).collect()
            } else {
                all_specs(es)
            };
            for spec in specs {
                roundtrip(&spec, es, &data);
            }
        }
    }
}

#[test]
fn empty_chunk_is_p_empty_raw_sections() {
    let spec = planes(true, &[10, 6]);
    let stored = roundtrip(&spec, 2, &[]);
    assert_eq!(stored, [1, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(roundtrip(&CodecSpec::raw(), 2, &[]), Vec::<u8>::new());
}

#[test]
fn repeated_value_is_const() {
    let data = bf16_bytes(std::iter::repeat_n(0.125f32, 100_000));
    let spec = planes(true, &[9, 7]);
    let stored = roundtrip(&spec, 2, &data);
    assert_eq!(stored.len(), 2 * 7, "two const sections");
    assert_eq!(stored[4], 1);
    assert_eq!(choose_codec(2, true, &data, 1 << 19).id, CODEC_PLANES);
}

#[test]
fn random_bytes_fall_back_to_raw_planes() {
    let mut rng = Rng::new(4);
    for es in [1usize, 2, 4, 8] {
        let data = rng.bytes(es * 100_003);
        for spec in all_specs(es) {
            let stored = roundtrip(&spec, es, &data);
            let p = spec.params.get(1).copied().unwrap_or(0) as usize;
            assert!(stored.len() <= data.len() + 6 * p, "{}", spec.name());
        }
        assert_eq!(choose_codec(es, true, &data, 1 << 16), CodecSpec::raw());
        assert_eq!(choose_codec(es, false, &data, 1 << 16), CodecSpec::raw());
    }
}

/// The Huffman size estimate assumes half a byte of padding per lane; when
/// a plane's code only just beats raw on that estimate, the real body can
/// come out no smaller than raw, and the encoder must then store the plane
/// raw. Searches for such a plane (bytes, mildly skewed), then checks that
/// the chunk stores it raw and round-trips.
#[test]
fn huffman_body_not_smaller_than_raw_is_stored_raw() {
    let spec = planes(false, &[8]);
    let n = 3 * 4096 + 5;
    let raw_len = n;
    for seed in 0..4000u64 {
        let mut rng = Rng::new(seed);
        // Uniform bytes with symbol 0 boosted just enough to make a code
        // of the same size as raw worth trying.
        let boost = 0.046 + 0.00001 * (seed % 700) as f64;
        let data: Vec<u8> = (0..n)
            .map(|_| {
                if rng.unit() < boost {
                    0
                } else {
                    rng.below(256) as u8
                }
            })
            .collect();
        let mut hist = vec![0u32; 256];
        data.iter().for_each(|&b| hist[usize::from(b)] += 1);
        let Some(plan) = plan_code(&hist, 8, n, raw_len as u64, &ESC_THRESHOLDS, true, false)
        else {
            continue;
        };
        let syms: Vec<u16> = data.iter().map(|&b| u16::from(b)).collect();
        let mut body = Vec::new();
        let mut wr = huffman::BodyWriter::start(n, 8, &plan, &mut body, Vec::new());
        for (t, tile) in syms.chunks(TILE_SYMBOLS).enumerate() {
            wr.tile(t, tile, &mut body);
        }
        if body.len() < raw_len {
            continue;
        }
        let stored = roundtrip(&spec, 1, &data);
        assert_eq!(
            stored[4],
            planes::MODE_RAW,
            "seed {seed}: the plane is stored raw"
        );
        assert_eq!(stored.len(), 5 + raw_len);
        return;
    }
    panic!("no plane whose Huffman body only just misses raw in the search");
}

/// Symbol k with probability ~2^-(k+1): an unlimited Huffman code would need
/// lengths far above 12.
fn geometric_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| (rng.next_u64() | (1 << 63)).trailing_zeros() as u8)
        .collect()
}

#[test]
fn skewed_forces_length_limit() {
    let mut rng = Rng::new(5);
    let data = geometric_bytes(&mut rng, 300_000);
    let distinct = {
        let mut seen = [false; 256];
        data.iter().for_each(|&b| seen[b as usize] = true);
        seen.iter().filter(|&&s| s).count()
    };
    assert!(distinct > 14, "need codes longer than 12 unlimited");
    let mut hist = vec![0u32; 256];
    data.iter().for_each(|&b| hist[b as usize] += 1);
    let plan = plan_code(&hist, 8, data.len(), u64::MAX, &ESC_THRESHOLDS, true, false).unwrap();
    assert!(plan.lens.iter().all(|&l| u32::from(l) <= MAX_CODE_LEN));
    let stored = roundtrip(&planes(false, &[8]), 1, &data);
    // Entropy is 2 bits per symbol.
    assert!(stored.len() < data.len() / 3, "{}", stored.len());
    assert_eq!(stored[4], 2, "huffman mode");
}

#[test]
fn rare_symbols_are_escaped() {
    let mut rng = Rng::new(6);
    let mut data: Vec<u8> = (0..200_000).map(|_| (rng.below(4) + 100) as u8).collect();
    for (i, b) in (0..=255u8).filter(|b| !(100..104).contains(b)).enumerate() {
        data[i * 700 + 3] = b;
    }
    let mut hist = vec![0u32; 256];
    data.iter().for_each(|&b| hist[b as usize] += 1);
    let plan = plan_code(&hist, 8, data.len(), u64::MAX, &ESC_THRESHOLDS, true, false).unwrap();
    assert!(plan.lens[256] > 0, "escape symbol used");
    assert!(plan.count <= 8, "table range trimmed, count={}", plan.count);
    let stored = roundtrip(&planes(false, &[8]), 1, &data);
    assert!(stored.len() < data.len() / 3);
}

/// Whether symbol `i` of a long plane is outside the encoder's histogram
/// sample.
fn unsampled(i: usize) -> bool {
    use super::planes::{HIST_BLOCK, HIST_STEP};
    i % (HIST_BLOCK * HIST_STEP) >= HIST_BLOCK
}

#[test]
fn symbols_the_histogram_sample_misses_are_escaped() {
    use super::planes::HIST_SAMPLED_FROM;
    let mut rng = Rng::new(16);
    let n = HIST_SAMPLED_FROM + 12_345;
    let mut data: Vec<u8> = (0..n).map(|_| (rng.below(4) + 100) as u8).collect();
    // Every other value, each once, where the sample does not look.
    let spots: Vec<usize> = (0..n).filter(|&i| unsampled(i)).step_by(997).collect();
    for (b, &i) in (0..=255u8).filter(|b| !(100..104).contains(b)).zip(&spots) {
        data[i] = b;
    }
    let stored = roundtrip(&planes(false, &[8]), 1, &data);
    assert_eq!(stored[4], 2, "huffman mode");
    assert!(stored.len() < n / 3, "{}", stored.len());
}

#[test]
fn a_sample_of_one_value_is_checked_before_the_plane_is_constant() {
    use super::planes::HIST_SAMPLED_FROM;
    let n = HIST_SAMPLED_FROM + 100;
    let data: Vec<u8> = (0..n)
        .map(|i| {
            if unsampled(i) && i % 5000 == 4999 {
                9
            } else {
                7
            }
        })
        .collect();
    assert!(data.contains(&9));
    let stored = roundtrip(&planes(false, &[8]), 1, &data);
    assert_eq!(stored[4], 2, "huffman mode, not const");
    let same = vec![7u8; n];
    assert_eq!(
        roundtrip(&planes(false, &[8]), 1, &same)[4],
        1,
        "const mode"
    );
}

#[test]
fn bf16_normal_compresses() {
    let mut rng = Rng::new(7);
    let data = bf16_bytes((0..300_000).map(|_| (rng.normal() * 0.02) as f32));
    let spec = choose_codec(2, true, &data, 1 << 17);
    assert_eq!(spec.id, CODEC_PLANES, "{}", spec.name());
    let mut stored = 0;
    for c in data.chunks(2 << 17) {
        stored += roundtrip(&spec, 2, c).len();
    }
    let ratio = stored as f64 / data.len() as f64;
    assert!(ratio < 0.70, "{} ratio {ratio}", spec.name());
}

#[test]
fn chooser_on_a_sub_sampled_chunk_picks_a_near_best_candidate() {
    // One 2^18-element chunk: the chooser histograms a quarter of it. What
    // it picks must encode within 0.2% of the best candidate, encoded whole.
    let mut rng = Rng::new(8);
    let data = bf16_bytes((0..1 << 18).map(|_| (rng.normal() * 0.03) as f32));
    let spec = choose_codec(2, true, &data, 1 << 18);
    let chosen = roundtrip(&spec, 2, &data).len();
    let best = super::candidates(2, true)
        .iter()
        .map(|p| roundtrip(&p.spec(), 2, &data).len())
        .min()
        .unwrap();
    assert!(
        chosen as f64 <= best as f64 * 1.002,
        "{}: {chosen} bytes, best candidate {best}",
        spec.name()
    );
}

#[test]
fn baseline_and_detected_instruction_sets_give_the_same_bytes() {
    // The hot loops run in a build for the instruction set the CPU has
    // (AVX2 and BMI2 on most x86-64) or in the baseline build: the same
    // source, which must write the same stored bytes and decode them back.
    let mut rng = Rng::new(33);
    let cases: Vec<(usize, Vec<u8>)> = vec![
        (
            2,
            bf16_bytes((0..150_001).map(|_| (rng.normal() * 0.02) as f32)),
        ),
        (
            2,
            (0..=u16::MAX).rev().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        (
            4,
            f32_bytes((0..70_003).map(|_| (rng.normal() * 0.05) as f32)),
        ),
        (
            8,
            (0..9_001)
                .flat_map(|_| (rng.normal() * 3.0).to_le_bytes())
                .collect(),
        ),
        (
            1,
            (0..50_000)
                .map(|_| (rng.normal() * 9.0) as i8 as u8)
                .collect(),
        ),
        (2, vec![0x3f; 2 * 5000]),
    ];
    for (es, data) in &cases {
        for spec in all_specs(*es) {
            let fast = encode_chunk(&spec, *es, data).unwrap();
            let base = dispatch::baseline(|| encode_chunk(&spec, *es, data)).unwrap();
            assert!(
                fast == base,
                "{} ({es}-byte elements): stored bytes differ",
                spec.name()
            );
            let mut out = vec![0u8; data.len()];
            dispatch::baseline(|| decode_chunk(&spec, *es, &fast, &mut out)).unwrap();
            assert!(&out == data, "{}: the baseline decode differs", spec.name());
            out.fill(0);
            decode_chunk(&spec, *es, &fast, &mut out).unwrap();
            assert!(&out == data, "{}: the detected decode differs", spec.name());
        }
    }
}

#[test]
fn plane_cost_floor_never_exceeds_plane_cost() {
    // Peaked, flat, sparse, two-valued and one-valued histograms of every
    // width the chooser sizes (and wider), over tiny to multi-tile planes.
    let mut rng = Rng::new(31);
    for case in 0..600u64 {
        let w = 1 + (case % 14) as u32;
        let bins = 1usize << w;
        let n = [1, 7, 300, TILE_SYMBOLS, 3 * TILE_SYMBOLS + 5, 1 << 19][(case / 14 % 6) as usize];
        let mut hist = vec![0u32; bins];
        match case % 5 {
            0 => hist[rng.below(bins as u64) as usize] = n as u32,
            1 => (0..n).for_each(|_| hist[rng.below(bins as u64) as usize] += 1),
            2 => (0..n).for_each(|_| {
                let x = (rng.normal() * (bins as f64 / 40.0)).abs() as usize;
                hist[x.min(bins - 1)] += 1;
            }),
            3 => {
                hist[0] = (n as u32).div_ceil(2);
                hist[bins - 1] = n as u32 / 2;
            }
            _ => (0..n).for_each(|_| hist[rng.below(3.min(bins) as u64) as usize] += 1),
        }
        let (floor, cost) = (
            choose::plane_cost_floor(&hist, w, n),
            choose::plane_cost(&hist, w, n),
        );
        assert!(
            floor <= cost,
            "case {case} (w {w}, n {n}): floor {floor} > cost {cost}"
        );
    }
}

#[test]
fn pruned_chooser_picks_what_sizing_every_candidate_picks() {
    // The chooser skips candidates whose lower bound exceeds the best cost
    // so far; it must still pick exactly what sizing all of them picks.
    let mut rng = Rng::new(32);
    let mut cases: Vec<(usize, bool, Vec<u8>)> = vec![
        (
            2,
            true,
            bf16_bytes((0..300_000).map(|_| (rng.normal() * 0.02) as f32)),
        ),
        (
            2,
            true,
            bf16_bytes((0..700).map(|_| (rng.normal() * 0.5 + 1.0) as f32)),
        ),
        (2, true, bf16_bytes((0..40_000).map(|i| (i % 7) as f32))),
        (2, true, rng.bytes(200_000)),
        (
            2,
            true,
            (0..=u16::MAX).flat_map(|x| x.to_le_bytes()).collect(),
        ),
        (
            4,
            true,
            f32_bytes((0..100_000).map(|_| (rng.normal() * 0.05) as f32)),
        ),
        (4, true, f32_bytes((0..5000).map(|i| i as f32))),
        (
            8,
            true,
            (0..20_000)
                .flat_map(|_| (rng.normal() * 3.0).to_le_bytes())
                .collect(),
        ),
        (
            8,
            false,
            (0..20_000u64)
                .flat_map(|_| rng.below(30_000).to_le_bytes())
                .collect(),
        ),
        (
            1,
            true,
            (0..50_000)
                .map(|_| (rng.normal() * 9.0) as i8 as u8)
                .collect(),
        ),
        (2, true, vec![0; 4096]),
    ];
    // Real weights: the example model's tensors, when the checkout has them.
    let shard = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/model/model-00002-of-00002.safetensors"
    );
    if let Ok(file) = std::fs::read(shard) {
        let hlen = crate::safetensors::header_len(file[..8].try_into().unwrap(), file.len() as u64);
        let at = 8 + hlen.unwrap() as usize;
        let parsed = crate::safetensors::parse_header(&file[8..at], (file.len() - at) as u64);
        for t in parsed.unwrap() {
            let bytes = file[at + t.begin as usize..at + t.end as usize].to_vec();
            cases.push((t.dtype.size(), t.dtype.is_float(), bytes));
        }
    }
    let mut picked_planes = 0;
    for (i, (es, float, data)) in cases.iter().enumerate() {
        for ce in [1000, 1 << 16, 1 << 19] {
            let pruned = choose::choose_with(*es, *float, data, ce, true);
            let full = choose::choose_with(*es, *float, data, ce, false);
            assert_eq!(pruned, full, "case {i}, {ce}-element chunks");
            picked_planes += usize::from(pruned.id == CODEC_PLANES);
        }
    }
    assert!(
        picked_planes > cases.len(),
        "the cases exercise the candidates"
    );
}

#[test]
fn integer_types_use_byte_planes() {
    let mut rng = Rng::new(8);
    let ids: Vec<u8> = (0..50_000u64)
        .flat_map(|_| (rng.below(30_000) as i64).to_le_bytes())
        .collect();
    let spec = choose_codec(8, false, &ids, 1 << 19);
    assert_eq!(spec, planes(false, &[8; 8]));
    let stored = roundtrip(&spec, 8, &ids);
    assert!(stored.len() < ids.len() / 3);
}

#[test]
fn api_types_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<CodecSpec>();
    check::<PlanesParams>();
    check::<CodecError>();
    // Chunks encode and decode independently on any thread.
    let data = bf16_bytes((0..5000).map(|i| (i as f32).sin()));
    let spec = choose_codec(2, true, &data, 1000);
    std::thread::scope(|s| {
        for c in data.chunks(2000) {
            let spec = &spec;
            s.spawn(move || roundtrip(spec, 2, c));
        }
    });
}

#[test]
fn spec_names_and_validation() {
    assert_eq!(CodecSpec::raw().name(), "raw");
    assert_eq!(planes(true, &[10, 6]).name(), "planes(rot,10+6)");
    assert_eq!(planes(false, &[8, 8, 8, 8]).name(), "planes(8+8+8+8)");
    assert_eq!(
        CodecSpec {
            id: 9,
            params: vec![1, 2]
        }
        .name(),
        "codec9(0102)"
    );
    assert!(CodecSpec::raw().is_lossless() && planes(true, &[8, 8]).is_lossless());
    assert!(planes(true, &[10, 6]).validate(2).is_ok());
    assert!(CodecSpec::raw().validate(3).is_ok());
    let p = PlanesParams::from_bytes(&[1, 2, 9, 7], 2).unwrap();
    assert_eq!(p, PlanesParams::new(true, &[9, 7]));
    assert_eq!(p.to_bytes(), [1, 2, 9, 7]);
}

#[test]
fn encode_rejects_bad_input() {
    assert!(matches!(
        encode_chunk(&planes(true, &[8, 8]), 2, &[1, 2, 3]),
        Err(CodecError::BadLength {
            len: 3,
            elem_size: 2
        })
    ));
    assert!(matches!(
        encode_chunk(&planes(true, &[8, 8]), 4, &[0; 8]),
        Err(CodecError::BadParams { .. })
    ));
    assert!(matches!(
        encode_chunk(
            &CodecSpec {
                id: 200,
                params: vec![]
            },
            4,
            &[0; 8]
        ),
        Err(CodecError::UnknownCodec { id: 200 })
    ));
}

// ---------------------------------------------------------------------------
// Decoder errors, one per variant.

fn dec(spec: &CodecSpec, es: usize, stored: &[u8], n: usize) -> Result<(), CodecError> {
    let mut out = vec![0u8; n * es];
    decode_chunk(spec, es, stored, &mut out)
}

fn section(mode: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_le_bytes().to_vec();
    v.push(mode);
    v.extend_from_slice(body);
    v
}

/// A hand-built mode-2 body: table (first, lengths incl. ESC), one tile
/// directory per entry of `lanes` (32 lanes each), then the lane bytes.
fn huff_body(first: u16, lens: &[u8], tiles: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let count = (lens.len() - 1) as u16;
    let mut v = first.to_le_bytes().to_vec();
    v.extend_from_slice(&count.to_le_bytes());
    for pair in lens.chunks(2) {
        v.push(pair[0] | pair.get(1).map_or(0, |h| h << 4));
    }
    let mut off = 0u32;
    for t in tiles {
        v.extend_from_slice(&off.to_le_bytes());
        for j in 0..LANES {
            let l = t.get(j).map_or(0, |l| l.len());
            v.extend_from_slice(&(l as u16).to_le_bytes());
            off += l as u32;
        }
    }
    for t in tiles {
        for l in t {
            v.extend_from_slice(l);
        }
    }
    v
}

fn u8_spec() -> CodecSpec {
    planes(false, &[8])
}

#[test]
fn valid_hand_built_stream_decodes() {
    // Symbols 0 (code "0") and 1 (code "1"): one tile, n = 33.
    // Lane 0 carries symbols 0 and 32, lanes 1..31 one symbol each.
    let mut lanes = vec![vec![0b10u8]];
    lanes.extend((1..32).map(|j| vec![(j % 2) as u8]));
    let s = section(2, &huff_body(0, &[1, 1, 0], &[lanes]));
    let mut out = vec![0u8; 33];
    decode_chunk(&u8_spec(), 1, &s, &mut out).unwrap();
    let mut want: Vec<u8> = (0..32).map(|j| (j % 2) as u8).collect();
    want.push(1);
    assert_eq!(out, want);
}

/// The worked example of CODECS.md, byte for byte.
#[test]
fn codecs_md_worked_example() {
    let mut stored = vec![0x51, 0, 0, 0, 0x02]; // plane 0: 81 bytes, huffman
    stored.extend([0x7e, 0x00, 0x02, 0x00]); // first = 126, count = 2
    stored.extend([0x12, 0x02]); // lengths 2, 1 | ESC 2, padding 0
    stored.extend([0, 0, 0, 0]); // tile 0 offset
    stored.extend([1, 0, 1, 0, 1, 0, 1, 0, 2, 0]); // lanes 0..4
    stored.extend([0; 54]); // lanes 5..31 empty
    stored.extend([0x00, 0x00, 0x01, 0x00, 0x03, 0x02]); // lane data
    stored.extend([0x06, 0, 0, 0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]); // plane 1 raw
    assert_eq!(stored.len(), 95);
    let spec = CodecSpec {
        id: CODEC_PLANES,
        params: vec![0x01, 0x02, 0x08, 0x08],
    };
    assert_eq!(spec.name(), "planes(rot,8+8)");
    let mut out = [0u8; 10];
    decode_chunk(&spec, 2, &stored, &mut out).unwrap();
    // BF16 1.0, -1.0, 0.5, 1.0, 2.0
    assert_eq!(
        out,
        [0x80, 0x3f, 0x80, 0xbf, 0x00, 0x3f, 0x80, 0x3f, 0x00, 0x40]
    );
}

#[test]
fn err_unknown_codec() {
    let spec = CodecSpec {
        id: 77,
        params: vec![],
    };
    assert!(matches!(
        dec(&spec, 2, &[], 0),
        Err(CodecError::UnknownCodec { id: 77 })
    ));
    assert!(matches!(
        spec.validate(2),
        Err(CodecError::UnknownCodec { id: 77 })
    ));
}

#[test]
fn err_bad_params() {
    let bad: &[(u16, &[u8], usize)] = &[
        (CODEC_PLANES, &[1, 2, 8, 7], 2),
        (CODEC_PLANES, &[2, 2, 8, 8], 2),
        (CODEC_PLANES, &[1, 0], 2),
        (CODEC_PLANES, &[1, 2, 8], 2),
        (CODEC_PLANES, &[1, 2, 8, 8, 0], 2),
        (CODEC_PLANES, &[0, 2, 17, 15], 4),
        (CODEC_PLANES, &[0, 2, 0, 16], 2),
        (CODEC_PLANES, &[0, 9, 1, 1, 1, 1, 1, 1, 1, 1, 0], 1),
        (CODEC_PLANES, &[0, 1, 24], 3),
        (CODEC_PLANES, &[], 2),
        (CODEC_RAW, &[0], 2),
        (CODEC_RAW, &[], 0),
    ];
    for &(id, params, es) in bad {
        let spec = CodecSpec {
            id,
            params: params.to_vec(),
        };
        assert!(
            matches!(spec.validate(es), Err(CodecError::BadParams { .. })),
            "{params:?} es={es}"
        );
        if es > 0 {
            assert!(matches!(
                dec(&spec, es, &[], 0),
                Err(CodecError::BadParams { .. })
            ));
        }
    }
    let long = CodecSpec {
        id: CODEC_PLANES,
        params: vec![0; 65],
    };
    assert!(matches!(
        long.validate(2),
        Err(CodecError::BadParams { .. })
    ));
}

#[test]
fn err_bad_length() {
    let mut out = [0u8; 3];
    assert!(matches!(
        decode_chunk(&planes(true, &[8, 8]), 2, &[], &mut out),
        Err(CodecError::BadLength {
            len: 3,
            elem_size: 2
        })
    ));
}

#[test]
fn err_truncated() {
    let mut rng = Rng::new(9);
    let data = bf16_bytes((0..70_000).map(|_| (rng.normal() * 0.02) as f32));
    let spec = planes(true, &[9, 7]);
    let stored = roundtrip(&spec, 2, &data);
    for cut in [0, 3, 4, 5, 6, 9, 40, stored.len() / 2, stored.len() - 1] {
        let r = dec(&spec, 2, &stored[..cut], 70_000);
        assert!(
            matches!(r, Err(CodecError::Truncated { .. })),
            "cut {cut}: {r:?}"
        );
    }
    assert!(matches!(
        dec(&CodecSpec::raw(), 2, &[0; 5], 3),
        Err(CodecError::Truncated { .. })
    ));
}

#[test]
fn err_trailing_bytes() {
    let data = bf16_bytes([1.0f32, 2.0, 3.0]);
    let spec = planes(true, &[8, 8]);
    let mut stored = roundtrip(&spec, 2, &data);
    stored.push(0);
    assert!(matches!(
        dec(&spec, 2, &stored, 3),
        Err(CodecError::TrailingBytes { extra: 1 })
    ));
    assert!(matches!(
        dec(&CodecSpec::raw(), 2, &[0; 8], 3),
        Err(CodecError::TrailingBytes { extra: 2 })
    ));
}

#[test]
fn err_bad_mode() {
    let s = section(3, &[0]);
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::BadMode { plane: 0, mode: 3 })
    ));
}

#[test]
fn err_huffman_too_wide() {
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![0]]]));
    let spec = planes(false, &[16]);
    assert!(matches!(
        dec(&spec, 2, &s, 1),
        Err(CodecError::HuffmanTooWide {
            plane: 0,
            width: 16
        })
    ));
}

#[test]
fn err_bad_section_length() {
    // Raw plane of 3 one-byte symbols needs 3 bytes.
    let s = section(0, &[1, 2]);
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 3),
        Err(CodecError::BadSectionLength {
            expected: 3,
            got: 2,
            ..
        })
    ));
    let s = section(1, &[1, 0, 0]);
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 3),
        Err(CodecError::BadSectionLength {
            expected: 2,
            got: 3,
            ..
        })
    ));
    // section_len 0 has no room for the mode byte.
    let s = [0u8, 0, 0, 0, 0];
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 3),
        Err(CodecError::BadSectionLength { .. })
    ));
}

#[test]
fn err_bad_const() {
    let spec = planes(false, &[7, 1]);
    let mut s = section(1, &[0x80, 0]);
    s.extend(section(1, &[0, 0]));
    assert!(matches!(
        dec(&spec, 1, &s, 4),
        Err(CodecError::BadConst {
            plane: 0,
            value: 128,
            width: 7
        })
    ));
}

#[test]
fn err_raw_padding() {
    let spec = planes(false, &[7, 1]);
    let mut s = section(0, &[0x80]);
    s.extend(section(1, &[0, 0]));
    assert!(matches!(
        dec(&spec, 1, &s, 1),
        Err(CodecError::RawPadding { plane: 0 })
    ));
}

fn table_fault(lens: &[u8], first: u16) -> Option<TableFault> {
    let s = section(2, &huff_body(first, lens, &[vec![vec![0]]]));
    match dec(&u8_spec(), 1, &s, 1) {
        Err(CodecError::BadTable { fault, .. }) => Some(fault),
        _ => None,
    }
}

#[test]
fn err_bad_table() {
    assert_eq!(
        table_fault(&[1, 1, 1, 0], 0),
        Some(TableFault::KraftOverflow)
    );
    assert_eq!(
        table_fault(&[1, 13, 0], 0),
        Some(TableFault::CodeTooLong { symbol: 1, len: 13 })
    );
    assert_eq!(
        table_fault(&[1, 15], 0),
        Some(TableFault::CodeTooLong {
            symbol: 256,
            len: 15
        })
    );
    assert_eq!(table_fault(&[0, 0, 0], 0), Some(TableFault::EmptyCode));
    assert!(matches!(
        table_fault(&[1, 1, 0], 255),
        Some(TableFault::RangeOutsideAlphabet {
            first: 255,
            count: 2,
            ..
        })
    ));
    // count = 0: one nibble (ESC) plus a padding nibble that must be zero.
    let mut body = huff_body(0, &[1], &[vec![vec![0]]]);
    body[4] |= 0x10;
    let s = section(2, &body);
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::BadTable {
            fault: TableFault::NonzeroPadding,
            ..
        })
    ));
}

#[test]
fn err_bad_tile_offset() {
    let mut rng = Rng::new(10);
    let data = geometric_bytes(&mut rng, 70_000);
    let spec = u8_spec();
    let mut stored = roundtrip(&spec, 1, &data);
    assert_eq!(stored[4], 2);
    let c = u16::from_le_bytes([stored[7], stored[8]]) as usize;
    let dir = 5 + 4 + (c + 1).div_ceil(2);
    // Tile 1's offset.
    stored[dir + DIR_ENTRY] ^= 1;
    assert!(matches!(
        dec(&spec, 1, &stored, 70_000),
        Err(CodecError::BadTileOffset { tile: 1, .. })
    ));
    // Tile 0's offset must be 0.
    let mut stored = roundtrip(&spec, 1, &data);
    stored[dir] = 1;
    assert!(matches!(
        dec(&spec, 1, &stored, 70_000),
        Err(CodecError::BadTileOffset {
            tile: 0,
            expected: 0,
            got: 1,
            ..
        })
    ));
}

#[test]
fn err_lane_area_length() {
    let mut body = huff_body(0, &[1, 0], &[vec![vec![0]]]);
    body.push(0);
    let s = section(2, &body);
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::LaneAreaLength {
            expected: 1,
            got: 2,
            ..
        })
    ));
}

#[test]
fn err_invalid_code() {
    // Only symbol 0 has a code ("0"); the pattern "1" is unassigned.
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![1]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::InvalidCode {
            tile: 0,
            lane: 0,
            ..
        })
    ));
}

#[test]
fn err_lane_overrun() {
    // One symbol in lane 0 but the lane is empty.
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::LaneOverrun {
            tile: 0,
            lane: 0,
            ..
        })
    ));
    // An escape whose raw bits run past the lane end.
    let s = section(2, &huff_body(0, &[1, 1], &[vec![vec![0b1111_1111]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::LaneOverrun {
            tile: 0,
            lane: 0,
            ..
        })
    ));
    // Same with an encoder-made stream: cut the last lane short by one byte.
    let mut rng = Rng::new(11);
    let data = geometric_bytes(&mut rng, 1000);
    let spec = u8_spec();
    let mut stored = roundtrip(&spec, 1, &data);
    let c = u16::from_le_bytes([stored[7], stored[8]]) as usize;
    let last_lane = 5 + 4 + (c + 1).div_ceil(2) + 4 + 2 * 31;
    let l = u16::from_le_bytes([stored[last_lane], stored[last_lane + 1]]);
    stored[last_lane..last_lane + 2].copy_from_slice(&(l - 1).to_le_bytes());
    stored.pop();
    let sl = (stored.len() - 4) as u32;
    stored[..4].copy_from_slice(&sl.to_le_bytes());
    assert!(matches!(
        dec(&spec, 1, &stored, 1000),
        Err(CodecError::LaneOverrun {
            tile: 0,
            lane: 31,
            ..
        })
    ));
}

#[test]
fn err_lane_length() {
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![0, 0]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::LaneLength {
            lane: 0,
            expected: 1,
            got: 2,
            ..
        })
    ));
    // A lane that carries no symbol must be empty.
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![0], vec![0]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::LaneLength {
            lane: 1,
            expected: 0,
            got: 1,
            ..
        })
    ));
}

#[test]
fn err_nonzero_padding() {
    let s = section(2, &huff_body(0, &[1, 0], &[vec![vec![0b10]]]));
    assert!(matches!(
        dec(&u8_spec(), 1, &s, 1),
        Err(CodecError::NonzeroPadding {
            tile: 0,
            lane: 0,
            ..
        })
    ));
}

#[test]
fn kraft_below_one_is_accepted() {
    // Symbol 5 with length 2 only: code "00"; three patterns unassigned.
    let s = section(2, &huff_body(5, &[2, 0], &[vec![vec![0]]]));
    let mut out = [9u8];
    decode_chunk(&u8_spec(), 1, &s, &mut out).unwrap();
    assert_eq!(out, [5]);
}

#[test]
fn escaped_value_may_also_have_a_code() {
    // Symbol 0 = "0", ESC = "1"; lane: ESC then value 0 (8 bits) = 9 bits.
    let s = section(2, &huff_body(0, &[1, 1], &[vec![vec![0b1, 0]]]));
    let mut out = [9u8];
    decode_chunk(&u8_spec(), 1, &s, &mut out).unwrap();
    assert_eq!(out, [0]);
}

// ---------------------------------------------------------------------------
// Fuzz: mutated and truncated valid streams must never panic.

#[test]
fn fuzz_mutated_streams_never_panic() {
    let mut rng = Rng::new(12);
    let mut seeds: Vec<(CodecSpec, usize, Vec<u8>, usize)> = Vec::new();
    let bf = bf16_bytes((0..70_000).map(|_| (rng.normal() * 0.02) as f32));
    for w in [&[9u8, 7][..], &[10, 6], &[8, 8]] {
        let spec = planes(true, w);
        seeds.push((
            spec.clone(),
            2,
            encode_chunk(&spec, 2, &bf).unwrap(),
            70_000,
        ));
    }
    let small = bf16_bytes((0..300).map(|_| (rng.normal() * 0.02) as f32));
    let spec = planes(true, &[10, 6]);
    seeds.push((
        spec.clone(),
        2,
        encode_chunk(&spec, 2, &small).unwrap(),
        300,
    ));
    let mut g = geometric_bytes(&mut rng, 5000);
    g[17] = 200;
    g[4000] = 250;
    seeds.push((u8_spec(), 1, encode_chunk(&u8_spec(), 1, &g).unwrap(), 5000));
    let f = f32_bytes((0..2000).map(|_| (rng.normal() * 0.02) as f32));
    let spec = planes(true, &[10, 6, 8, 8]);
    seeds.push((spec.clone(), 4, encode_chunk(&spec, 4, &f).unwrap(), 2000));
    let mut ok = 0;
    // TIC_FUZZ_ITERS raises the count for a longer local run.
    let iters: usize = std::env::var("TIC_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    for iter in 0..iters {
        let (spec, es, base, n) = &seeds[iter % seeds.len()];
        let mut s = base.clone();
        let edits = 1 + rng.below(4);
        for _ in 0..edits {
            let len = s.len().max(1) as u64;
            match rng.below(6) {
                0 => {
                    let i = rng.below(len) as usize;
                    if let Some(b) = s.get_mut(i) {
                        *b ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    // Hit the headers and tables more often.
                    let i = rng.below(len.min(200)) as usize;
                    if let Some(b) = s.get_mut(i) {
                        *b = rng.next_u64() as u8;
                    }
                }
                2 => s.truncate(rng.below(len) as usize),
                3 => {
                    let i = rng.below(len) as usize;
                    s.insert(i.min(s.len()), rng.next_u64() as u8);
                }
                4 => {
                    if !s.is_empty() {
                        s.remove(rng.below(len) as usize % s.len());
                    }
                }
                _ => {
                    let i = rng.below(len) as usize;
                    if let Some(b) = s.get_mut(i) {
                        *b = [0, 0xff, 1, 0x80][rng.below(4) as usize];
                    }
                }
            }
        }
        let n = match rng.below(8) {
            0 => rng.below(*n as u64 + 2) as usize,
            _ => *n,
        };
        let mut out = vec![0u8; n * es];
        if decode_chunk(spec, *es, &s, &mut out).is_ok() {
            ok += 1;
        }
    }
    // Most mutations must be detected; a few (e.g. raw plane bits) are not.
    assert!(ok < iters / 2, "{ok} mutated streams decoded");
}

// ---------------------------------------------------------------------------
// Test vectors (format-spec/test-vectors/codec/).

pub(crate) struct Vector {
    pub name: &'static str,
    pub description: &'static str,
    pub elem_size: usize,
    pub spec: CodecSpec,
    pub data: Vec<u8>,
}

/// The data and specs behind the committed vectors.
pub(crate) fn vectors() -> Vec<Vector> {
    let mut rng = Rng::new(2024);
    let mut v = Vec::new();
    v.push(Vector {
        name: "raw-f32",
        description: "codec 0 raw: five F32 values (1.0, -2.5, NaN, +Inf, +0); stored chunk = original bytes",
        elem_size: 4,
        spec: CodecSpec::raw(),
        data: f32_bytes([1.0, -2.5, f32::NAN, f32::INFINITY, 0.0]),
    });
    let mut vals: Vec<f32> = (0..1000).map(|_| (rng.normal() * 0.02) as f32).collect();
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e-40,
        3.0e38,
        0.0,
    ];
    for (i, s) in specials.iter().enumerate() {
        vals[100 * i + 7] = *s;
    }
    v.push(Vector {
        name: "bf16-planes",
        description: "codec 1 planes(rot,9+7) on 1000 BF16 values ~N(0,0.02) with NaN, +-Inf, -0, a subnormal, a huge value and +0 mixed in: plane 0 (exponent + top mantissa bit) is huffman with escapes, plane 1 is raw; one partial tile",
        elem_size: 2,
        spec: planes(true, &[9, 7]),
        data: bf16_bytes(vals.iter().copied()),
    });
    v.push(Vector {
        name: "f32-planes",
        description: "codec 1 planes(rot,10+6+8+8) on 600 F32 values ~N(0,0.05): plane 0 huffman with escapes, planes 1-3 raw",
        elem_size: 4,
        spec: planes(true, &[10, 6, 8, 8]),
        data: f32_bytes((0..600).map(|_| (rng.normal() * 0.05) as f32)),
    });
    v.push(Vector {
        name: "i16-const",
        description: "codec 1 planes(8+8) without rotation on 100 copies of the I16 value 0x0102: both planes const",
        elem_size: 2,
        spec: planes(false, &[8, 8]),
        data: std::iter::repeat_n([0x02u8, 0x01], 100).flatten().collect(),
    });
    let mut g = geometric_bytes(&mut rng, 70_000);
    g[12_345] = 0xee;
    g[69_999] = 0xff;
    v.push(Vector {
        name: "u8-two-tiles",
        description: "codec 1 planes(8) without rotation on 70000 U8 values with P(k) ~ 2^-(k+1) plus two outliers: huffman with length limiting and escapes over two tiles (65536 + 4464 symbols)",
        elem_size: 1,
        spec: planes(false, &[8]),
        data: g,
    });
    v
}

/// Describes each plane section of a valid stored chunk: `raw`, `const`, or
/// `huffman(maxlen=L[,esc])`.
pub(crate) fn section_summary(stored: &[u8], planes: usize) -> Vec<String> {
    let mut pos = 0;
    let mut v = Vec::new();
    for _ in 0..planes {
        let len = u32::from_le_bytes(stored[pos..pos + 4].try_into().unwrap()) as usize;
        let body = &stored[pos + 5..pos + 4 + len];
        v.push(match stored[pos + 4] {
            0 => "raw".to_string(),
            1 => "const".to_string(),
            _ => {
                let c = u16::from_le_bytes([body[2], body[3]]) as usize;
                let nib = |i: usize| (body[4 + i / 2] >> (4 * (i % 2))) & 0xf;
                let max = (0..=c).map(nib).max().unwrap_or(0);
                let esc = if nib(c) > 0 { ",esc" } else { "" };
                format!("huffman(maxlen={max}{esc})")
            }
        });
        pos += 4 + len;
    }
    v
}

fn vector_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-vectors/codec")
}

fn sha256_hex(d: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, d)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Rewrites the committed vectors from the current encoder:
/// `cargo test -p tic-format -- --ignored regenerate_test_vectors`.
#[test]
#[ignore = "writes format-spec/test-vectors/codec/"]
fn regenerate_test_vectors() {
    let dir = vector_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for v in vectors() {
        let stored = roundtrip(&v.spec, v.elem_size, &v.data);
        let mut j = serde_json::json!({
            "name": v.name,
            "description": v.description,
            "elem_size": v.elem_size,
            "codec_id": v.spec.id,
            "codec_name": v.spec.name(),
            "params_hex": hex(&v.spec.params),
            "elements": v.data.len() / v.elem_size,
            "stored_file": format!("{}.bin", v.name),
            "stored_len": stored.len(),
            "stored_sha256": sha256_hex(&stored),
            "original_len": v.data.len(),
            "original_sha256": sha256_hex(&v.data),
            "plane_sections": if v.spec.id == CODEC_PLANES {
                section_summary(&stored, usize::from(v.spec.params[1]))
            } else {
                vec![]
            },
        });
        if v.data.len() <= 4096 {
            j["original_hex"] = hex(&v.data).into();
        }
        std::fs::write(dir.join(format!("{}.bin", v.name)), &stored).unwrap();
        let text = serde_json::to_string_pretty(&j).unwrap() + "\n";
        std::fs::write(dir.join(format!("{}.json", v.name)), text).unwrap();
    }
}

#[test]
fn committed_test_vectors_decode() {
    let dir = vector_dir();
    let mut seen = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("test-vectors/codec exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for path in names {
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let stored = std::fs::read(dir.join(j["stored_file"].as_str().unwrap())).unwrap();
        assert_eq!(stored.len() as u64, j["stored_len"].as_u64().unwrap());
        assert_eq!(sha256_hex(&stored), j["stored_sha256"].as_str().unwrap());
        let es = j["elem_size"].as_u64().unwrap() as usize;
        let spec = CodecSpec {
            id: j["codec_id"].as_u64().unwrap() as u16,
            params: unhex(j["params_hex"].as_str().unwrap()),
        };
        assert_eq!(spec.name(), j["codec_name"].as_str().unwrap());
        spec.validate(es).unwrap();
        let mut out = vec![0u8; j["original_len"].as_u64().unwrap() as usize];
        decode_chunk(&spec, es, &stored, &mut out).unwrap();
        if spec.id == CODEC_PLANES {
            let want: Vec<String> = j["plane_sections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            assert_eq!(section_summary(&stored, usize::from(spec.params[1])), want);
        }
        assert_eq!(sha256_hex(&out), j["original_sha256"].as_str().unwrap());
        if let Some(h) = j.get("original_hex") {
            assert_eq!(hex(&out), h.as_str().unwrap());
        }
        // The vector's data is what the generator describes.
        let v = vectors()
            .into_iter()
            .find(|v| path.ends_with(format!("{}.json", v.name)));
        assert_eq!(v.map(|v| v.data), Some(out), "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, vectors().len());
}
