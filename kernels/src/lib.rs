//! # tic-kernels: decoding tic chunks on an NVIDIA GPU
//!
//! The CUDA C kernels in `kernels/*.cu` decode the `planes` codec (Huffman,
//! raw and constant bit planes, merged into elements in the same pass),
//! copy `raw` chunks and XOR the ChaCha20 keystream over encrypted ones.
//! They are compiled at run time with NVRTC straight to machine code
//! (CUBIN) for the GPU found ([`compile_kernels`]) and launched through
//! cudarc ([`Gpu`], [`Decoder`]).
//!
//! - [`plan`] (pure Rust, tested without a GPU) lays out batches: chunk
//!   bytes, descriptor tables and the kernel launches;
//! - [`Gpu::open`] checks that the driver library loads (cudarc panics when
//!   it does not; this crate never lets that panic escape), opens the
//!   device and loads the kernels;
//! - [`Decoder`] runs batches through pinned staging buffers on two
//!   streams so host reads, copies and kernels overlap.
//!
//! See `kernels/README.md` for the kernel design and what has been checked
//! where.
//!
//! `unsafe` appears only where cudarc requires it: kernel launches, pinned
//! allocations, the raw NVRTC calls that return CUBIN and the library
//! presence probes. Each block carries a `// SAFETY:` comment.
#![deny(unsafe_code)]

mod error;
mod gpu;
mod nvrtc;
pub mod plan;

pub use cudarc;
pub use error::GpuError;
pub use gpu::{driver_available, ChunkInput, Decoder, DecoderOptions, Gpu, OutputId};
pub use nvrtc::{compile_kernels, compile_kernels_verbose, nvrtc_available, nvrtc_version};
pub use plan::{Codec, Keystream, PlanError, PlanesParams, StreamError};

/// The kernel sources, in compilation order (`common.cuh` first).
pub const SOURCES: [(&str, &str); 4] = [
    ("common.cuh", include_str!("../common.cuh")),
    ("chacha20.cu", include_str!("../chacha20.cu")),
    ("raw.cu", include_str!("../raw.cu")),
    ("planes.cu", include_str!("../planes.cu")),
];

/// All kernel sources as the one translation unit NVRTC compiles.
pub const KERNEL_SOURCE: &str = concat!(
    include_str!("../common.cuh"),
    "\n",
    include_str!("../chacha20.cu"),
    "\n",
    include_str!("../raw.cu"),
    "\n",
    include_str!("../planes.cu"),
);

#[cfg(test)]
mod tests {
    #[test]
    fn every_kernel_is_in_the_source() {
        for k in crate::plan::Kernel::ALL {
            let decl = format!("extern \"C\" __global__ void {}(", k.name());
            // The decode kernels are instances of one macro.
            let inst = format!("TIC_PLANES_DECODE({}, {})", k.name(), k.max_planes());
            let inst8 = format!("TIC_PLANES_DECODE({}, TIC_MAX_PLANES)", k.name());
            let src = crate::KERNEL_SOURCE.replace("u)", ")");
            assert!(
                src.contains(&decl) || src.contains(&inst) || src.contains(&inst8),
                "{} missing",
                k.name()
            );
        }
        let joined: String = crate::SOURCES
            .iter()
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(joined, crate::KERNEL_SOURCE);
    }
}
