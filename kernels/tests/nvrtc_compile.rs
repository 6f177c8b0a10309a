//! Compiles every kernel with NVRTC to CUBIN for sm_80 and sm_90.
//!
//! Needs libnvrtc (no GPU). Without it the test prints "skipped: libnvrtc
//! not found" and passes, unless TIC_REQUIRE_NVRTC=1 (CI sets it after
//! `kernels/ci/install_nvrtc.sh`), in which case it fails.
//!
//! `TIC_CUBIN_OUT=DIR` also writes each CUBIN to `DIR/tic-kernels-ARCH.cubin`,
//! for reading the machine code without a GPU (`nvdisasm`, from the PyPI
//! wheel `nvidia-cuda-nvdisasm`).

use tic_kernels::plan::Kernel;
use tic_kernels::{compile_kernels, nvrtc_available, nvrtc_version, GpuError};

fn nvrtc_or_skip() -> bool {
    if nvrtc_available() {
        return true;
    }
    if std::env::var("TIC_REQUIRE_NVRTC").as_deref() == Ok("1") {
        panic!(
            "TIC_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded: run kernels/ci/install_nvrtc.sh \
             and add the directory it prints to LD_LIBRARY_PATH"
        );
    }
    eprintln!(
        "skipped: libnvrtc not found (set LD_LIBRARY_PATH to kernels/ci/install_nvrtc.sh's output)"
    );
    false
}

/// Finds `name` as a NUL-terminated symbol string in the CUBIN's string tables.
fn has_symbol(cubin: &[u8], name: &str) -> bool {
    let needle: Vec<u8> = [name.as_bytes(), &[0]].concat();
    cubin.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn kernels_compile_to_cubin_for_sm80_and_sm90() {
    if !nvrtc_or_skip() {
        return;
    }
    let (major, minor) = nvrtc_version().expect("NVRTC loads");
    eprintln!("NVRTC {major}.{minor}");
    for arch in ["sm_80", "sm_90"] {
        let cubin = compile_kernels(arch).unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(&cubin[..4], b"\x7fELF", "{arch}: not an ELF CUBIN");
        // ELF64, little-endian, e_machine = EM_CUDA (190).
        assert_eq!(cubin[4], 2, "{arch}: not ELF64");
        assert_eq!(
            u16::from_le_bytes([cubin[18], cubin[19]]),
            190,
            "{arch}: not EM_CUDA"
        );
        for k in Kernel::ALL {
            assert!(has_symbol(&cubin, k.name()), "{arch}: {} missing", k.name());
        }
        if let Some(dir) = std::env::var_os("TIC_CUBIN_OUT") {
            let path = std::path::Path::new(&dir).join(format!("tic-kernels-{arch}.cubin"));
            std::fs::write(&path, &cubin).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        eprintln!(
            "{arch}: CUBIN of {} bytes with all {} kernels",
            cubin.len(),
            Kernel::ALL.len()
        );
    }
}

#[test]
fn virtual_architectures_are_refused() {
    // CUBIN only: a PTX target would be JIT-compiled by the driver.
    assert!(matches!(
        compile_kernels("compute_90"),
        Err(GpuError::BadArch { .. })
    ));
}

#[test]
fn resource_report() {
    if !nvrtc_or_skip() {
        return;
    }
    let (_, log) = tic_kernels::compile_kernels_verbose("sm_90").expect("compiles");
    eprintln!("{log}");
    // The decode kernels keep their per-plane lane readers in registers: no
    // local-memory stack frame and no spills.
    let decodes: Vec<&str> = log
        .split("Compiling entry function")
        .filter(|s| s.contains("tic_planes_decode"))
        .collect();
    assert_eq!(
        decodes.len(),
        3,
        "ptxas reports the three decode kernels:\n{log}"
    );
    for decode in decodes {
        assert!(
            decode.contains("0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"),
            "a decode kernel spills or uses a stack frame:\n{decode}"
        );
    }
}
