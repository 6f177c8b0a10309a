//! Loading tensors onto a device: decoded on an NVIDIA GPU when one can be
//! used, on the CPU otherwise, with identical bytes either way.
//!
//! On the GPU path ([`Device::Cuda`], feature `cuda`):
//! - every chunk is read from the artifact straight into pinned staging
//!   memory and checked there against its signed SHA-256, in parallel,
//!   before any byte of it is copied to the device;
//! - checked chunks are copied to the device in batches, where `tic-kernels`
//!   decodes them straight into each tensor's buffer while the host reads
//!   the next batches (see `kernels/README.md` for the kernels and the
//!   pipeline);
//! - for encrypted artifacts the Poly1305 tag is checked on the host over
//!   the ciphertext and the ChaCha20 keystream XORed on the device, so
//!   plaintext never exists in host memory;
//! - with [`LoadOptions::verify`] (the default) every tensor is copied back
//!   and checked against its SHA-256 before it is returned.
//!
//! When the GPU cannot be used (no driver, no device, no NVRTC, a kernel
//! that does not compile, a codec without a GPU decoder, a driver failure)
//! one `tracing::warn!` line says why and the tensors are decoded on the
//! CPU instead. Problems with the artifact itself (a digest mismatch, a
//! malformed stream) are errors on either path, never a reason to retry.

use std::fmt;
use std::str::FromStr;

use tic_format::{DType, TensorEntry};

use crate::artifact::Artifact;
use crate::error::RuntimeError;

/// Where [`Artifact::load`] puts tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    /// An NVIDIA GPU, by CUDA ordinal.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = String;
    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device {s:?}: use cpu, cuda or cuda:N")),
        }
    }
}

/// How to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub device: Device,
    /// The CUDA stream tensors are allocated and written on (a new one when
    /// `None`). It must belong to the primary context of `device`. Loading
    /// is complete when `load` returns.
    #[cfg(feature = "cuda")]
    pub stream: Option<std::sync::Arc<tic_kernels::cudarc::driver::CudaStream>>,
    /// Copy each tensor decoded on the GPU back to the host and check its
    /// SHA-256 against the header before returning it (the CPU path always
    /// checks). Chunk digests are checked either way.
    pub verify: bool,
    /// Bytes of each of the GPU path's three pinned staging buffers (and as
    /// much device memory each); `None` for the default (32 MiB). Raised as
    /// needed to fit the artifact's largest chunk.
    pub staging_bytes: Option<u64>,
    /// When the GPU asked for cannot be used, decode on the CPU (the
    /// default; one warning is logged through `tracing`), or, when false,
    /// fail with [`RuntimeError::DeviceUnavailable`]: for a service that
    /// must not silently run on host memory.
    pub fallback_to_cpu: bool,
    /// Fill each GPU output buffer with this byte before decoding into it
    /// (`None`, the default: outputs start uninitialised, since the kernels
    /// write every byte of a tensor before `load` returns it). A testing
    /// aid: a byte the decoder failed to write then shows up as a digest
    /// mismatch instead of hiding behind a zero.
    pub poison: Option<u8>,
}

impl LoadOptions {
    pub fn new(device: Device) -> Self {
        LoadOptions {
            device,
            #[cfg(feature = "cuda")]
            stream: None,
            verify: true,
            staging_bytes: None,
            fallback_to_cpu: true,
            poison: None,
        }
    }
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions::new(Device::Cpu)
    }
}

/// Launch shape of the GPU decode kernels, for
/// [`Artifact::time_gpu_decode`]; `None` fields keep the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuTuning {
    /// Tiles (warps) per block (default 4).
    pub warps_per_block: Option<u32>,
    /// Most decode tables per block kept in shared memory (default: as many
    /// as the GPU allows, up to 8).
    pub shared_tables: Option<u32>,
}

/// Where a loaded tensor's bytes live.
pub enum TensorBuffer {
    Host(Vec<u8>),
    /// Device memory, written on the load's stream.
    #[cfg(feature = "cuda")]
    Cuda(tic_kernels::cudarc::driver::CudaSlice<u8>),
}

impl fmt::Debug for TensorBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorBuffer::Host(v) => write!(f, "Host({} bytes)", v.len()),
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(s) => write!(f, "Cuda({} bytes on cuda:{})", s.len(), s.ordinal()),
        }
    }
}

/// A tensor loaded onto a device: its original bytes (little-endian
/// elements, as in safetensors).
#[derive(Debug)]
pub struct DeviceTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub buffer: TensorBuffer,
}

impl DeviceTensor {
    /// Where the bytes are (after a fallback, `Cpu` even if a GPU was asked for).
    pub fn device(&self) -> Device {
        match &self.buffer {
            TensorBuffer::Host(_) => Device::Cpu,
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(s) => Device::Cuda(s.ordinal()),
        }
    }

    /// Bytes in the tensor.
    pub fn len(&self) -> usize {
        match &self.buffer {
            TensorBuffer::Host(v) => v.len(),
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in host memory: moved out without a copy when they are
    /// there already, copied back from a GPU otherwise.
    pub fn into_host(self) -> Result<Vec<u8>, RuntimeError> {
        match self.buffer {
            TensorBuffer::Host(v) => Ok(v),
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(s) => cuda::copy_back(&s, &self.name),
        }
    }

    /// The bytes, copied to the host if they are on a GPU.
    pub fn to_host(&self) -> Result<Vec<u8>, RuntimeError> {
        match &self.buffer {
            TensorBuffer::Host(v) => Ok(v.clone()),
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(s) => cuda::copy_back(s, &self.name),
        }
    }

    /// SHA-256 of the bytes (copied to the host first if on a GPU).
    pub fn sha256(&self) -> Result<[u8; 32], RuntimeError> {
        match &self.buffer {
            TensorBuffer::Host(v) => Ok(tic_format::sha256(v)),
            #[cfg(feature = "cuda")]
            TensorBuffer::Cuda(_) => Ok(tic_format::sha256(&self.to_host()?)),
        }
    }
}

/// Whether GPU `ordinal` can decode tic artifacts: its name and the
/// architecture the kernels were compiled for, or why not. Opens the GPU
/// and compiles the kernels (once per process).
pub fn probe_cuda(ordinal: usize) -> Result<String, String> {
    #[cfg(feature = "cuda")]
    {
        tic_kernels::Gpu::shared(ordinal)
            .map(|g| format!("{} ({})", g.name(), g.arch()))
            .map_err(|e| e.to_string())
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        Err("tic-runtime was built without its `cuda` feature".into())
    }
}

impl Artifact {
    /// Loads tensors onto `device`: the named ones in the order given, or
    /// (`None`) every named tensor in header order. Falls back to the CPU,
    /// with a warning, when the GPU cannot be used; see the [module
    /// docs](crate::device).
    pub fn load(
        &self,
        names: Option<&[&str]>,
        device: Device,
    ) -> Result<Vec<DeviceTensor>, RuntimeError> {
        self.load_with(names, &LoadOptions::new(device))
    }

    /// [`load`](Self::load) with options (stream, digest check, staging size).
    pub fn load_with(
        &self,
        names: Option<&[&str]>,
        opts: &LoadOptions,
    ) -> Result<Vec<DeviceTensor>, RuntimeError> {
        let tensors = self.select(names)?;
        self.need_key()?;
        match opts.device {
            Device::Cpu => self.load_on_cpu(&tensors),
            Device::Cuda(ordinal) => {
                #[cfg(feature = "cuda")]
                let why = match cuda::load(self, &tensors, ordinal, opts) {
                    Ok(loaded) => return Ok(loaded),
                    Err(cuda::Failure::Error(e)) => return Err(e),
                    Err(cuda::Failure::Unavailable(why)) => why,
                };
                #[cfg(not(feature = "cuda"))]
                let why = "tic-runtime was built without its `cuda` feature".to_string();
                if !opts.fallback_to_cpu {
                    return Err(RuntimeError::DeviceUnavailable {
                        device: opts.device.to_string(),
                        why,
                    });
                }
                tracing::warn!(
                    "cannot decode on cuda:{ordinal}: {why}; decoding on the CPU instead (same bytes, in host memory)"
                );
                self.load_on_cpu(&tensors)
            }
        }
    }

    /// A benchmark aid: decodes the named tensors (all when `None`) on GPU
    /// `ordinal` `runs` times with the kernels alone on the clock. Every
    /// chunk is read, checked and copied to the device once, in one batch
    /// (so the GPU needs room for the stored and the decoded model); each
    /// run then launches the decode (and decryption) kernels over all of
    /// it, timed with CUDA events. The decoded tensors are checked against
    /// their SHA-256 afterwards. Returns each run's milliseconds and the
    /// bytes one run decodes. Never falls back to the CPU.
    /// `tuning` changes the decode kernels' launch shape (for tuning).
    pub fn time_gpu_decode(
        &self,
        names: Option<&[&str]>,
        ordinal: usize,
        runs: usize,
        tuning: GpuTuning,
    ) -> Result<(Vec<f32>, u64), RuntimeError> {
        let tensors = self.select(names)?;
        self.need_key()?;
        #[cfg(feature = "cuda")]
        {
            cuda::time_decode(self, &tensors, ordinal, runs, tuning).map_err(|f| match f {
                cuda::Failure::Error(e) => e,
                cuda::Failure::Unavailable(why) => RuntimeError::DeviceUnavailable {
                    device: Device::Cuda(ordinal).to_string(),
                    why,
                },
            })
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (tensors, runs, tuning);
            Err(RuntimeError::DeviceUnavailable {
                device: Device::Cuda(ordinal).to_string(),
                why: "tic-runtime was built without its `cuda` feature".into(),
            })
        }
    }

    fn select(&self, names: Option<&[&str]>) -> Result<Vec<&TensorEntry>, RuntimeError> {
        match names {
            Some(names) => names.iter().map(|n| self.tensor(n)).collect(),
            None => Ok(self
                .header()
                .tensors
                .iter()
                .filter(|t| !t.name.is_empty())
                .collect()),
        }
    }

    /// Checks every loaded tensor against the SHA-256 its header records
    /// (copying GPU tensors back to the host), in parallel: what
    /// [`LoadOptions::verify`] does, for a caller that loaded without it
    /// and checks as a stage of its own.
    pub fn check_loaded(&self, loaded: &[DeviceTensor]) -> Result<(), RuntimeError> {
        use rayon::prelude::*;
        // One lookup table, not a search of the header per tensor: models
        // carry thousands of tensors.
        let by_name: std::collections::HashMap<&str, &TensorEntry> =
            self.tensors().map(|t| (t.name.as_str(), t)).collect();
        loaded.par_iter().try_for_each(|d| {
            let t = match by_name.get(d.name.as_str()) {
                Some(t) => *t,
                None => self.tensor(&d.name)?,
            };
            match d.sha256()? == t.sha256 {
                true => Ok(()),
                false => Err(RuntimeError::TensorDigest {
                    path: self.path().to_path_buf(),
                    tensor: crate::artifact::display_name(t),
                }),
            }
        })
    }

    fn load_on_cpu(&self, tensors: &[&TensorEntry]) -> Result<Vec<DeviceTensor>, RuntimeError> {
        use rayon::prelude::*;
        tensors
            .par_iter()
            .map(|t| {
                Ok(DeviceTensor {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    buffer: TensorBuffer::Host(self.read_entry(t)?),
                })
            })
            .collect()
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::path::PathBuf;

    use rayon::prelude::*;
    use tic_format::{ChunkEntry, TensorEntry};
    use tic_kernels::cudarc::driver::CudaSlice;
    use tic_kernels::{
        ChunkInput, Codec, Decoder, DecoderOptions, Gpu, GpuError, Keystream, OutputId,
    };

    use super::{DeviceTensor, LoadOptions, TensorBuffer};
    use crate::artifact::{display_name, Artifact};
    use crate::error::RuntimeError;

    /// Why the GPU path did not produce the tensors.
    pub(super) enum Failure {
        /// The GPU cannot be used; the caller falls back to the CPU.
        Unavailable(String),
        /// The artifact or the request is at fault; no fallback.
        Error(RuntimeError),
    }

    impl From<RuntimeError> for Failure {
        fn from(e: RuntimeError) -> Self {
            Failure::Error(e)
        }
    }

    /// What the GPU path needs for encrypted chunks: the tag check over the
    /// ciphertext (on the host) and the ChaCha20 parameters the device XORs
    /// with.
    pub(super) trait ChunkCipher: Sync {
        /// Checks the Poly1305 tag of a stored (ciphertext ‖ tag) chunk.
        fn verify_tag(&self, index: u64, last: bool, stored: &[u8]) -> bool;
        /// The keystream of the chunk: key, nonce and first block counter.
        fn keystream(&self, index: u64, last: bool) -> Keystream;
    }

    /// The payload key of an artifact opened with a matching identity,
    /// split into its two GPU halves: the Poly1305 tag is checked on the
    /// host over the ciphertext, the keystream is XORed on the device.
    struct PayloadCipher<'a>(&'a tic_format::crypto::PayloadKey);

    impl ChunkCipher for PayloadCipher<'_> {
        fn verify_tag(&self, index: u64, last: bool, stored: &[u8]) -> bool {
            tic_format::crypto::verify_chunk_tag(self.0, index, last, stored).is_ok()
        }
        fn keystream(&self, index: u64, last: bool) -> Keystream {
            let (key, nonce, counter) = tic_format::crypto::keystream_params(self.0, index, last);
            Keystream {
                key,
                nonce,
                counter,
            }
        }
    }

    /// The cipher for an encrypted artifact's GPU path; `None` when the
    /// artifact was opened without a matching identity.
    pub(super) fn gpu_cipher(art: &Artifact) -> Option<Box<dyn ChunkCipher + '_>> {
        art.payload_key()
            .map(|k| Box::new(PayloadCipher(k)) as Box<dyn ChunkCipher>)
    }

    fn unavailable(e: GpuError) -> Failure {
        Failure::Unavailable(e.to_string())
    }

    /// One chunk to decode: its tensor (index into the load's list), its
    /// global index, its entry and where its bytes go in the tensor.
    type Job<'h> = (usize, u64, &'h ChunkEntry, u64);

    /// The opened decoder with every output allocated, ready for chunks.
    struct Prepared<'a, 'g> {
        dec: Decoder<'g>,
        codecs: Vec<Codec>,
        outputs: Vec<Option<OutputId>>,
        jobs: Vec<Job<'a>>,
    }

    impl<'g> Prepared<'_, 'g> {
        /// The decoder and, borrowing the rest, every chunk's input.
        fn split<'s>(
            &'s mut self,
            art: &Artifact,
            tensors: &[&TensorEntry],
            cipher: Option<&dyn ChunkCipher>,
        ) -> (&'s mut Decoder<'g>, Vec<ChunkInput<'s>>) {
            let last_index = (art.header().chunks.len() as u64).saturating_sub(1);
            let tag_len = match cipher {
                Some(_) => tic_format::crypto::TAG_LEN as u64,
                None => 0,
            };
            let inputs = self
                .jobs
                .iter()
                .map(|&(ti, i, c, off)| ChunkInput {
                    tag: i,
                    codec: &self.codecs[ti],
                    elem_size: tensors[ti].dtype.size(),
                    orig_len: c.orig_len,
                    data_len: c.stored_len - tag_len,
                    staged_len: c.stored_len,
                    keystream: cipher.map(|k| k.keystream(i, i == last_index)),
                    output: self.outputs[ti].expect("a tensor with chunks has bytes"),
                    out_offset: off,
                })
                .collect();
            (&mut self.dec, inputs)
        }
    }

    fn prepare<'a, 'g>(
        art: &'a Artifact,
        tensors: &[&'a TensorEntry],
        gpu: &'g Gpu,
        opts: &LoadOptions,
        dopts: DecoderOptions,
    ) -> Result<(Prepared<'a, 'g>, Option<Box<dyn ChunkCipher + 'a>>), Failure> {
        let h = art.header();
        let cipher = if h.is_encrypted() {
            Some(gpu_cipher(art).ok_or_else(|| {
                Failure::Unavailable(
                    "the artifact is encrypted and was opened without a matching identity".into(),
                )
            })?)
        } else {
            None
        };
        let codecs = tensors
            .iter()
            .map(|t| {
                Codec::from_spec(t.codec.id, &t.codec.params, t.dtype.size())
                    .map_err(|e| Failure::Unavailable(format!("tensor {}: {e}", display_name(t))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut jobs: Vec<Job<'a>> = Vec::new();
        for (ti, t) in tensors.iter().enumerate() {
            let mut off = 0;
            for (i, c) in h.tensor_chunks(t) {
                jobs.push((ti, i, c, off));
                off += c.orig_len;
            }
        }
        let mut dopts = DecoderOptions {
            largest_chunk: jobs.iter().map(|j| j.2.stored_len).max().unwrap_or(0),
            poison: opts.poison,
            ..dopts
        };
        if let Some(s) = opts.staging_bytes {
            dopts.staging_bytes = s;
        }
        let mut dec = gpu
            .decoder(opts.stream.clone(), dopts)
            .map_err(unavailable)?;
        // Empty tensors get no decoder output (CUDA refuses 0-byte
        // allocations on some drivers); see `collect`.
        let outputs = tensors
            .iter()
            .map(|t| match t.orig_len {
                0 => Ok(None),
                n => dec.alloc_output(n as usize).map(Some),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        Ok((
            Prepared {
                dec,
                codecs,
                outputs,
                jobs,
            },
            cipher,
        ))
    }

    /// Reads chunks straight into the staging region `dec` gave them, in
    /// parallel, each checked against its signed digest (and, encrypted,
    /// its Poly1305 tag over the ciphertext) before the batch is submitted.
    fn fill(
        art: &Artifact,
        tensors: &[&TensorEntry],
        jobs: &[Job<'_>],
        regions: Vec<&mut [u8]>,
        cipher: Option<&(dyn ChunkCipher + '_)>,
    ) -> Result<(), RuntimeError> {
        let last_index = (art.header().chunks.len() as u64).saturating_sub(1);
        regions
            .into_par_iter()
            .zip(jobs)
            .try_for_each(|(region, &(ti, i, c, _))| {
                art.read_checked(i, c, tensors[ti], region)?;
                match cipher {
                    Some(k) if !k.verify_tag(i, i == last_index, region) => {
                        Err(RuntimeError::Decrypt {
                            path: art.path().to_path_buf(),
                            tensor: display_name(tensors[ti]),
                            chunk: i,
                        })
                    }
                    _ => Ok(()),
                }
            })
    }

    pub(super) fn load(
        art: &Artifact,
        tensors: &[&TensorEntry],
        ordinal: usize,
        opts: &LoadOptions,
    ) -> Result<Vec<DeviceTensor>, Failure> {
        let gpu = Gpu::shared(ordinal).map_err(unavailable)?;
        tracing::debug!(
            "decoding {} tensors on cuda:{ordinal}, {} ({})",
            tensors.len(),
            gpu.name(),
            gpu.arch()
        );
        // Where the time goes, for `debug` logs: setting up (staging
        // buffers, outputs), waiting for a free slot, reading and checking
        // chunks, submitting batches, and the final wait.
        let mut clock = Stages::default();
        let t = std::time::Instant::now();
        let (mut p, cipher) = prepare(art, tensors, &gpu, opts, DecoderOptions::default())?;
        clock.prepare = t.elapsed();
        let jobs = p.jobs.clone();
        let failed = |e| gpu_error(art, tensors, &jobs, e, cipher.is_some());
        let (dec, inputs) = p.split(art, tensors, cipher.as_deref());
        let mut next = 0;
        while next < inputs.len() {
            let t = std::time::Instant::now();
            let regions = dec.stage(&inputs[next..]).map_err(failed)?;
            clock.stage += t.elapsed();
            let n = regions.len();
            let t = std::time::Instant::now();
            fill(
                art,
                tensors,
                &jobs[next..next + n],
                regions,
                cipher.as_deref(),
            )?;
            clock.fill += t.elapsed();
            let t = std::time::Instant::now();
            dec.submit().map_err(failed)?;
            clock.submit += t.elapsed();
            clock.batches += 1;
            next += n;
        }
        let t = std::time::Instant::now();
        let stream = p.dec.stream().clone();
        let buffers = p.dec.finish().map_err(failed)?;
        clock.finish = t.elapsed();
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            "GPU load of {} chunks in {} batches: setup {:.1} ms, waiting for slots {:.1} ms, \
             reading and checking {:.1} ms, submitting {:.1} ms, final wait {:.1} ms",
            jobs.len(),
            clock.batches,
            ms(clock.prepare),
            ms(clock.stage),
            ms(clock.fill),
            ms(clock.submit),
            ms(clock.finish)
        );
        collect(art, tensors, &p.outputs, buffers, &stream, opts.verify)
    }

    /// Time spent in each stage of a GPU load.
    #[derive(Default)]
    struct Stages {
        prepare: std::time::Duration,
        stage: std::time::Duration,
        fill: std::time::Duration,
        submit: std::time::Duration,
        finish: std::time::Duration,
        batches: usize,
    }

    /// Pairs the decoded buffers with their tensors, checking each
    /// tensor's SHA-256 (copied back, in parallel) when `verify` is set.
    fn collect(
        art: &Artifact,
        tensors: &[&TensorEntry],
        outputs: &[Option<OutputId>],
        buffers: Vec<CudaSlice<u8>>,
        stream: &std::sync::Arc<tic_kernels::cudarc::driver::CudaStream>,
        verify: bool,
    ) -> Result<Vec<DeviceTensor>, Failure> {
        let mut buffers = buffers.into_iter();
        let loaded: Vec<DeviceTensor> = tensors
            .iter()
            .zip(outputs)
            .map(|(t, out)| {
                let buffer = match out {
                    Some(_) => TensorBuffer::Cuda(buffers.next().expect("one buffer per output")),
                    // An empty tensor: an empty device slice where the driver
                    // allows one, else an empty host buffer (no bytes either way).
                    None => match stream.null::<u8>() {
                        Ok(s) => TensorBuffer::Cuda(s),
                        Err(_) => TensorBuffer::Host(Vec::new()),
                    },
                };
                DeviceTensor {
                    name: t.name.clone(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                    buffer,
                }
            })
            .collect();
        if verify {
            art.check_loaded(&loaded)?;
        }
        Ok(loaded)
    }

    /// Timings of the GPU kernels alone; see [`Artifact::time_gpu_decode`].
    pub(super) fn time_decode(
        art: &Artifact,
        tensors: &[&TensorEntry],
        ordinal: usize,
        runs: usize,
        tuning: super::GpuTuning,
    ) -> Result<(Vec<f32>, u64), Failure> {
        let gpu = Gpu::shared(ordinal).map_err(unavailable)?;
        let stored: u64 = tensors
            .iter()
            .flat_map(|t| art.header().tensor_chunks(t))
            .map(|(_, c)| c.stored_len)
            .sum();
        let chunks: u64 = tensors.iter().map(|t| t.chunk_count as u64).sum();
        // Decode tables the batch needs: one per plane narrow enough for
        // Huffman coding, per chunk (what the planner reserves).
        let tables: u64 = tensors
            .iter()
            .map(|t| {
                let planes = match Codec::from_spec(t.codec.id, &t.codec.params, t.dtype.size()) {
                    Ok(Codec::Planes(p)) => p.huffman_capable() as u64,
                    _ => 0,
                };
                planes * t.chunk_count as u64
            })
            .sum();
        let warps_per_block = tuning
            .warps_per_block
            .unwrap_or(DecoderOptions::default().warps_per_block);
        let limits = tic_kernels::plan::Limits {
            warps_per_block,
            ..Default::default()
        };
        // One batch holding every chunk: the kernels see the whole model.
        // Each chunk needs its stored bytes, 16-byte alignment and at most
        // the planner's per-chunk share of the tables.
        let dopts = DecoderOptions {
            staging_bytes: stored + chunks * (limits.chunk_overhead() + 16),
            slots: 1,
            max_chunks: u32::try_from(chunks + 1).unwrap_or(u32::MAX),
            max_lut_slots: u32::try_from(tables + 1).unwrap_or(u32::MAX),
            warps_per_block,
            shared_tables: tuning.shared_tables,
            ..DecoderOptions::default()
        };
        let opts = LoadOptions::new(super::Device::Cuda(ordinal));
        let (mut p, cipher) = prepare(art, tensors, &gpu, &opts, dopts)?;
        let jobs = p.jobs.clone();
        let failed = |e| gpu_error(art, tensors, &jobs, e, cipher.is_some());
        let (dec, inputs) = p.split(art, tensors, cipher.as_deref());
        let regions = dec.stage(&inputs).map_err(failed)?;
        if regions.len() != inputs.len() {
            return Err(Failure::Error(RuntimeError::Internal(format!(
                "the timing batch holds {} of {} chunks",
                regions.len(),
                inputs.len()
            ))));
        }
        fill(art, tensors, &jobs, regions, cipher.as_deref())?;
        let times = dec.time_staged(runs).map_err(failed)?;
        let stream = p.dec.stream().clone();
        let buffers = p.dec.finish().map_err(failed)?;
        let loaded = collect(art, tensors, &p.outputs, buffers, &stream, true)?;
        Ok((times, loaded.iter().map(|t| t.len() as u64).sum()))
    }

    /// Turns a decoder error into a fallback or an error. A stream error on
    /// a chunk that passed its digest means the writer or a decoder is
    /// wrong; for a plaintext chunk the CPU decoder is asked for its verdict
    /// (its error is the precise one).
    fn gpu_error(
        art: &Artifact,
        tensors: &[&TensorEntry],
        chunks: &[Job<'_>],
        e: GpuError,
        encrypted: bool,
    ) -> Failure {
        let GpuError::Stream { tag, error } = e else {
            return unavailable(e);
        };
        let Some(&(ti, ..)) = chunks.iter().find(|c| c.1 == tag) else {
            return Failure::Error(RuntimeError::Internal(format!(
                "the GPU decoder reported chunk {tag}, which was not submitted"
            )));
        };
        let t = tensors[ti];
        let gpu_said = format!(
            "the GPU decoder rejected chunk {tag} of tensor {} ({error})",
            display_name(t)
        );
        if !encrypted {
            let mut buf = vec![0u8; t.orig_len as usize];
            if let Err(cpu) = art.read_tensor_into(t, &mut buf) {
                tracing::debug!("{gpu_said}; the CPU decoder agrees: {cpu}");
                return Failure::Error(cpu);
            }
            return Failure::Error(RuntimeError::Internal(format!(
                "{gpu_said}, but the CPU decoder accepts it"
            )));
        }
        Failure::Error(RuntimeError::Internal(format!(
            "{gpu_said}; the chunk passed its digest and tag checks, so the artifact's writer or the GPU decoder is wrong"
        )))
    }

    /// Copies a device buffer to the host.
    pub(super) fn copy_back(buf: &CudaSlice<u8>, name: &str) -> Result<Vec<u8>, RuntimeError> {
        buf.stream().clone_dtoh(buf).map_err(|e| RuntimeError::Io {
            path: PathBuf::from(format!("cuda:{}", buf.ordinal())),
            source: std::io::Error::other(format!(
                "copying tensor `{name}` back to the host failed: {e:?}"
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OpenOptions, Trust};
    use tic_format::codec::CodecSpec;
    use tic_format::header::{Preamble, VERSION_MAJOR, VERSION_MINOR};
    use tic_format::{ChunkEntry, Encryption, FileEntry, FileKind, Header};

    /// An unsigned artifact with one safetensors file of two raw tensors,
    /// the second in two chunks.
    fn artifact(dir: &std::path::Path) -> (std::path::PathBuf, Vec<Vec<u8>>) {
        let a: Vec<u8> = (0..64u32).flat_map(|i| (i as u16).to_le_bytes()).collect();
        let b: Vec<u8> = (0..100u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
        let chunks_of = [vec![a.clone()], vec![b[..160].to_vec(), b[160..].to_vec()]];
        let mut chunks = Vec::new();
        let mut payload = Vec::new();
        for c in chunks_of.iter().flatten() {
            chunks.push(ChunkEntry {
                offset: payload.len() as u64,
                stored_len: c.len() as u64,
                orig_len: c.len() as u64,
                sha256: tic_format::sha256(c),
            });
            payload.extend_from_slice(c);
        }
        let tensor = |name: &str, dtype, shape: Vec<u64>, data: &[u8], first, count| TensorEntry {
            name: name.into(),
            dtype,
            shape,
            codec: CodecSpec::raw(),
            orig_len: data.len() as u64,
            sha256: tic_format::sha256(data),
            first_chunk: first,
            chunk_count: count,
            lossy: None,
        };
        let st_header = vec![0u8; 8];
        let header = Header {
            creator: "device.rs test".into(),
            payload_len: payload.len() as u64,
            encryption: Encryption::None,
            files: vec![FileEntry {
                path: "model.safetensors".into(),
                kind: FileKind::Safetensors,
                size: (8 + a.len() + b.len()) as u64,
                sha256: [0; 32],
                st_header,
                first_tensor: 0,
                tensor_count: 2,
            }],
            tensors: vec![
                tensor("a", DType::BF16, vec![8, 8], &a, 0, 1),
                tensor("b", DType::U32, vec![100], &b, 1, 2),
            ],
            chunks,
            extensions: vec![],
        };
        header.check().unwrap();
        let hb = header.to_bytes();
        let pre = Preamble {
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            header_len: hb.len() as u64,
            signature_len: 0,
            recipients_len: 0,
            payload_len: payload.len() as u64,
        };
        let mut file = pre.to_bytes().to_vec();
        file.extend_from_slice(&hb);
        file.extend_from_slice(&payload);
        let path = dir.join("t.tic");
        std::fs::write(&path, file).unwrap();
        (path, vec![a, b])
    }

    fn open(path: &std::path::Path) -> Artifact {
        let opts = OpenOptions {
            trust: Trust {
                keys: vec![],
                allow_unsigned: true,
            },
            ..Default::default()
        };
        Artifact::open(path, &opts).unwrap()
    }

    #[test]
    fn device_names() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(Device::Cuda(3)));
        assert!("gpu".parse::<Device>().is_err());
        assert!("cuda:x".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn loads_on_the_cpu() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = artifact(dir.path());
        let art = open(&path);
        let all = art.load(None, Device::Cpu).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].name.as_str(), all[0].dtype), ("a", DType::BF16));
        assert_eq!(all[0].shape, vec![8, 8]);
        assert_eq!(all[0].to_host().unwrap(), data[0]);
        assert_eq!(all[1].to_host().unwrap(), data[1]);
        assert_eq!(all[1].sha256().unwrap(), tic_format::sha256(&data[1]));
        assert_eq!(all[1].device(), Device::Cpu);
        let some = art.load(Some(&["b"]), Device::Cpu).unwrap();
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].to_host().unwrap(), data[1]);
        assert!(matches!(
            art.load(Some(&["nope"]), Device::Cpu),
            Err(RuntimeError::TensorNotFound { .. })
        ));
    }

    /// Without a usable GPU (this test's machines have none) a CUDA load
    /// falls back to the CPU with the same bytes. On a machine with a GPU it
    /// decodes there; either way the bytes must match.
    #[test]
    fn cuda_load_matches_or_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = artifact(dir.path());
        let art = open(&path);
        let loaded = art.load(None, Device::Cuda(0)).unwrap();
        for (t, want) in loaded.iter().zip(&data) {
            assert_eq!(&t.to_host().unwrap(), want);
            if probe_cuda(0).is_err() {
                assert_eq!(t.device(), Device::Cpu);
            }
        }
    }

    #[test]
    fn a_damaged_chunk_is_an_error_not_a_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = artifact(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let art = open(&path);
        for device in [Device::Cpu, Device::Cuda(0)] {
            assert!(
                matches!(
                    art.load(Some(&["b"]), device),
                    Err(RuntimeError::ChunkDigest { chunk: 2, .. })
                ),
                "{device}"
            );
        }
    }
}
