//! Element types, with the one-byte codes the header stores.

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
}

const TABLE: &[(DType, u8, &str, usize, bool)] = &[
    // (dtype, code, safetensors name, size in bytes, IEEE-like float)
    (DType::Bool, 0, "BOOL", 1, false),
    (DType::U8, 1, "U8", 1, false),
    (DType::I8, 2, "I8", 1, false),
    (DType::U16, 3, "U16", 2, false),
    (DType::I16, 4, "I16", 2, false),
    (DType::F16, 5, "F16", 2, true),
    (DType::BF16, 6, "BF16", 2, true),
    (DType::U32, 7, "U32", 4, false),
    (DType::I32, 8, "I32", 4, false),
    (DType::F32, 9, "F32", 4, true),
    (DType::U64, 10, "U64", 8, false),
    (DType::I64, 11, "I64", 8, false),
    (DType::F64, 12, "F64", 8, true),
    (DType::F8E4M3, 13, "F8_E4M3", 1, true),
    (DType::F8E5M2, 14, "F8_E5M2", 1, true),
    (DType::F8E8M0, 15, "F8_E8M0", 1, false),
    (DType::C64, 16, "C64", 8, false),
];

impl DType {
    fn row(self) -> &'static (DType, u8, &'static str, usize, bool) {
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
    /// Bytes per element.
    pub fn size(self) -> usize {
        self.row().3
    }
    /// IEEE-754-like layout (sign, exponent, mantissa): floating codecs apply.
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
