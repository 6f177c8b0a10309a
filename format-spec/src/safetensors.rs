//! Bounded, order-preserving parsing of a safetensors file's header.
//!
//! The reference parser reads the JSON into a hash map, which silently
//! drops a repeated tensor name; this one keeps every entry so duplicates
//! are refused, names the tensor in every error, and checks offsets
//! against the real data length with checked arithmetic.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use thiserror::Error;

use crate::dtype::DType;
use crate::limits::MAX_ST_HEADER_LEN;

/// One tensor as the safetensors header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    /// Byte range within the data section (after the header).
    pub begin: u64,
    pub end: u64,
}

/// What is wrong with a safetensors file. The caller adds the file's name.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StError {
    #[error("the file is {0} bytes, too short to hold the 8-byte header length")]
    TooShort(u64),
    #[error("the header length is {n} bytes, over the {limit}-byte cap")]
    HeaderTooLarge { n: u64, limit: u64 },
    #[error("the header length says {n} bytes but only {available} follow; the file is truncated")]
    HeaderPastEnd { n: u64, available: u64 },
    #[error("the header is not valid UTF-8")]
    NotUtf8,
    #[error("the header is not valid JSON: {0}")]
    BadJson(String),
    #[error("the header is not a JSON object")]
    NotAnObject,
    #[error("tensor `{0}` appears twice in the header")]
    DuplicateName(String),
    #[error("tensor `{tensor}`: {why}")]
    BadEntry { tensor: String, why: String },
    #[error("tensor `{tensor}` has dtype {dtype:?}, which safetensors does not define (its dtypes, all of which tic takes: {supported})")]
    UnknownDType {
        tensor: String,
        dtype: String,
        supported: String,
    },
    #[error("tensor `{0}`: the shape's element count, or its size in bits, overflows 64 bits")]
    ShapeOverflow(String),
    #[error("tensor `{tensor}`: {elements} elements of {dtype} ({} bits each) do not fill whole bytes; safetensors stores packed dtypes in whole bytes, so the shape is wrong", dtype.bits())]
    PartialByte {
        tensor: String,
        dtype: DType,
        elements: u64,
    },
    #[error("tensor `{tensor}`: shape {shape:?} of {dtype} needs {expected} bytes but data_offsets give {actual}")]
    SizeMismatch {
        tensor: String,
        shape: Vec<u64>,
        dtype: DType,
        expected: u64,
        actual: u64,
    },
    #[error("tensor `{tensor}` starts at data offset {begin} but the previous tensor ends at {expected}: tensors {kind}")]
    Gap {
        tensor: String,
        begin: u64,
        expected: u64,
        kind: &'static str,
    },
    #[error("tensor `{tensor}` ends at data offset {end} but the data section is {data_len} bytes: the file is truncated or the offsets are wrong")]
    PastEnd {
        tensor: String,
        end: u64,
        data_len: u64,
    },
    #[error("the data section is {data_len} bytes but the tensors cover only {covered}: {trailing} bytes belong to no tensor")]
    TrailingData {
        data_len: u64,
        covered: u64,
        trailing: u64,
    },
    #[error("`__metadata__` must be null or map strings to strings")]
    BadMetadata,
    #[error("tensor `{tensor}` has {rank} dimensions; safetensors allows that, but a tic artifact holds at most {} (SPEC.md §10): reshape the tensor to fewer dimensions before compiling", crate::limits::MAX_RANK)]
    RankOverLimit { tensor: String, rank: usize },
}

impl StError {
    /// The file is valid safetensors, but over one of tic's own limits.
    pub fn is_tic_limit(&self) -> bool {
        matches!(self, StError::RankOverLimit { .. })
    }
}

/// Reads the 8-byte little-endian header length and checks it against the
/// cap and the file's length. Returns N (the JSON header's byte length).
pub fn header_len(first8: [u8; 8], file_len: u64) -> Result<u64, StError> {
    if file_len < 8 {
        return Err(StError::TooShort(file_len));
    }
    let n = u64::from_le_bytes(first8);
    if n > MAX_ST_HEADER_LEN {
        return Err(StError::HeaderTooLarge {
            n,
            limit: MAX_ST_HEADER_LEN,
        });
    }
    if n > file_len - 8 {
        return Err(StError::HeaderPastEnd {
            n,
            available: file_len - 8,
        });
    }
    Ok(n)
}

struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses the JSON header (the N bytes after the length prefix) of a file
/// whose data section is `data_len` bytes. Returns the tensors sorted by
/// data offset, after checking that they tile the data section exactly.
pub fn parse_header(json: &[u8], data_len: u64) -> Result<Vec<StTensor>, StError> {
    let text = std::str::from_utf8(json).map_err(|_| StError::NotUtf8)?;
    // The reference writer pads the JSON with trailing spaces.
    let ordered: Ordered = serde_json::from_str(text.trim_end_matches(' ')).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            StError::NotAnObject
        } else {
            StError::BadJson(e.to_string())
        }
    })?;
    let mut seen = std::collections::HashSet::new();
    let mut tensors = Vec::with_capacity(ordered.0.len());
    for (name, value) in ordered.0 {
        if !seen.insert(name.clone()) {
            return Err(StError::DuplicateName(name));
        }
        if name == "__metadata__" {
            // As the reference parser: no metadata (null), or strings.
            let ok = value.is_null()
                || value
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
            if !ok {
                return Err(StError::BadMetadata);
            }
            continue;
        }
        tensors.push(parse_entry(name, &value)?);
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut at = 0u64;
    for t in &tensors {
        if t.begin != at {
            return Err(StError::Gap {
                tensor: t.name.clone(),
                begin: t.begin,
                expected: at,
                kind: if t.begin > at {
                    "leave a hole"
                } else {
                    "overlap"
                },
            });
        }
        if t.end > data_len {
            return Err(StError::PastEnd {
                tensor: t.name.clone(),
                end: t.end,
                data_len,
            });
        }
        at = t.end;
    }
    if at != data_len {
        return Err(StError::TrailingData {
            data_len,
            covered: at,
            trailing: data_len - at,
        });
    }
    Ok(tensors)
}

fn parse_entry(name: String, v: &Value) -> Result<StTensor, StError> {
    let bad = |why: &str| StError::BadEntry {
        tensor: name.clone(),
        why: why.to_string(),
    };
    let obj = v
        .as_object()
        .ok_or_else(|| bad("entry is not a JSON object"))?;
    let dtype_s = obj
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing or non-string `dtype`"))?;
    let dtype = DType::from_name(dtype_s).ok_or_else(|| StError::UnknownDType {
        tensor: name.clone(),
        dtype: dtype_s.to_string(),
        supported: DType::all()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let shape = obj
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("missing or non-array `shape`"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| bad("`shape` holds something other than a non-negative integer"))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    if shape.len() > crate::limits::MAX_RANK {
        return Err(StError::RankOverLimit {
            tensor: name,
            rank: shape.len(),
        });
    }
    let offs = obj
        .get("data_offsets")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2)
        .ok_or_else(|| bad("`data_offsets` must be an array of two integers"))?;
    let begin = offs[0]
        .as_u64()
        .ok_or_else(|| bad("`data_offsets` must be non-negative integers"))?;
    let end = offs[1]
        .as_u64()
        .ok_or_else(|| bad("`data_offsets` must be non-negative integers"))?;
    if end < begin {
        return Err(bad("`data_offsets` end before they begin"));
    }
    let elems = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| StError::ShapeOverflow(name.clone()))?;
    let expected = match dtype.byte_len(elems) {
        Some(n) => n,
        None if elems.checked_mul(u64::from(dtype.bits())).is_none() => {
            return Err(StError::ShapeOverflow(name));
        }
        None => {
            return Err(StError::PartialByte {
                tensor: name,
                dtype,
                elements: elems,
            })
        }
    };
    if expected != end - begin {
        return Err(StError::SizeMismatch {
            tensor: name,
            shape,
            dtype,
            expected,
            actual: end - begin,
        });
    }
    Ok(StTensor {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(json: &str, len: u64) -> Result<Vec<StTensor>, StError> {
        parse_header(json.as_bytes(), len)
    }

    #[test]
    fn sorts_by_offset_and_accepts_padding() {
        let t = p(
            r#"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   "#,
            8,
        )
        .unwrap();
        assert_eq!(t[0].name, "a");
        assert_eq!(t[1].name, "b");
    }

    /// A safetensors file: the 8-byte length, `json` padded with spaces to a
    /// multiple of 8, then `data` zero bytes.
    fn file(json: &str, data: usize) -> Vec<u8> {
        let mut j = json.as_bytes().to_vec();
        j.resize(j.len().next_multiple_of(8), b' ');
        let mut f = (j.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(&j);
        f.resize(f.len() + data, 0);
        f
    }

    /// This parser's verdict on a whole file, as the compiler reaches it.
    fn ours(f: &[u8]) -> Result<Vec<StTensor>, StError> {
        let first8 = f.first_chunk::<8>().copied().unwrap_or_default();
        let n = header_len(first8, f.len() as u64)?;
        parse_header(&f[8..8 + n as usize], f.len() as u64 - 8 - n)
    }

    /// The reference parser (the `safetensors` crate) and this one give the
    /// same verdict on well-formed and malformed files and on every
    /// single-byte change of one, packed sub-byte dtypes included. The one
    /// difference allowed is a valid file over one of tic's own limits
    /// (a rank over 16), which tic refuses saying so.
    #[test]
    fn verdicts_match_the_reference_parser() {
        let base = file(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]},"c":{"dtype":"I64","shape":[],"data_offsets":[32,40]}}"#,
            40,
        );
        let u8_at = |range: &str| format!(r#""dtype":"U8","shape":[1],"data_offsets":{range}"#);
        let mut cases = vec![
            base.clone(),
            file(r#"{}"#, 0),
            file(r#"{"__metadata__":null}"#, 0),
            file(r#"{"__metadata__":{"x":1}}"#, 0),
            file(r#"{"__metadata__":{"x":{"y":"z"}}}"#, 0),
            file(r#"[]"#, 0),
            file(&format!(r#" {{"a":{{{}}}}}"#, u8_at("[0,1]")), 1),
            file(&format!(r#"{{"a":{{{},"x":1}}}}"#, u8_at("[0,1]")), 1),
            file(&format!(r#"{{"a":{{{}}}}}"#, u8_at("[0,1]")), 2),
            file(&format!(r#"{{"a":{{{}}}}}"#, u8_at("[1,2]")), 2),
            file(&format!(r#"{{"a":{{{}}}}}x"#, u8_at("[0,1]")), 1),
            file(
                &format!(
                    r#"{{"b":{{{}}},"a":{{{}}}}}"#,
                    u8_at("[1,2]"),
                    u8_at("[0,1]")
                ),
                2,
            ),
            file(
                &format!(
                    r#"{{"a":{{{}}},"a":{{{}}}}}"#,
                    u8_at("[0,1]"),
                    u8_at("[1,2]")
                ),
                2,
            ),
            file(
                r#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,2]},"b":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[2,5]},"c":{"dtype":"F8_E4M3FNUZ","shape":[1],"data_offsets":[5,6]},"d":{"dtype":"F8_E5M2FNUZ","shape":[1],"data_offsets":[6,7]},"e":{"dtype":"F6_E3M2","shape":[0],"data_offsets":[7,7]}}"#,
                7,
            ),
            file(
                r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                2,
            ),
            file(
                r#"{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#,
                1,
            ),
            file(
                r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}"#,
                3,
            ),
            file(
                r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
                1,
            ),
            file(
                r#"{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}"#,
                1,
            ),
            file(
                r#"{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#,
                1,
            ),
        ];
        for i in 8..base.len() - 40 {
            for v in [
                base[i] ^ 0x01,
                base[i] ^ 0x20,
                b'"',
                b'0',
                b'9',
                b' ',
                b',',
                b'{',
                b'}',
            ] {
                let mut f = base.clone();
                f[i] = v;
                cases.push(f);
            }
        }
        let (mut rejected, mut limits) = (0, 0);
        for f in &cases {
            let ours = ours(f);
            let theirs = ::safetensors::SafeTensors::deserialize(f);
            rejected += usize::from(ours.is_err());
            let limit = ours.as_ref().is_err_and(StError::is_tic_limit) && theirs.is_ok();
            limits += usize::from(limit);
            assert!(
                ours.is_ok() == theirs.is_ok() || limit,
                "{}: tic {:?}, reference {:?}",
                f.escape_ascii(),
                ours.map(|t| t.len()),
                theirs.map(|t| t.len())
            );
        }
        assert!(
            rejected > cases.len() / 3 && rejected < cases.len(),
            "{rejected} of {} rejected",
            cases.len()
        );
        assert_eq!(limits, 1, "only the rank-17 file is over a tic limit");
    }

    #[test]
    fn each_error() {
        let e = |j: &str, n| p(j, n).unwrap_err();
        assert!(e("{", 0).to_string().contains("not valid JSON"));
        assert_eq!(e("[]", 0), StError::NotAnObject);
        assert!(matches!(
            e(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8),
            StError::DuplicateName(n) if n == "a"
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#,
                1
            ),
            StError::UnknownDType { .. }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}}"#,
                4
            ),
            StError::ShapeOverflow(_)
        ));
        // The element count fits but its bits do not.
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}}"#,
                4
            ),
            StError::ShapeOverflow(_)
        ));
        let partial = e(
            r#"{"a":{"dtype":"F6_E2M3","shape":[2,3],"data_offsets":[0,5]}}"#,
            5,
        );
        assert_eq!(
            partial,
            StError::PartialByte {
                tensor: "a".into(),
                dtype: DType::F6E2M3,
                elements: 6
            }
        );
        assert!(partial
            .to_string()
            .contains("6 elements of F6_E2M3 (6 bits each)"));
        // Packed dtypes take bits × elements / 8 bytes.
        let packed = p(
            r#"{"a":{"dtype":"F4","shape":[3,2],"data_offsets":[0,3]},"b":{"dtype":"F6_E3M2","shape":[4],"data_offsets":[3,6]}}"#,
            6,
        )
        .unwrap();
        assert_eq!((packed[0].end, packed[1].end), (3, 6));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F4","shape":[4],"data_offsets":[0,4]}}"#,
                4
            ),
            StError::SizeMismatch { expected: 2, .. }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                4
            ),
            StError::SizeMismatch { .. }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                8
            ),
            StError::Gap {
                kind: "overlap",
                ..
            }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#,
                12
            ),
            StError::Gap {
                kind: "leave a hole",
                ..
            }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                2
            ),
            StError::PastEnd { .. }
        ));
        assert!(matches!(
            e(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                6
            ),
            StError::TrailingData { .. }
        ));
        assert_eq!(e(r#"{"__metadata__":{"a":1}}"#, 0), StError::BadMetadata);
        let deep = e(
            r#"{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#,
            1,
        );
        assert_eq!(
            deep,
            StError::RankOverLimit {
                tensor: "a".into(),
                rank: 17
            }
        );
        assert!(deep.is_tic_limit() && !StError::BadMetadata.is_tic_limit());
        assert!(matches!(
            e(r#"{"a":{"dtype":"F32","shape":[1]}}"#, 0),
            StError::BadEntry { .. }
        ));
        assert_eq!(
            parse_header(&[0xff, 0xfe], 0).unwrap_err(),
            StError::NotUtf8
        );
    }

    #[test]
    fn header_len_checks() {
        assert_eq!(header_len([0; 8], 4), Err(StError::TooShort(4)));
        assert!(matches!(
            header_len(u64::MAX.to_le_bytes(), 100),
            Err(StError::HeaderTooLarge { .. })
        ));
        assert!(matches!(
            header_len(50u64.to_le_bytes(), 20),
            Err(StError::HeaderPastEnd { .. })
        ));
        assert_eq!(header_len(12u64.to_le_bytes(), 20), Ok(12));
    }
}
