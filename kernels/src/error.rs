//! Errors of the GPU path, each saying what to do about it.

use thiserror::Error;

use crate::plan::{PlanError, StreamError};

/// Why the GPU path failed. Everything but [`GpuError::Stream`] and
/// [`GpuError::Plan`] means "the GPU cannot be used here": callers such as
/// `tic-runtime` fall back to the CPU decoder for those (see
/// [`GpuError::is_unavailable`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GpuError {
    #[error("the CUDA driver library (libcuda.so.1) could not be loaded: install the NVIDIA driver on a machine with an NVIDIA GPU, or decode on the CPU")]
    NoDriver,
    #[error("CUDA could not open GPU {ordinal} ({detail}); check that `nvidia-smi` lists it and that CUDA_VISIBLE_DEVICES does not hide it")]
    NoDevice { ordinal: usize, detail: String },
    #[error("NVRTC could not be loaded (looked for libnvrtc.so and libnvrtc.so.12): add the CUDA toolkit's lib64 directory, which has libnvrtc.so, to LD_LIBRARY_PATH, or run kernels/ci/install_nvrtc.sh and add the directory it prints")]
    NoNvrtc,
    #[error("{arch:?} is not a GPU architecture NVRTC can build machine code for; pass sm_XY (e.g. sm_90), not compute_XY")]
    BadArch { arch: String },
    #[error("NVRTC failed to compile the tic kernels for {arch} ({code}); a newer NVRTC may be needed for this GPU:\n{log}")]
    Compile {
        arch: String,
        code: String,
        log: String,
    },
    #[error("the CUDA driver failed while {what}: {detail}")]
    Driver { what: &'static str, detail: String },
    #[error("the {library} library failed while {what} ({message}); the installed driver or NVRTC may be too old for this build (needs CUDA 12.8 or later)")]
    LibraryPanic {
        library: &'static str,
        what: &'static str,
        message: String,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The API was used in an order it does not allow (a bug in the caller).
    #[error("tic-kernels was misused: {0}")]
    Misuse(&'static str),
    #[error("chunk {tag}: {error} (detected while decoding on the GPU)")]
    Stream { tag: u64, error: StreamError },
}

impl GpuError {
    /// True when the GPU (driver, device, NVRTC) cannot be used at all, as
    /// opposed to a problem with the data or the request.
    pub fn is_unavailable(&self) -> bool {
        !matches!(
            self,
            GpuError::Plan(_) | GpuError::Stream { .. } | GpuError::Misuse(_)
        )
    }

    pub(crate) fn driver(what: &'static str) -> impl FnOnce(cudarc::driver::DriverError) -> Self {
        move |e| GpuError::Driver {
            what,
            detail: format!("{e:?}"),
        }
    }
}

/// Runs a call into a dynamically loaded CUDA library, turning a panic
/// (cudarc panics when a library or one of its symbols is missing) into an
/// error.
pub(crate) fn guarded<T>(
    library: &'static str,
    what: &'static str,
    f: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(GpuError::LibraryPanic {
                library,
                what,
                message,
            })
        }
    }
}
