//! Compiling the kernels with NVRTC straight to machine code (CUBIN).
//!
//! cudarc's safe NVRTC API only returns PTX; CUBIN needs `nvrtcGetCUBIN`,
//! which is reached through cudarc's raw bindings (the `unsafe` blocks
//! below, each with its reason).

use std::ffi::{c_char, CStr, CString};

use cudarc::nvrtc::{result, sys};

use crate::error::{guarded, GpuError};
use crate::KERNEL_SOURCE;

/// Whether libnvrtc can be loaded (without panicking).
pub fn nvrtc_available() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `is_culib_present` only tries to dlopen the library under its
    // usual names and drops the handle; it dereferences nothing of ours.
    let present = std::panic::catch_unwind(|| unsafe { sys::is_culib_present() });
    present.unwrap_or(false)
}

/// NVRTC's (major, minor) version, when it can be loaded.
pub fn nvrtc_version() -> Result<(i32, i32), GpuError> {
    if !nvrtc_available() {
        return Err(GpuError::NoNvrtc);
    }
    guarded("NVRTC", "reading its version", || {
        let (mut major, mut minor) = (0, 0);
        #[allow(unsafe_code)]
        // SAFETY: both pointers are to live locals the call writes once.
        let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
        r.result().map_err(|e| GpuError::Compile {
            arch: String::new(),
            code: format!("{e:?}"),
            log: "nvrtcVersion failed".into(),
        })?;
        Ok((major, minor))
    })
}

fn check_arch(arch: &str) -> Result<(), GpuError> {
    let digits = arch
        .strip_prefix("sm_")
        .map(|r| r.trim_end_matches(['a', 'f']));
    match digits {
        Some(d) if (2..=3).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(GpuError::BadArch {
            arch: arch.to_string(),
        }),
    }
}

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: self.0 came from nvrtcCreateProgram and is destroyed once,
        // here.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

impl Program {
    #[allow(unsafe_code)]
    fn log(&self) -> String {
        // SAFETY: self.0 is a live program.
        let buf = unsafe { result::get_program_log(self.0) };
        match buf {
            // SAFETY: the buffer is owned, holds a NUL (checked) and outlives
            // the CStr borrowed from it.
            Ok(buf) if buf.contains(&0) => unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
            _ => String::from("(no log)"),
        }
    }
}

/// Compiles every kernel of `kernels/*.cu` for `arch` (`sm_XY`, the GPU's
/// compute capability) and returns the CUBIN: machine code for that GPU,
/// loaded without a JIT step.
pub fn compile_kernels(arch: &str) -> Result<Vec<u8>, GpuError> {
    compile_checked(arch, false).map(|(cubin, _)| cubin)
}

/// [`compile_kernels`], also returning NVRTC's log with ptxas's resource
/// report (registers, spills, shared memory per kernel).
pub fn compile_kernels_verbose(arch: &str) -> Result<(Vec<u8>, String), GpuError> {
    compile_checked(arch, true)
}

fn compile_checked(arch: &str, verbose: bool) -> Result<(Vec<u8>, String), GpuError> {
    check_arch(arch)?;
    if !nvrtc_available() {
        return Err(GpuError::NoNvrtc);
    }
    guarded("NVRTC", "compiling the kernels", || compile(arch, verbose))
}

fn compile(arch: &str, verbose: bool) -> Result<(Vec<u8>, String), GpuError> {
    let failed = |code: String, log: String| GpuError::Compile {
        arch: arch.to_string(),
        code,
        log,
    };
    let src = CString::new(KERNEL_SOURCE).expect("kernel sources contain no NUL");
    let prog = result::create_program(&src, Some(c"tic_kernels.cu"))
        .map_err(|e| failed(format!("{e:?}"), "nvrtcCreateProgram failed".into()))?;
    let prog = Program(prog);
    let mut options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--extra-device-vectorization".to_string(),
    ];
    if verbose {
        options.push("--ptxas-options=-v".to_string());
    }
    #[allow(unsafe_code)]
    // SAFETY: prog.0 is a live program; the options are owned CStrings that
    // compile_program builds and keeps alive for the call.
    let compiled = unsafe { result::compile_program(prog.0, &options) };
    if let Err(e) = compiled {
        return Err(failed(format!("{e:?}"), prog.log()));
    }
    let mut size = 0usize;
    #[allow(unsafe_code)]
    // SAFETY: prog.0 is a compiled program; size is a live local.
    let r = unsafe { sys::nvrtcGetCUBINSize(prog.0, &mut size) };
    r.result().map_err(|e| {
        failed(
            format!("{e:?}"),
            "nvrtcGetCUBINSize failed (was a virtual compute_XY target given?)".into(),
        )
    })?;
    let mut cubin = vec![0u8; size];
    #[allow(unsafe_code)]
    // SAFETY: cubin has exactly the `size` bytes NVRTC reported for this
    // program, and NVRTC writes at most that many.
    let r = unsafe { sys::nvrtcGetCUBIN(prog.0, cubin.as_mut_ptr() as *mut c_char) };
    r.result()
        .map_err(|e| failed(format!("{e:?}"), "nvrtcGetCUBIN failed".into()))?;
    if cubin.len() < 4 || cubin[..4] != *b"\x7fELF" {
        return Err(failed(
            "not ELF".into(),
            "NVRTC returned something that is not a CUBIN".into(),
        ));
    }
    let log = if verbose { prog.log() } else { String::new() };
    Ok((cubin, log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_names() {
        for ok in ["sm_50", "sm_80", "sm_90", "sm_90a", "sm_100", "sm_120f"] {
            assert!(check_arch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "compute_90",
            "sm90",
            "sm_",
            "sm_9",
            "sm_1000",
            "sm_9x",
            "",
            "sm_80 -G",
        ] {
            assert!(
                matches!(check_arch(bad), Err(GpuError::BadArch { .. })),
                "{bad}"
            );
        }
    }
}
