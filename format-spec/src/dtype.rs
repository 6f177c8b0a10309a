//! Element types, with the one-byte codes the header stores.
//!
//! Every dtype safetensors defines is here. Most have whole-byte elements;
//! the packed OCP microscaling types (F4, F6_E2M3, F6_E3M2) have 4- and
//! 6-bit elements, and the codecs see their data as plain bytes.

use std::fmt;

/// The element type of a tensor. Codes are fixed by SPEC.md §"Dtypes";
/// names are the safetensors spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
    F8E4M3,
    F8E5M2,
    F8E8M0,
    C64,
    F4,
    F6E2M3,
    F6E3M2,
    F8E4M3Fnuz,
    F8E5M2Fnuz,
}

const TABLE: &[(DType, u8, &str, u32, bool)] = &[
    // (dtype, code, safetensors name, bits per element, IEEE-like float)
    (DType::Bool, 0, "BOOL", 8, false),
    (DType::U8, 1, "U8", 8, false),
    (DType::I8, 2, "I8", 8, false),
    (DType::U16, 3, "U16", 16, false),
    (DType::I16, 4, "I16", 16, false),
    (DType::F16, 5, "F16", 16, true),
    (DType::BF16, 6, "BF16", 16, true),
    (DType::U32, 7, "U32", 32, false),
    (DType::I32, 8, "I32", 32, false),
    (DType::F32, 9, "F32", 32, true),
    (DType::U64, 10, "U64", 64, false),
    (DType::I64, 11, "I64", 64, false),
    (DType::F64, 12, "F64", 64, true),
    (DType::F8E4M3, 13, "F8_E4M3", 8, true),
    (DType::F8E5M2, 14, "F8_E5M2", 8, true),
    (DType::F8E8M0, 15, "F8_E8M0", 8, false),
    (DType::C64, 16, "C64", 64, false),
    // Packed: two F4 elements per byte, four F6 elements per three bytes.
    (DType::F4, 17, "F4", 4, false),
    (DType::F6E2M3, 18, "F6_E2M3", 6, false),
    (DType::F6E3M2, 19, "F6_E3M2", 6, false),
    (DType::F8E4M3Fnuz, 20, "F8_E4M3FNUZ", 8, true),
    (DType::F8E5M2Fnuz, 21, "F8_E5M2FNUZ", 8, true),
];

impl DType {
    fn row(self) -> &'static (DType, u8, &'static str, u32, bool) {
        TABLE
            .iter()
            .find(|r| r.0 == self)
            .expect("every dtype has a row")
    }
    pub fn code(self) -> u8 {
        self.row().1
    }
    pub fn from_code(code: u8) -> Option<DType> {
        TABLE.iter().find(|r| r.1 == code).map(|r| r.0)
    }
    /// The safetensors spelling, e.g. `BF16`.
    pub fn name(self) -> &'static str {
        self.row().2
    }
    pub fn from_name(name: &str) -> Option<DType> {
        TABLE.iter().find(|r| r.2 == name).map(|r| r.0)
    }
    /// Bits per element: 4 or 6 for the packed dtypes, else 8 times the
    /// element's bytes.
    pub fn bits(self) -> u32 {
        self.row().3
    }
    /// Bytes of the unit the codecs and chunks work in: the element size,
    /// or 1 for the packed sub-byte dtypes, whose data the codecs see as
    /// bytes.
    pub fn size(self) -> usize {
        self.bits().div_ceil(8) as usize
    }
    /// Bytes that `elements` elements take; `None` when that overflows 64
    /// bits or is not a whole number of bytes (a packed dtype whose element
    /// count is not a multiple of 2 for F4 or of 4 for F6).
    pub fn byte_len(self, elements: u64) -> Option<u64> {
        elements
            .checked_mul(u64::from(self.bits()))
            .filter(|bits| bits % 8 == 0)
            .map(|bits| bits / 8)
    }
    /// IEEE-754-like layout (sign, exponent, mantissa) in whole bytes:
    /// floating codecs apply.
    pub fn is_float(self) -> bool {
        self.row().4
    }
    /// All supported dtypes, in code order.
    pub fn all() -> impl Iterator<Item = DType> {
        TABLE.iter().map(|r| r.0)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
