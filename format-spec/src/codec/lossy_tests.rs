//! Lossy codec tests: every element of adversarial and real tensors checked
//! against its bound by a checker written independently of the codec, exact
//! preservation of zeros, signs, infinities and NaN bit patterns, one test
//! per decoder rule, and a mutation fuzz loop.

use super::super::tests::Rng;
use super::*;
use crate::codec::{decode_chunk, encode_chunk, CodecError, CodecSpec};
use crate::dtype::DType;

const FLOATS: [DType; 3] = [DType::BF16, DType::F16, DType::F32];

fn settings_for(dtype: DType) -> Vec<LossySetting> {
    let mbits = match dtype {
        DType::BF16 => 7,
        DType::F16 => 10,
        _ => 23,
    };
    let mut v: Vec<LossySetting> = (0..mbits).map(LossySetting::Mantissa).collect();
    for eb in [1e-30, 1e-6, 1e-3, 0.02, 0.5, 3.0, 1e5] {
        v.push(LossySetting::Abs(eb));
    }
    for eb in [1e-3, 0.01, 0.03, 0.1, 0.3, 0.7] {
        v.push(LossySetting::Rel(eb));
    }
    v
}

/// Element bits as u32 and their exact value, independently of the codec.
fn value(dtype: DType, bits: u32) -> f64 {
    match dtype {
        DType::BF16 => f64::from(f32::from_bits(bits << 16)),
        DType::F16 => half::f16::from_bits(bits as u16).to_f64(),
        _ => f64::from(f32::from_bits(bits)),
    }
}

fn elems(dtype: DType, data: &[u8]) -> Vec<u32> {
    let es = dtype.size();
    data.chunks_exact(es)
        .map(|c| {
            if es == 2 {
                u32::from(u16::from_le_bytes([c[0], c[1]]))
            } else {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            }
        })
        .collect()
}

fn bytes(dtype: DType, v: &[u32]) -> Vec<u8> {
    v.iter()
        .flat_map(|&x| {
            if dtype.size() == 2 {
                (x as u16).to_le_bytes().to_vec()
            } else {
                x.to_le_bytes().to_vec()
            }
        })
        .collect()
}

/// The bound a setting promises: (relative?, bound).
fn promised(s: LossySetting) -> (bool, f64) {
    match s {
        LossySetting::Mantissa(k) => (true, 0.5f64.powi(i32::from(k) + 1)),
        LossySetting::Abs(eb) => (false, eb),
        LossySetting::Rel(eb) => (true, eb),
    }
}

/// Checks every decoded element against its original, with no code shared
/// with the codec: NaN bit patterns, infinities and zeros exact; sign bits
/// equal; decoded values finite and within the bound. Returns the number of
/// elements that changed.
fn check_bound(dtype: DType, s: LossySetting, orig: &[u8], dec: &[u8]) -> usize {
    assert_eq!(orig.len(), dec.len());
    let (rel, b) = promised(s);
    let sign = 1u32 << (8 * dtype.size() - 1);
    let mut changed = 0;
    for (i, (&x, &y)) in elems(dtype, orig)
        .iter()
        .zip(&elems(dtype, dec))
        .enumerate()
    {
        let (a, d) = (value(dtype, x), value(dtype, y));
        let ctx = || format!("{dtype} {s} element {i}: {x:#x} ({a:e}) -> {y:#x} ({d:e})");
        if a.is_nan() || a.is_infinite() || a == 0.0 {
            assert_eq!(x, y, "special value not exact: {}", ctx());
            continue;
        }
        assert_eq!(x & sign, y & sign, "sign lost: {}", ctx());
        assert!(d.is_finite(), "finite became non-finite: {}", ctx());
        let err = (d - a).abs();
        if rel {
            assert!(err <= b * a.abs(), "relative bound {b} broken: {}", ctx());
            assert!(d != 0.0, "nonzero became zero: {}", ctx());
        } else {
            assert!(err <= b, "absolute bound {b} broken: {}", ctx());
        }
        changed += usize::from(x != y);
    }
    changed
}

/// Plans, encodes, decodes and checks; returns (stored bytes, spec).
fn run(dtype: DType, s: LossySetting, data: &[u8]) -> Option<(usize, CodecSpec)> {
    let spec = plan(dtype, s, data, 512 << 10, false)
        .unwrap_or_else(|e| panic!("{dtype} {s}: plan: {e}"))?;
    spec.validate(dtype.size()).unwrap();
    assert!(!spec.is_lossless());
    let stored = encode_chunk(&spec, dtype.size(), data)
        .unwrap_or_else(|e| panic!("{dtype} {s} {}: encode: {e}", spec.name()));
    let mut out = vec![0xA5u8; data.len()];
    decode_chunk(&spec, dtype.size(), &stored, &mut out)
        .unwrap_or_else(|e| panic!("{dtype} {s} {}: decode: {e}", spec.name()));
    check_bound(dtype, s, data, &out);
    // The codec's own checker agrees, and decoding is deterministic.
    check_and_measure(&spec, data, &out).unwrap();
    let mut again = vec![0u8; data.len()];
    decode_chunk(&spec, dtype.size(), &stored, &mut again).unwrap();
    assert!(again == out);
    Some((stored.len(), spec))
}

#[test]
fn rounding_matches_reference_conversions() {
    let mut rng = Rng::new(7);
    let f32fmt = Fmt::of(DType::F32).unwrap();
    let bf = Fmt::of(DType::BF16).unwrap();
    let hf = Fmt::of(DType::F16).unwrap();
    for _ in 0..2_000_000 {
        // Random f64 bit patterns near the float ranges, and random f32s.
        let e = 1023 - 160 + rng.below(330);
        let v = f64::from_bits(rng.next_u64() & 0x800f_ffff_ffff_ffff | (e << 52));
        assert_eq!(f32fmt.round_from_f64(v), (v as f32).to_bits(), "{v:e}");
        let x = f32::from_bits(rng.next_u64() as u32);
        if x.is_nan() {
            continue;
        }
        let x64 = f64::from(x);
        assert_eq!(
            bf.round_from_f64(x64),
            u32::from(half::bf16::from_f32(x).to_bits()),
            "{x:e}"
        );
        assert_eq!(
            hf.round_from_f64(x64),
            u32::from(half::f16::from_f32(x).to_bits()),
            "{x:e}"
        );
    }
    // Ties straight from f64 (not representable in f32): 1 + 2^-8 + 2^-40
    // is just above the BF16 tie, so it rounds up; 1 + 2^-8 rounds to even.
    let t = 1.0 + 2f64.powi(-8);
    assert_eq!(bf.round_from_f64(t), 0x3f80);
    assert_eq!(bf.round_from_f64(t + 2f64.powi(-40)), 0x3f81);
    assert_eq!(bf.round_from_f64(-0.0), 0x8000);
    assert_eq!(bf.round_from_f64(1e300), 0x7f80);
    assert_eq!(hf.round_from_f64(-70000.0), 0xfc00);
    assert_eq!(hf.round_from_f64(1e-300), 0);
}

fn all_16bit_patterns() -> Vec<u32> {
    (0..=u16::MAX).map(u32::from).collect()
}

#[test]
fn every_bf16_and_f16_bit_pattern_within_bound() {
    for dtype in [DType::BF16, DType::F16] {
        let data = bytes(dtype, &all_16bit_patterns());
        for s in settings_for(dtype) {
            run(dtype, s, &data);
        }
    }
}

#[test]
fn f32_adversarial_within_bound() {
    let mut rng = Rng::new(11);
    let mut v: Vec<u32> = (0..300_000).map(|_| rng.next_u64() as u32).collect();
    // Specials, NaN payloads, subnormals, extremes and near-overflow values.
    v.extend([
        0,
        0x8000_0000,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0xffc0_0001,
        0x7f80_0001,
        0x7fbf_ffff,
        0xff80_1234,
        1,
        0x8000_0001,
        0x007f_ffff,
        0x0080_0000,
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f7f_f000,
        0x3f80_0000,
        0x3fff_ffff,
    ]);
    for x in [1e-38f32, 1e-30, 1e30, 3e38, 1e-45, 65504.0, 1e-8] {
        v.push(x.to_bits());
        v.push((-x).to_bits());
    }
    let mut rng = Rng::new(12);
    v.extend((0..100_000).map(|_| ((rng.normal() * 0.02) as f32).to_bits()));
    let data = bytes(DType::F32, &v);
    for s in settings_for(DType::F32) {
        run(DType::F32, s, &data);
    }
}

#[test]
fn odd_sizes_and_tiles() {
    let mut rng = Rng::new(3);
    for dtype in FLOATS {
        for n in [0usize, 1, 2, 3, 31, 33, 65535, 65536, 65537, 140_001] {
            let v: Vec<u32> = (0..n)
                .map(|i| {
                    let x = (rng.normal() * 0.05) as f32;
                    let x = if i % 97 == 0 { f32::NAN } else { x };
                    match dtype {
                        DType::BF16 => u32::from(half::bf16::from_f32(x).to_bits()),
                        DType::F16 => u32::from(half::f16::from_f32(x).to_bits()),
                        _ => x.to_bits(),
                    }
                })
                .collect();
            let data = bytes(dtype, &v);
            for s in [
                LossySetting::Mantissa(3),
                LossySetting::Abs(1e-3),
                LossySetting::Rel(0.01),
            ] {
                run(dtype, s, &data);
            }
        }
    }
}

/// A plan made from a sample whose values are all small still codes a chunk
/// with much larger values exactly within the bound (as exceptions).
#[test]
fn values_beyond_the_sampled_range_become_exceptions() {
    let small = bytes(DType::F32, &[0.001f32.to_bits(); 1000]);
    let s = LossySetting::Abs(1e-6);
    let spec = plan(DType::F32, s, &small, 1000, false).unwrap().unwrap();
    let big: Vec<u32> = [1.0f32, -3.0e4, 0.0005, 1e9, -0.0]
        .iter()
        .map(|x| x.to_bits())
        .collect();
    let data = bytes(DType::F32, &big);
    let stored = encode_chunk(&spec, 4, &data).unwrap();
    let mut out = vec![0u8; data.len()];
    decode_chunk(&spec, 4, &stored, &mut out).unwrap();
    check_bound(DType::F32, s, &data, &out);
}

#[test]
fn special_values_survive_every_codec() {
    // ±0, ±Inf and several NaN payloads in every float type.
    let cases: [(DType, &[u32]); 3] = [
        (
            DType::BF16,
            &[
                0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffff, 0x7fa5, 0x0001, 0x8001,
            ],
        ),
        (
            DType::F16,
            &[
                0, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xffff, 0x7d55, 0x0001, 0x83ff,
            ],
        ),
        (
            DType::F32,
            &[
                0,
                0x8000_0000,
                0x7f80_0000,
                0xff80_0000,
                0x7fc0_0000,
                0x7f80_0001,
                0xffff_ffff,
                0x7fa5_a5a5,
                1,
                0x807f_ffff,
            ],
        ),
    ];
    for (dtype, v) in cases {
        let data = bytes(dtype, v);
        for s in settings_for(dtype) {
            let Some((_, spec)) = run(dtype, s, &data) else {
                continue;
            };
            let stored = encode_chunk(&spec, dtype.size(), &data).unwrap();
            let mut out = vec![0u8; data.len()];
            decode_chunk(&spec, dtype.size(), &stored, &mut out).unwrap();
            // Zeros, infinities and NaNs bit for bit (subnormals need only
            // be within the bound).
            for (i, (&x, &y)) in v.iter().zip(&elems(dtype, &out)).enumerate() {
                let a = value(dtype, x);
                if a.is_nan() || a.is_infinite() || a == 0.0 {
                    assert_eq!(x, y, "{dtype} {s} element {i}");
                }
            }
        }
    }
}

#[test]
fn mantissa_keeps_only_the_kept_bits() {
    // BF16 ~ N(0, 0.02): K = 4 codes 13 bits; the stored size must be well
    // below the 16 bits of the original and below what lossless achieves.
    let mut rng = Rng::new(5);
    let v: Vec<u32> = (0..1 << 20)
        .map(|_| u32::from(half::bf16::from_f32((rng.normal() * 0.02) as f32).to_bits()))
        .collect();
    let data = bytes(DType::BF16, &v);
    let (lossy, spec) = run(DType::BF16, LossySetting::Mantissa(4), &data).unwrap();
    let lossless = encode_chunk(
        &crate::codec::choose_codec(2, true, &data, 1 << 20),
        2,
        &data,
    )
    .unwrap()
    .len();
    println!(
        "{}: {:.2}% vs lossless {:.2}%",
        spec.name(),
        100.0 * lossy as f64 / data.len() as f64,
        100.0 * lossless as f64 / data.len() as f64
    );
    // 1 sign + 4 mantissa bits raw, plus an exponent of under 3 bits.
    assert!(lossy * 16 < data.len() * 8, "{lossy} bytes");
    assert!(lossy * 4 < lossless * 3, "{lossy} vs lossless {lossless}");
    // Rounding to nearest even: mean relative error near 2^-5 · ln 2 / 2.
    let mut out = vec![0u8; data.len()];
    decode_chunk(&spec, 2, &encode_chunk(&spec, 2, &data).unwrap(), &mut out).unwrap();
    let st = check_and_measure(&spec, &data, &out).unwrap();
    assert!(st.max_rel <= 1.0 / 32.0);
    assert!(
        (0.008..0.013).contains(&st.mean_rel()),
        "mean rel {}",
        st.mean_rel()
    );
}

#[test]
fn bounds_and_names() {
    let data = bytes(DType::BF16, &[0x3f80, 0x4000]);
    let m = plan(DType::BF16, LossySetting::Mantissa(4), &data, 2, false)
        .unwrap()
        .unwrap();
    assert_eq!(m.id, CODEC_MANTISSA);
    assert_eq!(lossy_bound(&m), Some((BOUND_RELATIVE, 1.0 / 32.0)));
    assert_eq!(lossy_dtype(&m), Some(DType::BF16));
    assert!(
        m.name().starts_with("mantissa(BF16,K=4;planes("),
        "{}",
        m.name()
    );
    let a = plan(DType::F32, LossySetting::Abs(1e-4), &[0; 8], 2, false)
        .unwrap()
        .unwrap();
    assert_eq!(a.id, CODEC_QUANT);
    assert_eq!(lossy_bound(&a), Some((BOUND_ABSOLUTE, 1e-4)));
    assert!(
        a.name().starts_with("quant(F32,abs=1e-4,q="),
        "{}",
        a.name()
    );
    let r = plan(DType::F16, LossySetting::Rel(0.01), &[0; 4], 2, false)
        .unwrap()
        .unwrap();
    assert_eq!(lossy_bound(&r), Some((BOUND_RELATIVE, 0.01)));
    assert!(
        r.name().starts_with("quant(F16,rel=1e-2,q=6;"),
        "{}",
        r.name()
    );
    // Settings that cannot help leave the tensor lossless.
    for (d, s) in [
        (DType::BF16, LossySetting::Mantissa(7)),
        (DType::F16, LossySetting::Mantissa(12)),
        (DType::BF16, LossySetting::Rel(1e-4)),
        (DType::I32, LossySetting::Abs(1.0)),
        (DType::F64, LossySetting::Mantissa(2)),
    ] {
        assert_eq!(plan_lossy(d, s, &[0; 16], 2).unwrap(), None, "{d} {s}");
    }
    assert!(plan_lossy(DType::F32, LossySetting::Rel(1.0), &[0; 4], 1).is_err());
    assert!(plan_lossy(DType::F32, LossySetting::Abs(-1.0), &[0; 4], 1).is_err());
    assert!(plan_lossy(DType::F32, LossySetting::Abs(f64::NAN), &[0; 4], 1).is_err());
    assert!(lossy_dtype_supported(DType::F16) && !lossy_dtype_supported(DType::F64));
    assert_eq!(lossy_bound(&CodecSpec::raw()), None);
}

/// `plan_lossy` keeps a tensor lossless when its lossy coding would not be
/// smaller: tiny tensors, and bounds so fine that the indices cost more
/// than the values (an absolute bound far below BF16's precision).
#[test]
fn lossy_never_larger_than_lossless() {
    let mut rng = Rng::new(8);
    let v: Vec<u32> = (0..200_000)
        .map(|_| u32::from(half::bf16::from_f32((rng.normal() * 0.05) as f32).to_bits()))
        .collect();
    let data = bytes(DType::BF16, &v);
    let ce = 1 << 20;
    assert!(
        plan_lossy(DType::BF16, LossySetting::Mantissa(4), &data, ce)
            .unwrap()
            .is_some()
    );
    assert!(plan_lossy(DType::BF16, LossySetting::Abs(1e-3), &data, ce)
        .unwrap()
        .is_some());
    assert_eq!(
        plan_lossy(DType::BF16, LossySetting::Abs(1e-7), &data, ce).unwrap(),
        None
    );
    // Forced, the same setting works but is larger than lossless.
    let spec = plan(DType::BF16, LossySetting::Abs(1e-7), &data, ce, false)
        .unwrap()
        .unwrap();
    let lossy = encode_chunk(&spec, 2, &data).unwrap().len();
    let lossless = encode_chunk(&crate::codec::choose_codec(2, true, &data, ce), 2, &data)
        .unwrap()
        .len();
    assert!(lossy > lossless, "{lossy} vs {lossless}");
    // Two elements: the lossy stream's fixed overhead is larger than raw.
    assert_eq!(
        plan_lossy(
            DType::F32,
            LossySetting::Mantissa(2),
            &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40],
            2
        )
        .unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------
// Params and decoder rules.

fn quant_params(dtype: u8, mode: u8, eb: f64, qbits: u8, inner: &[u8]) -> Vec<u8> {
    let mut p = vec![dtype, mode];
    p.extend_from_slice(&eb.to_le_bytes());
    p.push(qbits);
    p.extend_from_slice(inner);
    p
}

fn reason(r: Result<(), CodecError>) -> String {
    match r {
        Err(CodecError::BadParams { reason, .. }) => reason,
        other => panic!("expected BadParams, got {other:?}"),
    }
}

#[test]
fn params_validation_says_what_is_wrong() {
    let spec = |id, params: Vec<u8>| CodecSpec { id, params };
    assert!(reason(spec(2, vec![]).validate(2)).contains("empty"));
    assert!(reason(spec(2, vec![12]).validate(2)).contains("dtype code 12"));
    assert!(reason(spec(2, vec![6]).validate(2)).contains("before K"));
    assert!(reason(spec(2, vec![6, 4]).validate(4)).contains("BF16 (2 bytes"));
    assert!(reason(spec(2, vec![6, 7, 0, 1, 16]).validate(2)).contains("K = 7"));
    assert!(reason(spec(2, vec![6, 4, 0, 2, 8, 5]).validate(2)).contains("inner planes"));
    spec(2, vec![6, 4, 0, 3, 3, 8, 5]).validate(2).unwrap();
    spec(2, vec![9, 0, 0, 1, 16]).validate(4).unwrap();
    assert!(reason(spec(3, vec![9, 2, 0]).validate(4)).contains("11"));
    let inner16 = [0u8, 1, 16];
    assert!(reason(spec(3, quant_params(9, 4, 0.1, 8, &inner16)).validate(4)).contains("mode 4"));
    for eb in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::MAX] {
        assert!(
            reason(spec(3, quant_params(9, 2, eb, 8, &inner16)).validate(4)).contains("eb"),
            "{eb}"
        );
    }
    assert!(reason(spec(3, quant_params(9, 2, 0.1, 0, &inner16)).validate(4)).contains("qbits"));
    assert!(reason(spec(3, quant_params(9, 2, 0.1, 32, &inner16)).validate(4)).contains("31"));
    assert!(reason(spec(3, quant_params(9, 1, 1.0, 6, &inner16)).validate(4)).contains("below 1"));
    assert!(reason(spec(3, quant_params(9, 1, 0.1, 24, &inner16)).validate(4)).contains("33-bit"));
    // abs, 8 qbits: 9-bit codes in 2 bytes.
    spec(3, quant_params(9, 2, 0.1, 8, &inner16))
        .validate(4)
        .unwrap();
    assert!(
        reason(spec(3, quant_params(9, 2, 0.1, 7, &inner16)).validate(4)).contains("1-byte codes")
    );
    let long = spec(2, [vec![6, 4, 0, 3, 3, 8, 5], vec![0; 60]].concat());
    assert!(reason(long.validate(2)).contains("at most 64"));
}

/// A valid BF16 mantissa K=4 chunk of `v` and its spec.
fn mantissa_chunk(v: &[u32]) -> (CodecSpec, Vec<u8>, Vec<u8>) {
    let data = bytes(DType::BF16, v);
    let spec = CodecSpec {
        id: CODEC_MANTISSA,
        params: vec![6, 4, 0, 3, 3, 8, 5],
    };
    let stored = encode_chunk(&spec, 2, &data).unwrap();
    (spec, data, stored)
}

fn dec(spec: &CodecSpec, stored: &[u8], n: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![0u8; 2 * n];
    decode_chunk(spec, 2, stored, &mut out).map(|_| out)
}

fn lossy_reason(r: Result<Vec<u8>, CodecError>) -> String {
    match r {
        Err(CodecError::BadLossyChunk { reason }) => reason,
        other => panic!("expected BadLossyChunk, got {other:?}"),
    }
}

#[test]
fn stored_layout_and_exceptions() {
    // 1.0, NaN payload, 1.5, -0, +Inf: the NaN is the only exception.
    let v = [0x3f80, 0x7fa5, 0x3fc0, 0x8000, 0x7f80];
    let (spec, data, stored) = mantissa_chunk(&v);
    let len = u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
    let tail = &stored[4 + len..];
    assert_eq!(tail, [1, 0, 0, 0, 1, 0xa5, 0x7f], "count 1, index 1, value");
    assert_eq!(dec(&spec, &stored, 5).unwrap(), data);
}

#[test]
fn decoder_rules() {
    let v = [0x3f80, 0x7fa5, 0x3fc0, 0x7fa6, 0x4000];
    let (spec, data, stored) = mantissa_chunk(&v);
    assert_eq!(dec(&spec, &stored, 5).unwrap(), data);
    let len = u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
    let exc = 4 + len;
    assert_eq!(&stored[exc..exc + 6], [2, 0, 0, 0, 1, 1], "indices 1 and 3");

    // Truncations anywhere.
    for cut in [0, 3, 5, exc, exc + 3, exc + 5, stored.len() - 1] {
        assert!(
            matches!(
                dec(&spec, &stored[..cut], 5),
                Err(CodecError::Truncated { .. })
            ),
            "cut at {cut}: {:?}",
            dec(&spec, &stored[..cut], 5)
        );
    }
    // Trailing bytes.
    let mut s = stored.clone();
    s.push(0);
    assert!(matches!(
        dec(&spec, &s, 5),
        Err(CodecError::TrailingBytes { extra: 1 })
    ));
    // More exceptions than elements.
    let mut s = stored.clone();
    s[exc] = 6;
    assert!(lossy_reason(dec(&spec, &s, 5)).contains("6 exceptions"));
    // An index outside the chunk.
    let mut s = stored.clone();
    s[exc + 5] = 3; // second index 1 + 1 + 3 = 5
    assert!(lossy_reason(dec(&spec, &s, 5)).contains("index 5"));
    // A non-minimal varint (0x81 0x00 for 1) and an over-long one.
    let mut s = stored.clone();
    s.splice(exc + 5..exc + 6, [0x81, 0x00]);
    assert!(lossy_reason(dec(&spec, &s, 5)).contains("not minimal"));
    let mut s = stored.clone();
    s.splice(exc + 5..exc + 6, [0x81, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert!(lossy_reason(dec(&spec, &s, 5)).contains("longer than 5"));
    let mut s = stored.clone();
    s.splice(exc + 5..exc + 6, [0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(lossy_reason(dec(&spec, &s, 5)).contains("2^32"));
    // The codes stream length pointing past the end.
    let mut s = stored.clone();
    s[..4].copy_from_slice(&(stored.len() as u32).to_le_bytes());
    assert!(matches!(
        dec(&spec, &s, 5),
        Err(CodecError::Truncated { .. })
    ));
    // A broken inner planes stream is reported by codec 1's rules.
    let mut s = stored.clone();
    s[8] = 9; // mode byte of the first plane section
    assert!(matches!(dec(&spec, &s, 5), Err(CodecError::BadMode { .. })));
}

/// Codes above the code width, and relative-mode codes with a zero or
/// all-ones exponent and a nonzero step index, are rejected.
#[test]
fn undefined_codes_are_rejected() {
    // Hand-made inner streams: one raw 16-bit plane of given codes.
    let stream = |codes: &[u16]| -> Vec<u8> {
        let inner = CodecSpec {
            id: crate::codec::CODEC_PLANES,
            params: vec![0, 1, 16],
        };
        let data: Vec<u8> = codes.iter().flat_map(|c| c.to_le_bytes()).collect();
        let body = encode_chunk(&inner, 2, &data).unwrap();
        let mut s = (body.len() as u32).to_le_bytes().to_vec();
        s.extend(body);
        s.extend([0, 0, 0, 0]);
        s
    };
    // mantissa BF16 K=4: 13-bit codes.
    let m = CodecSpec {
        id: CODEC_MANTISSA,
        params: vec![6, 4, 0, 1, 16],
    };
    assert!(dec(&m, &stream(&[0x1fff, 0]), 2).is_ok());
    assert!(lossy_reason(dec(&m, &stream(&[0x2000, 0]), 2)).contains("13 bits"));
    // quant rel BF16, qbits 5: code = ((f << 5 | j) << 1) | s.
    let r = CodecSpec {
        id: CODEC_QUANT,
        params: quant_params(6, 1, 0.02, 5, &[0, 1, 16]),
    };
    let code = |f: u16, j: u16, s: u16| ((f << 5 | j) << 1) | s;
    let out = dec(
        &r,
        &stream(&[code(0, 0, 1), code(255, 0, 0), code(127, 0, 0)]),
        3,
    )
    .unwrap();
    assert_eq!(elems(DType::BF16, &out), [0x8000, 0x7f80, 0x3f80]);
    assert!(lossy_reason(dec(&r, &stream(&[code(0, 3, 0)]), 1)).contains("nonzero step"));
    assert!(lossy_reason(dec(&r, &stream(&[code(255, 1, 1)]), 1)).contains("nonzero step"));
    // A relative code j·step past 1 is still defined: 2^0 · (1 + 31·0.04) = 2.24.
    let out = dec(&r, &stream(&[code(127, 31, 1)]), 1).unwrap();
    assert_eq!(value(DType::BF16, elems(DType::BF16, &out)[0]), -2.234375);
}

#[test]
fn fuzz_mutated_lossy_streams_never_panic() {
    let mut rng = Rng::new(99);
    let mut streams = Vec::new();
    for (dtype, s) in [
        (DType::BF16, LossySetting::Mantissa(3)),
        (DType::F32, LossySetting::Abs(1e-3)),
        (DType::F16, LossySetting::Rel(0.05)),
    ] {
        let v: Vec<u32> = (0..3000)
            .map(|i| {
                let x = if i % 50 == 0 {
                    f32::NAN
                } else {
                    (rng.normal() * 0.1) as f32
                };
                match dtype {
                    DType::BF16 => u32::from(half::bf16::from_f32(x).to_bits()),
                    DType::F16 => u32::from(half::f16::from_f32(x).to_bits()),
                    _ => x.to_bits(),
                }
            })
            .collect();
        let data = bytes(dtype, &v);
        let spec = plan(dtype, s, &data, 3000, false).unwrap().unwrap();
        let stored = encode_chunk(&spec, dtype.size(), &data).unwrap();
        streams.push((dtype, spec, data.len(), stored));
    }
    for _ in 0..20_000 {
        let (dtype, spec, len, stored) = &streams[rng.below(streams.len() as u64) as usize];
        let mut s = stored.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(s.len() as u64) as usize;
            match rng.below(3) {
                0 => s[i] ^= 1 << rng.below(8),
                1 => s[i] = rng.next_u64() as u8,
                _ => s.truncate(i),
            }
            if s.is_empty() {
                break;
            }
        }
        let mut out = vec![0u8; *len];
        let _ = decode_chunk(spec, dtype.size(), &s, &mut out);
    }
}

#[test]
fn header_requires_matching_dtype_and_record() {
    use crate::header::{
        ChunkEntry, Encryption, FileEntry, FileKind, Header, LossyRecord, TensorEntry,
    };
    let spec = CodecSpec {
        id: CODEC_MANTISSA,
        params: vec![6, 4, 0, 3, 3, 8, 5],
    };
    let st_header = {
        let json = br#"{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}"#;
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json);
        v
    };
    let record = LossyRecord {
        bound_kind: 1,
        bound: 1.0 / 32.0,
        max_abs: 0.0,
        max_rel: 0.0,
        mean_rel: 0.0,
        rms_rel: 0.0,
    };
    let header = |dtype: DType, lossy: Option<LossyRecord>| Header {
        creator: "test".into(),
        payload_len: 10,
        encryption: Encryption::None,
        files: vec![FileEntry {
            path: "m.safetensors".into(),
            kind: FileKind::Safetensors,
            size: st_header.len() as u64 + 4,
            sha256: [0; 32],
            st_header: st_header.clone(),
            first_tensor: 0,
            tensor_count: 1,
        }],
        tensors: vec![TensorEntry {
            name: "w".into(),
            dtype,
            shape: vec![2],
            codec: spec.clone(),
            orig_len: 4,
            sha256: [0; 32],
            first_chunk: 0,
            chunk_count: 1,
            lossy,
        }],
        chunks: vec![ChunkEntry {
            offset: 0,
            stored_len: 10,
            orig_len: 4,
            sha256: [0; 32],
        }],
        extensions: vec![],
    };
    let h = header(DType::BF16, Some(record.clone()));
    h.check().unwrap();
    assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
    let e = header(DType::F16, Some(record.clone()))
        .check()
        .unwrap_err();
    assert!(e.to_string().contains("lossy codec is for BF16"), "{e}");
    let e = header(DType::BF16, None).check().unwrap_err();
    assert!(e.to_string().contains("lossy record"), "{e}");
    // The record must state the codec's bound, and sane figures.
    for bad in [
        LossyRecord {
            bound_kind: 2,
            ..record.clone()
        },
        LossyRecord {
            bound: 0.05,
            ..record.clone()
        },
        LossyRecord {
            mean_rel: f64::NAN,
            ..record.clone()
        },
        LossyRecord {
            max_abs: -1.0,
            ..record.clone()
        },
    ] {
        let h = header(DType::BF16, Some(bad));
        let e = Header::parse(&h.to_bytes()).unwrap_err();
        assert!(e.to_string().contains("lossy record"), "{e}");
    }
}

// ---------------------------------------------------------------------------
// Real weights.

/// Float tensors (dtype, bytes) of a safetensors file.
fn float_tensors(path: &std::path::Path) -> Vec<(String, DType, Vec<u8>)> {
    let file = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let data = &file[8 + n..];
    let st = crate::safetensors::parse_header(&file[8..8 + n], data.len() as u64).unwrap();
    st.into_iter()
        .filter(|t| lossy_dtype_supported(t.dtype))
        .map(|t| {
            (
                t.name,
                t.dtype,
                data[t.begin as usize..t.end as usize].to_vec(),
            )
        })
        .collect()
}

fn real_model_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v = Vec::new();
    for dir in ["examples/model"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                v.push(p);
            }
        }
    }
    let shared = root.join("../shared/models");
    match std::fs::read_dir(&shared) {
        Ok(rd) => {
            for e in rd {
                let p = e.unwrap().path().join("model.safetensors");
                if p.is_file() {
                    v.push(p);
                }
            }
        }
        Err(_) => println!(
            "SKIPPED: {} is not there; only the example model is checked",
            shared.display()
        ),
    }
    v.sort();
    v
}

/// Every element of every float tensor of the real models (the example
/// model, and `../shared/models/*` when present) within its bound, chunked
/// as the compiler chunks them (tensors in parallel).
#[test]
fn real_weights_within_bound() {
    use rayon::prelude::*;
    let chunk_elems = 512 << 10;
    for path in real_model_files() {
        let tensors = float_tensors(&path);
        let settings: &[LossySetting] = if path
            .starts_with(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples"))
        {
            &[
                LossySetting::Mantissa(2),
                LossySetting::Mantissa(4),
                LossySetting::Mantissa(6),
                LossySetting::Abs(1e-3),
                LossySetting::Abs(1e-5),
                LossySetting::Rel(0.01),
                LossySetting::Rel(0.1),
            ]
        } else {
            &[
                LossySetting::Mantissa(4),
                LossySetting::Abs(1e-3),
                LossySetting::Rel(0.01),
            ]
        };
        for &s in settings {
            let per_tensor: Vec<(usize, usize, usize, ErrorStats)> = tensors
                .par_iter()
                .map(|(name, dtype, data)| {
                    let es = dtype.size();
                    let mut r = (0usize, 0usize, 0usize, ErrorStats::default());
                    let Some(spec) = plan_lossy(*dtype, s, data, chunk_elems).unwrap() else {
                        return r;
                    };
                    for c in data.chunks(chunk_elems * es) {
                        let st = encode_chunk(&spec, es, c).unwrap();
                        let mut out = vec![0u8; c.len()];
                        decode_chunk(&spec, es, &st, &mut out).unwrap();
                        r.2 += check_bound(*dtype, s, c, &out);
                        r.3.merge(
                            &check_and_measure(&spec, c, &out)
                                .unwrap_or_else(|e| panic!("{name}: {e}")),
                        );
                        r.0 += c.len();
                        r.1 += st.len();
                    }
                    r
                })
                .collect();
            let (mut orig, mut stored, mut changed) = (0usize, 0usize, 0usize);
            let mut stats = ErrorStats::default();
            for (o, st, c, e) in &per_tensor {
                orig += o;
                stored += st;
                changed += c;
                stats.merge(e);
            }
            println!(
                "{} {s}: {:.2}% of the float tensors, mean rel {:.4}%, max rel {:.3}%, {changed} elements changed",
                path.display(),
                100.0 * stored as f64 / orig.max(1) as f64,
                100.0 * stats.mean_rel(),
                100.0 * stats.max_rel
            );
            assert!(changed > 0, "{s} changed nothing in {}", path.display());
            if s == LossySetting::Mantissa(4) {
                // Rounding to 4 of 7+ mantissa bits, ties to even: the mean
                // relative error of weights is about 2^-6 · E[1/mantissa].
                assert!(
                    (0.009..0.013).contains(&stats.mean_rel()),
                    "{}",
                    stats.mean_rel()
                );
            }
        }
    }
}

/// The worked example of LOSSY.md §6, byte for byte, both ways.
#[test]
fn lossy_md_worked_example() {
    let v = [0x3f80, 0x7fa5, 0x3fc0, 0x8000, 0x7f80, 0x3dcd];
    let spec = CodecSpec {
        id: CODEC_MANTISSA,
        params: vec![0x06, 0x04, 0x00, 0x03, 0x03, 0x08, 0x05],
    };
    let mut stored = vec![0x1b, 0, 0, 0]; // codes_len 27
    stored.extend([3, 0, 0, 0, 1, 0, 0]); // plane 0: const 0
    stored.extend([7, 0, 0, 0, 0, 0x7f, 0x00, 0x7f, 0x00, 0xff, 0x7b]); // plane 1
    stored.extend([5, 0, 0, 0, 0, 0x00, 0xc0, 0x00, 0x28]); // plane 2
    stored.extend([1, 0, 0, 0, 1, 0xa5, 0x7f]); // one exception: index 1
    assert_eq!(stored.len(), 38);
    let data = bytes(DType::BF16, &v);
    assert_eq!(encode_chunk(&spec, 2, &data).unwrap(), stored);
    let out = dec(&spec, &stored, 6).unwrap();
    assert_eq!(
        elems(DType::BF16, &out),
        [0x3f80, 0x7fa5, 0x3fc0, 0x8000, 0x7f80, 0x3dd0]
    );
    assert_eq!(value(DType::BF16, 0x3dd0), 0.1015625);
}

// ---------------------------------------------------------------------------
// Test vectors (format-spec/test-vectors/lossy/).

struct LossyVector {
    name: &'static str,
    description: &'static str,
    dtype: DType,
    setting: LossySetting,
    input: Vec<u8>,
}

fn lossy_vectors() -> Vec<LossyVector> {
    let mut rng = Rng::new(2024);
    let specials_bf16 = [0x0000u32, 0x8000, 0x7f80, 0xff80, 0x7fa5, 0x0001, 0x7f7f];
    let mut bf: Vec<u32> = (0..1000)
        .map(|_| u32::from(half::bf16::from_f32((rng.normal() * 0.05) as f32).to_bits()))
        .collect();
    bf.extend(specials_bf16);
    let mut hf: Vec<u32> = (0..700)
        .map(|_| u32::from(half::f16::from_f32((rng.normal() * 0.1) as f32).to_bits()))
        .collect();
    hf.extend([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e01, 0x0003, 0x7bff]);
    let mut f: Vec<u32> = (0..600)
        .map(|_| ((rng.normal() * 0.02) as f32).to_bits())
        .collect();
    f.extend([
        0,
        0x8000_0000,
        0x7f80_0000,
        0xffc0_0001,
        1,
        2.5f32.to_bits(),
    ]);
    vec![
        LossyVector {
            name: "bf16-mantissa-k4",
            description: "codec 2 mantissa K=4 on 1000 BF16 ~N(0,0.05) then 0, -0, +Inf, -Inf, a NaN payload, the smallest subnormal and the largest finite value (the last three are exceptions)",
            dtype: DType::BF16,
            setting: LossySetting::Mantissa(4),
            input: bytes(DType::BF16, &bf),
        },
        LossyVector {
            name: "f16-quant-rel",
            description: "codec 3 mode 1 (pointwise relative, eb 0.02) on 700 F16 ~N(0,0.1) then 0, -0, +Inf, -Inf, a NaN, a subnormal and the largest finite value",
            dtype: DType::F16,
            setting: LossySetting::Rel(0.02),
            input: bytes(DType::F16, &hf),
        },
        LossyVector {
            name: "f32-quant-abs",
            description: "codec 3 mode 2 (absolute, eb 1e-3) on 600 F32 ~N(0,0.02) then 0, -0, +Inf, a NaN, the smallest subnormal and 2.5 (beyond the sampled range: an exception)",
            dtype: DType::F32,
            setting: LossySetting::Abs(1e-3),
            input: bytes(DType::F32, &f),
        },
    ]
}

fn lossy_vector_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test-vectors/lossy")
}

fn hexs(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhexs(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sha_hex(d: &[u8]) -> String {
    hexs(&crate::sha256(d))
}

/// Plans from the first 600 elements only, so that the abs vector has a
/// value beyond the sampled range.
fn vector_spec(v: &LossyVector) -> CodecSpec {
    let es = v.dtype.size();
    plan(v.dtype, v.setting, &v.input[..600 * es], 1 << 20, false)
        .unwrap()
        .unwrap()
}

#[test]
#[ignore = "writes format-spec/test-vectors/lossy/"]
fn regenerate_lossy_test_vectors() {
    let dir = lossy_vector_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for v in lossy_vectors() {
        let spec = vector_spec(&v);
        let es = v.dtype.size();
        let stored = encode_chunk(&spec, es, &v.input).unwrap();
        let mut out = vec![0u8; v.input.len()];
        decode_chunk(&spec, es, &stored, &mut out).unwrap();
        check_bound(v.dtype, v.setting, &v.input, &out);
        let (kind, bound) = lossy_bound(&spec).unwrap();
        let j = serde_json::json!({
            "name": v.name,
            "description": v.description,
            "dtype": v.dtype.name(),
            "elem_size": es,
            "codec_id": spec.id,
            "codec_name": spec.name(),
            "params_hex": hexs(&spec.params),
            "bound_kind": kind,
            "bound": bound,
            "elements": v.input.len() / es,
            "stored_file": format!("{}.bin", v.name),
            "stored_len": stored.len(),
            "stored_sha256": sha_hex(&stored),
            "input_hex": hexs(&v.input),
            "decoded_len": out.len(),
            "decoded_sha256": sha_hex(&out),
            "decoded_hex": hexs(&out),
        });
        std::fs::write(dir.join(format!("{}.bin", v.name)), &stored).unwrap();
        let text = serde_json::to_string_pretty(&j).unwrap() + "\n";
        std::fs::write(dir.join(format!("{}.json", v.name)), text).unwrap();
    }
}

/// Each committed vector decodes to its recorded bytes, which are within
/// the recorded bound of the recorded input; and the encoder still makes
/// the same stream from the recorded params.
#[test]
fn committed_lossy_test_vectors_decode() {
    let dir = lossy_vector_dir();
    let gen = lossy_vectors();
    for v in &gen {
        let j: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{}.json", v.name))).unwrap(),
        )
        .unwrap();
        let stored = std::fs::read(dir.join(j["stored_file"].as_str().unwrap())).unwrap();
        assert_eq!(sha_hex(&stored), j["stored_sha256"].as_str().unwrap());
        let es = j["elem_size"].as_u64().unwrap() as usize;
        let spec = CodecSpec {
            id: j["codec_id"].as_u64().unwrap() as u16,
            params: unhexs(j["params_hex"].as_str().unwrap()),
        };
        assert_eq!(spec.name(), j["codec_name"].as_str().unwrap());
        let (kind, bound) = lossy_bound(&spec).unwrap();
        assert_eq!(u64::from(kind), j["bound_kind"].as_u64().unwrap());
        assert_eq!(bound, j["bound"].as_f64().unwrap());
        let mut out = vec![0u8; j["decoded_len"].as_u64().unwrap() as usize];
        decode_chunk(&spec, es, &stored, &mut out).unwrap();
        assert_eq!(sha_hex(&out), j["decoded_sha256"].as_str().unwrap());
        assert_eq!(hexs(&out), j["decoded_hex"].as_str().unwrap());
        let input = unhexs(j["input_hex"].as_str().unwrap());
        assert!(
            input == v.input,
            "{}: input differs from the generator",
            v.name
        );
        check_bound(v.dtype, v.setting, &input, &out);
        // The encoder still makes the same stream from these params (the
        // planner may pick other params today; old vectors stay valid).
        assert_eq!(encode_chunk(&spec, es, &input).unwrap(), stored);
    }
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(files, 2 * gen.len(), "one .json and one .bin per vector");
}
