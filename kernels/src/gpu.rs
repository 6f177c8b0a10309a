//! Opening a GPU and running batches of chunks through the kernels.
//!
//! # The pipeline
//!
//! A [`Decoder`] owns two *slots*. Each slot is a pinned (page-locked)
//! host staging buffer, a device batch buffer of the same size, device
//! scratch for decode tables and a small pinned status buffer. The caller
//! [`push`](Decoder::push)es chunks (already read and checked against their
//! SHA-256 on the host) and the decoder copies each into the current slot's
//! staging buffer at the offset the planner gives. When a batch is full it
//! is submitted, and filling continues in the other slot:
//!
//! ```text
//! host:         fill A(0) | fill B(1) | wait A, fill A(2) | wait B, fill B(3) ...
//! copy stream:            | H2D A(0)  |  H2D B(1)         |  H2D A(2)  ...
//! decode stream:          |           | kernels A(0)      |  kernels B(1) ...
//! ```
//!
//! - copy stream: waits until the slot's previous kernels are done, copies
//!   the batch (chunk bytes and descriptor tables, one transfer), records
//!   `copied`;
//! - decode stream (the caller's stream, or a new one): waits for `copied`,
//!   launches ChaCha20 XOR, raw copy, plane parse and plane decode as
//!   planned, copies the status words back, records `done`;
//! - the host reuses a slot only after `done`: it then checks that batch's
//!   status words, so a corrupt chunk is reported at most two batches
//!   later, and always before [`finish`](Decoder::finish) returns.
//!
//! So while the GPU copies and decodes batch i, the host reads, hashes and
//! stages batch i+1, and the copy of batch i+1 overlaps the kernels of
//! batch i. Host memory in use is bounded by the two staging buffers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PinnedHostSlice, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::error::{guarded, GpuError};
use crate::plan::{
    Arg, Batch, BatchBuilder, ChunkJob, Codec, Kernel, Keystream, Launch, Limits, LUT_BYTES,
};

/// Whether the CUDA driver library can be loaded (without panicking).
pub fn driver_available() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: `is_culib_present` only tries to dlopen libcuda under its usual
    // names and drops the handle; it dereferences nothing of ours.
    let present = std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() });
    present.unwrap_or(false)
}

/// One GPU with the tic kernels loaded.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    ordinal: usize,
    name: String,
    arch: String,
    functions: HashMap<Kernel, CudaFunction>,
    max_shared_tables: u32,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("arch", &self.arch)
            .finish()
    }
}

fn cubin_for(arch: &str) -> Result<Arc<Vec<u8>>, GpuError> {
    static CUBINS: OnceLock<Mutex<HashMap<String, Arc<Vec<u8>>>>> = OnceLock::new();
    let cache = CUBINS.get_or_init(Default::default);
    if let Some(c) = cache.lock().expect("cubin cache").get(arch) {
        return Ok(c.clone());
    }
    let cubin = Arc::new(crate::compile_kernels(arch)?);
    cache
        .lock()
        .expect("cubin cache")
        .insert(arch.to_string(), cubin.clone());
    Ok(cubin)
}

impl Gpu {
    /// Opens GPU `ordinal`: checks the driver library loads, opens the device,
    /// compiles the kernels for its compute capability with NVRTC (once per
    /// process and architecture) and loads them.
    pub fn open(ordinal: usize) -> Result<Gpu, GpuError> {
        if !driver_available() {
            return Err(GpuError::NoDriver);
        }
        let ctx = guarded("CUDA driver", "opening the device", || {
            CudaContext::new(ordinal).map_err(|e| GpuError::NoDevice {
                ordinal,
                detail: format!("{e:?}"),
            })
        })?;
        guarded("CUDA driver", "loading the kernels", || {
            let (major, minor) = ctx
                .compute_capability()
                .map_err(GpuError::driver("reading the compute capability"))?;
            let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
            let arch = format!("sm_{major}{minor}");
            let cubin = cubin_for(&arch)?;
            let module = ctx
                .load_module(Ptx::from_binary(cubin.to_vec()))
                .map_err(GpuError::driver("loading the kernels' CUBIN"))?;
            let mut functions = HashMap::new();
            for k in Kernel::ALL {
                let f = module
                    .load_function(k.name())
                    .map_err(GpuError::driver("finding a kernel in the CUBIN"))?;
                functions.insert(k, f);
            }
            // Decode tables kept in shared memory: as many as fit in what a
            // block may opt into, keeping 2 KiB for the kernel's own arrays.
            let optin = ctx
                .attribute(
                    CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                )
                .unwrap_or(48 << 10)
                .max(48 << 10) as u64;
            let max_shared_tables = ((optin - 2048) / LUT_BYTES).min(8) as u32;
            let dynamic = max_shared_tables as u64 * LUT_BYTES;
            if dynamic > 48 << 10 {
                functions[&Kernel::PlanesDecode]
                    .set_attribute(
                        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        dynamic as i32,
                    )
                    .map_err(GpuError::driver(
                        "raising the decode kernel's shared memory",
                    ))?;
            }
            Ok(Gpu {
                ctx: ctx.clone(),
                ordinal,
                name,
                arch,
                functions,
                max_shared_tables,
            })
        })
    }

    /// The GPU `ordinal`, opened once per process and shared.
    pub fn shared(ordinal: usize) -> Result<Arc<Gpu>, GpuError> {
        static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let gpus = GPUS.get_or_init(Default::default);
        let mut gpus = gpus.lock().expect("gpu cache");
        if let Some(g) = gpus.get(&ordinal) {
            return Ok(g.clone());
        }
        let g = Arc::new(Gpu::open(ordinal)?);
        gpus.insert(ordinal, g.clone());
        Ok(g)
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
    /// The device name, e.g. `NVIDIA H100 80GB HBM3`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The architecture the kernels were compiled for, e.g. `sm_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// A decoder writing its outputs on `stream` (a new stream when `None`).
    pub fn decoder(
        &self,
        stream: Option<Arc<CudaStream>>,
        opts: DecoderOptions,
    ) -> Result<Decoder<'_>, GpuError> {
        Decoder::new(self, stream, opts)
    }
}

/// Sizes of a [`Decoder`]'s buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderOptions {
    /// Bytes of each of the two staging buffers (pinned host memory, and as
    /// much device memory); raised to fit `largest_chunk`.
    pub staging_bytes: u64,
    /// The largest chunk (bytes placed on the device) that will be pushed.
    pub largest_chunk: u64,
    /// Chunks per batch.
    pub max_chunks: u32,
    /// Decode tables per batch (8 KiB of device memory each, per slot).
    pub max_lut_slots: u32,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        let l = Limits::default();
        DecoderOptions {
            staging_bytes: l.staging_bytes,
            largest_chunk: 0,
            max_chunks: l.max_chunks,
            max_lut_slots: l.max_lut_slots,
        }
    }
}

/// One decoder output buffer, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputId(usize);

/// One chunk for [`Decoder::push`].
#[derive(Clone, Debug)]
pub struct ChunkInput<'a> {
    /// Reported back in errors (tic: the global chunk index).
    pub tag: u64,
    pub codec: &'a Codec,
    pub elem_size: usize,
    /// Bytes the chunk decodes to.
    pub orig_len: u64,
    /// The stored bytes, checked against their digest; for an encrypted
    /// chunk the ciphertext without its tag (the tag checked on the host).
    pub data: &'a [u8],
    /// Set for encrypted chunks.
    pub keystream: Option<Keystream>,
    pub output: OutputId,
    /// Where in the output the chunk's bytes go.
    pub out_offset: u64,
}

struct Slot {
    staging: PinnedHostSlice<u8>,
    status: PinnedHostSlice<u8>,
    dev: CudaSlice<u8>,
    luts: CudaSlice<u8>,
    copied: CudaEvent,
    done: CudaEvent,
    in_flight: Option<Batch>,
}

/// Decodes chunks into device buffers through a two-slot pipeline: while
/// one slot's batch is copied to the device and decoded, the host fills the
/// other (the source of this module draws the timeline).
pub struct Decoder<'g> {
    gpu: &'g Gpu,
    stream: Arc<CudaStream>,
    copy: Arc<CudaStream>,
    slots: Vec<Slot>,
    cur: usize,
    builder: BatchBuilder,
    outputs: Vec<CudaSlice<u8>>,
    out_addrs: Vec<u64>,
}

impl<'g> Decoder<'g> {
    fn new(
        gpu: &'g Gpu,
        stream: Option<Arc<CudaStream>>,
        opts: DecoderOptions,
    ) -> Result<Self, GpuError> {
        let stream = match stream {
            Some(s) if s.context() != &gpu.ctx => {
                return Err(GpuError::Driver {
                    what: "preparing to decode",
                    detail: format!(
                        "the stream given belongs to another CUDA context than GPU {}",
                        gpu.ordinal
                    ),
                })
            }
            Some(s) => s,
            None => gpu
                .ctx
                .new_stream()
                .map_err(GpuError::driver("creating a stream"))?,
        };
        let copy = gpu
            .ctx
            .new_stream()
            .map_err(GpuError::driver("creating a copy stream"))?;
        let mut limits = Limits {
            staging_bytes: opts.staging_bytes,
            max_chunks: opts.max_chunks,
            max_lut_slots: opts.max_lut_slots,
            max_shared_tables: gpu.max_shared_tables,
            ..Limits::default()
        };
        let overhead = limits.staging_bytes - limits.max_chunk_data().min(limits.staging_bytes);
        limits.staging_bytes = limits
            .staging_bytes
            .max(opts.largest_chunk + overhead)
            .div_ceil(4096)
            * 4096;
        let builder = BatchBuilder::new(limits)?;
        let mut slots = Vec::with_capacity(2);
        for _ in 0..2 {
            slots.push(Slot::new(gpu, &stream, &limits)?);
        }
        Ok(Decoder {
            gpu,
            stream,
            copy,
            slots,
            cur: 0,
            builder,
            outputs: Vec::new(),
            out_addrs: Vec::new(),
        })
    }

    /// The stream outputs are allocated and written on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Allocates a zeroed device buffer of `len` bytes to decode into. It is
    /// handed back by [`finish`](Self::finish), in allocation order.
    pub fn alloc_output(&mut self, len: usize) -> Result<OutputId, GpuError> {
        let buf = if len == 0 {
            self.stream.null::<u8>()
        } else {
            self.stream.alloc_zeros::<u8>(len)
        }
        .map_err(GpuError::driver("allocating an output buffer"))?;
        let addr = {
            let (ptr, _sync) = buf.device_ptr(&self.stream);
            ptr
        };
        self.outputs.push(buf);
        self.out_addrs.push(addr);
        Ok(OutputId(self.outputs.len() - 1))
    }

    /// Queues one chunk. Its bytes are copied into pinned staging memory
    /// before this returns, so `chunk.data` may be reused at once. Returns
    /// an error found in an earlier batch as soon as it is known.
    pub fn push(&mut self, chunk: ChunkInput<'_>) -> Result<(), GpuError> {
        let out_len = self
            .outputs
            .get(chunk.output.0)
            .map(|o| o.len() as u64)
            .ok_or_else(|| crate::plan::PlanError::BadChunk {
                tag: chunk.tag,
                what: "unknown output buffer".into(),
            })?;
        if chunk
            .out_offset
            .checked_add(chunk.orig_len)
            .is_none_or(|end| end > out_len)
        {
            return Err(crate::plan::PlanError::BadChunk {
                tag: chunk.tag,
                what: format!(
                    "{} bytes at offset {} do not fit an output of {out_len} bytes",
                    chunk.orig_len, chunk.out_offset
                ),
            }
            .into());
        }
        let job = ChunkJob {
            tag: chunk.tag,
            codec: chunk.codec,
            elem_size: chunk.elem_size,
            orig_len: chunk.orig_len,
            data_len: chunk.data.len() as u64,
            keystream: chunk.keystream,
            out_ptr: self.out_addrs[chunk.output.0] + chunk.out_offset,
        };
        if self.builder.is_empty() {
            self.reclaim(self.cur)?;
        }
        let off = match self.builder.try_add(&job)? {
            Some(off) => off,
            None => {
                self.submit()?;
                self.reclaim(self.cur)?;
                self.builder
                    .try_add(&job)?
                    .expect("a chunk that fits a batch fits an empty one")
            }
        };
        let staging = self.slots[self.cur]
            .staging
            .as_mut_slice()
            .map_err(GpuError::driver("writing the staging buffer"))?;
        staging[off as usize..][..chunk.data.len()].copy_from_slice(chunk.data);
        Ok(())
    }

    /// Waits for the batch last submitted from slot `k`, if any, and checks
    /// its status words.
    fn reclaim(&mut self, k: usize) -> Result<(), GpuError> {
        let slot = &mut self.slots[k];
        let Some(batch) = slot.in_flight.take() else {
            return Ok(());
        };
        slot.done
            .synchronize()
            .map_err(GpuError::driver("waiting for a batch to decode"))?;
        let status = slot
            .status
            .as_slice()
            .map_err(GpuError::driver("reading back the decode status"))?;
        match batch.first_error(&status[..4 * batch.tags.len()]) {
            Some((tag, error)) => Err(GpuError::Stream { tag, error }),
            None => Ok(()),
        }
    }

    /// Sends the current batch to the GPU and switches to the other slot.
    fn submit(&mut self) -> Result<(), GpuError> {
        let batch = self.builder.finish();
        let gpu = self.gpu;
        let Slot {
            staging,
            status,
            dev,
            luts,
            copied,
            done,
            in_flight,
        } = &mut self.slots[self.cur];
        let total = batch.total_len as usize;
        let host = staging
            .as_mut_slice()
            .map_err(GpuError::driver("writing the staging buffer"))?;
        host[batch.tables_off as usize..total].copy_from_slice(&batch.tables);

        // Copy stream: after the slot's previous kernels, one transfer.
        self.copy
            .wait(done)
            .map_err(GpuError::driver("ordering the batch copy"))?;
        self.copy
            .memcpy_htod(&host[..total], &mut dev.slice_mut(..total))
            .map_err(GpuError::driver("copying a batch to the GPU"))?;
        copied
            .record(&self.copy)
            .map_err(GpuError::driver("recording the batch copy"))?;

        // Decode stream: after the copy, the planned launches.
        self.stream
            .wait(copied)
            .map_err(GpuError::driver("ordering the decode after the copy"))?;
        let base = {
            let (ptr, _sync) = dev.device_ptr(&self.stream);
            ptr
        };
        let lut_base = {
            let (ptr, _sync) = luts.device_ptr(&self.stream);
            ptr
        };
        for launch in &batch.launches {
            launch_one(gpu, &self.stream, launch, base, lut_base)?;
        }
        let n = 4 * batch.tags.len();
        let status_off = batch.status_off() as usize;
        let status_host = status
            .as_mut_slice()
            .map_err(GpuError::driver("preparing the status readback"))?;
        self.stream
            .memcpy_dtoh(
                &dev.slice(status_off..status_off + n),
                &mut status_host[..n],
            )
            .map_err(GpuError::driver("reading back the decode status"))?;
        done.record(&self.stream)
            .map_err(GpuError::driver("recording the batch end"))?;
        *in_flight = Some(batch);
        self.cur = 1 - self.cur;
        Ok(())
    }

    /// Submits what is queued, waits for every batch, checks their status
    /// and returns the outputs in allocation order. On error the outputs
    /// are dropped: nothing from a failed decode is handed out.
    pub fn finish(mut self) -> Result<Vec<CudaSlice<u8>>, GpuError> {
        if !self.builder.is_empty() {
            self.submit()?;
        }
        let first = self.reclaim(self.cur);
        let second = self.reclaim(1 - self.cur);
        first?;
        second?;
        self.stream
            .synchronize()
            .map_err(GpuError::driver("finishing the decode"))?;
        Ok(std::mem::take(&mut self.outputs))
    }
}

impl Drop for Decoder<'_> {
    fn drop(&mut self) {
        // Staging buffers must outlive the copies that read them.
        let _ = self.copy.synchronize();
        let _ = self.stream.synchronize();
    }
}

impl Slot {
    fn new(gpu: &Gpu, stream: &Arc<CudaStream>, limits: &Limits) -> Result<Slot, GpuError> {
        let ctx = &gpu.ctx;
        let staging_len = limits.staging_bytes as usize;
        let status_len = 4 * limits.max_chunks as usize;
        #[allow(unsafe_code)]
        // SAFETY: cudarc marks pinned allocations unsafe because their bytes
        // start uninitialised; both are zeroed below before anything reads
        // them. The staging buffer is write-combined (the host only writes
        // it); the status buffer is not, as the host reads it.
        let (mut staging, mut status) = unsafe {
            (
                ctx.alloc_pinned::<u8>(staging_len)
                    .map_err(GpuError::driver("allocating pinned staging memory"))?,
                ctx.alloc_pinned_with_flags::<u8>(status_len, 0)
                    .map_err(GpuError::driver("allocating pinned status memory"))?,
            )
        };
        staging
            .as_mut_slice()
            .map_err(GpuError::driver("clearing pinned memory"))?
            .fill(0);
        status
            .as_mut_slice()
            .map_err(GpuError::driver("clearing pinned memory"))?
            .fill(0);
        let dev = stream
            .alloc_zeros::<u8>(staging_len)
            .map_err(GpuError::driver("allocating the device batch buffer"))?;
        let luts = stream
            .alloc_zeros::<u8>((limits.max_lut_slots as u64 * LUT_BYTES) as usize)
            .map_err(GpuError::driver("allocating decode-table scratch"))?;
        let event = || {
            ctx.new_event(None)
                .map_err(GpuError::driver("creating an event"))
        };
        Ok(Slot {
            staging,
            status,
            dev,
            luts,
            copied: event()?,
            done: event()?,
            in_flight: None,
        })
    }
}

/// Launches one planned kernel. Pointer arguments become device addresses:
/// the batch buffer's plus an offset, or the decode-table scratch.
fn launch_one(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    launch: &Launch,
    batch_base: u64,
    lut_base: u64,
) -> Result<(), GpuError> {
    enum Value {
        U32(u32),
        U64(u64),
    }
    let values: Vec<Value> = launch
        .args
        .iter()
        .map(|a| match *a {
            Arg::Batch(off) => Value::U64(batch_base + off),
            Arg::Luts => Value::U64(lut_base),
            Arg::U32(v) => Value::U32(v),
            Arg::U64(v) => Value::U64(v),
        })
        .collect();
    let func = &gpu.functions[&launch.kernel];
    let mut builder = stream.launch_builder(func);
    for v in &values {
        match v {
            Value::U32(x) => builder.arg(x),
            Value::U64(x) => builder.arg(x),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: (launch.grid, 1, 1),
        block_dim: (launch.block, 1, 1),
        shared_mem_bytes: launch.shared_bytes,
    };
    #[allow(unsafe_code)]
    // SAFETY: the argument list is the planner's for this kernel, whose
    // order and types (u32 scalars, u64 scalars and 64-bit pointers) the
    // emulation tests check against the kernel's C signature. Every pointer
    // is into the batch buffer or table scratch of this decoder's slot, or
    // (inside ChunkDescs) into an output buffer the decoder owns until
    // `finish`; all stay allocated until the stream has run the kernel
    // (`Drop` synchronizes). Every kernel bounds-checks what it reads from
    // the stream against its descriptors and writes only inside the ranges
    // the planner checked.
    unsafe { builder.launch(cfg) }.map_err(GpuError::driver("launching a decode kernel"))?;
    Ok(())
}
