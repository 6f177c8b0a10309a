//! Opening a GPU and running batches of chunks through the kernels.
//!
//! # The pipeline
//!
//! A [`Decoder`] owns a ring of *slots* (default 3). Each slot is a pinned
//! (page-locked) host staging buffer, a device batch buffer of the same
//! size, device scratch for decode tables and a small pinned status buffer.
//! For each batch the caller [`stage`](Decoder::stage)s chunks (the decoder
//! plans as many as fit and hands back each one's region of the slot's
//! staging buffer), writes and checks the chunks' bytes in their regions
//! (tic-runtime reads them there from the artifact and checks their SHA-256
//! and tag, in parallel), and [`submit`](Decoder::submit)s the batch;
//! filling goes on in the next slot:
//!
//! ```text
//! host:         fill A(0) | fill B(1) | fill C(2)    | wait A, fill A(3) ...
//! copy stream:            | H2D A(0)  | H2D B(1)     | H2D C(2)  ...
//! decode stream:          | kernels A(0) | kernels B(1) | kernels C(2) ...
//! ```
//!
//! - copy stream: waits until the slot's previous kernels are done, copies
//!   the batch (chunk bytes and descriptor tables, one transfer), records
//!   `copied`;
//! - decode stream (the caller's stream, or a new one): waits for `copied`,
//!   launches ChaCha20 XOR, raw copy, plane parse and plane decode as
//!   planned, copies the status words back, records `done`;
//! - the host reuses a slot only after `done`: it then checks that batch's
//!   status words, so a corrupt chunk is reported a few batches later, and
//!   always before [`finish`](Decoder::finish) returns.
//!
//! So while the GPU copies and decodes earlier batches, the host reads,
//! hashes and stages the next. Host memory in use is bounded by the
//! staging buffers.

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
                for k in Kernel::ALL.into_iter().filter(|k| k.max_planes() > 0) {
                    functions[&k]
                        .set_attribute(
                            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            dynamic as i32,
                        )
                        .map_err(GpuError::driver(
                            "raising the decode kernels' shared memory",
                        ))?;
                }
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
    /// Bytes of each slot's staging buffer (pinned host memory, and as much
    /// device memory); raised to fit `largest_chunk`.
    pub staging_bytes: u64,
    /// Staging slots: while the host fills one, the others are copied to
    /// the device and decoded. At least 1.
    pub slots: usize,
    /// The largest chunk (bytes staged) that will be given to
    /// [`Decoder::stage`].
    pub largest_chunk: u64,
    /// Chunks per batch.
    pub max_chunks: u32,
    /// Decode tables per batch (8 KiB of device memory each, per slot).
    pub max_lut_slots: u32,
    /// Tiles (warps) per block of the decode kernels.
    pub warps_per_block: u32,
    /// Most decode tables a decode block keeps in shared memory (`None`:
    /// as many as the GPU allows, up to 8); further ones are read from
    /// global memory through the caches.
    pub shared_tables: Option<u32>,
    /// Fill each output buffer with this byte when it is allocated. `None`
    /// leaves outputs uninitialised: the kernels write every byte of every
    /// chunk, and [`Decoder::finish`] hands outputs out only when every
    /// chunk decoded. A testing aid: a byte left unwritten then shows.
    pub poison: Option<u8>,
}

impl Default for DecoderOptions {
    fn default() -> Self {
        let l = Limits::default();
        DecoderOptions {
            staging_bytes: 32 << 20,
            slots: 3,
            largest_chunk: 0,
            max_chunks: l.max_chunks,
            max_lut_slots: l.max_lut_slots,
            warps_per_block: l.warps_per_block,
            shared_tables: None,
            poison: None,
        }
    }
}

/// One decoder output buffer, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputId(usize);

/// One chunk for [`Decoder::stage`].
#[derive(Clone, Debug)]
pub struct ChunkInput<'a> {
    /// Reported back in errors (tic: the global chunk index).
    pub tag: u64,
    pub codec: &'a Codec,
    pub elem_size: usize,
    /// Bytes the chunk decodes to.
    pub orig_len: u64,
    /// Bytes the kernels decode: the stored bytes, or for an encrypted
    /// chunk the ciphertext without its tag.
    pub data_len: u64,
    /// Bytes the caller writes into the chunk's staging region: `data_len`,
    /// or for an encrypted chunk the ciphertext and its tag (which the
    /// kernels never read).
    pub staged_len: u64,
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

/// Decodes chunks into device buffers through a pipeline of staging slots:
/// while the host fills one slot, earlier ones are copied to the device and
/// decoded (the source of this module draws the timeline).
pub struct Decoder<'g> {
    gpu: &'g Gpu,
    stream: Arc<CudaStream>,
    copy: Arc<CudaStream>,
    slots: Vec<Slot>,
    cur: usize,
    builder: BatchBuilder,
    poison: Option<u8>,
    /// Set by any error: the decoder then refuses further work, and
    /// `finish` hands no output out (some may never have been written).
    failed: bool,
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
            max_shared_tables: opts
                .shared_tables
                .map_or(gpu.max_shared_tables, |n| n.min(gpu.max_shared_tables)),
            warps_per_block: opts.warps_per_block,
        };
        limits.staging_bytes = limits
            .staging_bytes
            .max(opts.largest_chunk + limits.chunk_overhead())
            .div_ceil(4096)
            * 4096;
        let builder = BatchBuilder::new(limits)?;
        let mut slots = Vec::with_capacity(opts.slots.max(1));
        for _ in 0..opts.slots.max(1) {
            slots.push(Slot::new(gpu, &stream, &limits)?);
        }
        Ok(Decoder {
            gpu,
            stream,
            copy,
            slots,
            cur: 0,
            builder,
            poison: opts.poison,
            failed: false,
            outputs: Vec::new(),
            out_addrs: Vec::new(),
        })
    }

    /// The stream outputs are allocated and written on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Allocates a device buffer of `len` bytes to decode into (filled with
    /// [`DecoderOptions::poison`], or uninitialised). It is handed back by
    /// [`finish`](Self::finish), in allocation order.
    pub fn alloc_output(&mut self, len: usize) -> Result<OutputId, GpuError> {
        let buf = if len == 0 {
            self.stream.null::<u8>()
        } else {
            #[allow(unsafe_code)]
            // SAFETY: the buffer starts uninitialised. It is either filled
            // with the poison byte below, or written whole by the kernels
            // before `finish` returns it: every chunk staged for it writes
            // its range, and `finish` fails (dropping every output) unless
            // every chunk decoded. The caller covers the buffer with chunks
            // (tic-runtime: a tensor's chunks add up to its length).
            unsafe {
                self.stream.alloc::<u8>(len)
            }
        }
        .map_err(GpuError::driver("allocating an output buffer"))?;
        let addr = {
            let (ptr, _sync) = buf.device_ptr(&self.stream);
            ptr
        };
        if let (Some(byte), true) = (self.poison, len > 0) {
            #[allow(unsafe_code)]
            // SAFETY: `addr` is the start of the live `len`-byte allocation
            // just made on this stream; the memset is ordered on the same
            // stream before any kernel that writes it.
            unsafe {
                cudarc::driver::result::memset_d8_async(addr, byte, len, self.stream.cu_stream())
            }
            .map_err(GpuError::driver("poisoning an output buffer"))?;
        }
        self.outputs.push(buf);
        self.out_addrs.push(addr);
        Ok(OutputId(self.outputs.len() - 1))
    }

    fn job<'c>(&self, chunk: &ChunkInput<'c>) -> Result<ChunkJob<'c>, GpuError> {
        let bad = |what: String| crate::plan::PlanError::BadChunk {
            tag: chunk.tag,
            what,
        };
        let out_len = self
            .outputs
            .get(chunk.output.0)
            .map(|o| o.len() as u64)
            .ok_or_else(|| bad("unknown output buffer".into()))?;
        if chunk
            .out_offset
            .checked_add(chunk.orig_len)
            .is_none_or(|end| end > out_len)
        {
            return Err(bad(format!(
                "{} bytes at offset {} do not fit an output of {out_len} bytes",
                chunk.orig_len, chunk.out_offset
            ))
            .into());
        }
        Ok(ChunkJob {
            tag: chunk.tag,
            codec: chunk.codec,
            elem_size: chunk.elem_size,
            orig_len: chunk.orig_len,
            data_len: chunk.data_len,
            staged_len: chunk.staged_len,
            keystream: chunk.keystream.clone(),
            out_ptr: self.out_addrs[chunk.output.0] + chunk.out_offset,
        })
    }

    /// Starts the next batch with as many of `chunks` as fit (at least one;
    /// none when `chunks` is empty) and returns their staging regions, in
    /// order, each `staged_len` bytes of pinned host memory. The caller
    /// writes each chunk's bytes into its region (from several threads if
    /// it likes), checks them, and then calls [`submit`](Self::submit), or
    /// drops the decoder to abandon the load.
    ///
    /// Waits until the slot is free, and returns an error found in the
    /// batch it held before.
    pub fn stage(&mut self, chunks: &[ChunkInput<'_>]) -> Result<Vec<&mut [u8]>, GpuError> {
        self.usable()?;
        if !self.builder.is_empty() {
            return Err(self.fail(GpuError::Misuse(
                "Decoder::stage was called again before the staged batch was submitted",
            )));
        }
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        let placed = match self.plan(chunks) {
            Ok(placed) => placed,
            Err(e) => return Err(self.fail(e)),
        };
        let Decoder {
            slots,
            cur,
            builder,
            failed,
            ..
        } = self;
        let mut rest = match slots[*cur].staging.as_mut_slice() {
            Ok(staging) => staging,
            Err(e) => {
                *failed = true;
                let _ = builder.finish();
                return Err(GpuError::driver("writing the staging buffer")(e));
            }
        };
        let mut at = 0;
        let mut regions = Vec::with_capacity(placed.len());
        for (off, len) in placed {
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(off - at);
            let (region, tail) = tail.split_at_mut(len);
            regions.push(region);
            rest = tail;
            at = off + len;
        }
        Ok(regions)
    }

    /// Waits for the current slot and plans as many of `chunks` as fit
    /// into its batch: each one's offset and staged length.
    fn plan(&mut self, chunks: &[ChunkInput<'_>]) -> Result<Vec<(usize, usize)>, GpuError> {
        self.reclaim(self.cur)?;
        let mut placed = Vec::new();
        for c in chunks {
            let job = self.job(c)?;
            match self.builder.try_add(&job)? {
                Some(off) => placed.push((off as usize, c.staged_len as usize)),
                None => break,
            }
        }
        Ok(placed)
    }

    /// Records a failure: the batch being planned is thrown away and the
    /// decoder refuses further work.
    fn fail(&mut self, e: GpuError) -> GpuError {
        self.failed = true;
        let _ = self.builder.finish();
        e
    }

    fn usable(&self) -> Result<(), GpuError> {
        match self.failed {
            true => Err(GpuError::Misuse(
                "the decoder was used after an error; its outputs are not handed out",
            )),
            false => Ok(()),
        }
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

    /// Sends the batch [`stage`](Self::stage)d to the GPU (one copy, then
    /// the kernels) and moves on to the next slot.
    pub fn submit(&mut self) -> Result<(), GpuError> {
        self.usable()?;
        if self.builder.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish();
        self.submit_batch(batch).map_err(|e| self.fail(e))
    }

    fn submit_batch(&mut self, batch: Batch) -> Result<(), GpuError> {
        let total = batch.total_len as usize;
        let cur = self.cur;
        let host = self.slots[cur]
            .staging
            .as_mut_slice()
            .map_err(GpuError::driver("writing the staging buffer"))?;
        host[batch.tables_off as usize..total].copy_from_slice(&batch.tables);
        let Slot {
            staging,
            dev,
            copied,
            done,
            ..
        } = &mut self.slots[cur];
        // Copy stream: after the slot's previous kernels, one transfer.
        self.copy
            .wait(done)
            .map_err(GpuError::driver("ordering the batch copy"))?;
        let host = staging
            .as_slice()
            .map_err(GpuError::driver("reading the staging buffer"))?;
        self.copy
            .memcpy_htod(&host[..total], &mut dev.slice_mut(..total))
            .map_err(GpuError::driver("copying a batch to the GPU"))?;
        copied
            .record(&self.copy)
            .map_err(GpuError::driver("recording the batch copy"))?;
        self.stream
            .wait(copied)
            .map_err(GpuError::driver("ordering the decode after the copy"))?;
        self.launch_batch(cur, &batch)?;
        let Slot {
            status,
            dev,
            done,
            in_flight,
            ..
        } = &mut self.slots[cur];
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
        self.cur = (cur + 1) % self.slots.len();
        Ok(())
    }

    /// Queues a batch's planned launches on the decode stream.
    fn launch_batch(&self, slot: usize, batch: &Batch) -> Result<(), GpuError> {
        let Slot { dev, luts, .. } = &self.slots[slot];
        let base = {
            let (ptr, _sync) = dev.device_ptr(&self.stream);
            ptr
        };
        let lut_base = {
            let (ptr, _sync) = luts.device_ptr(&self.stream);
            ptr
        };
        for launch in &batch.launches {
            launch_one(self.gpu, &self.stream, launch, base, lut_base)?;
        }
        Ok(())
    }

    /// A benchmark aid: runs the kernels of the batch [`stage`](Self::stage)d
    /// `runs` times on the device, with the batch already there, and
    /// returns each run's milliseconds by CUDA events on the decode stream.
    /// The batch's bytes are restored from a device copy before each run,
    /// outside the timed span (decryption works in place). Afterwards the
    /// outputs hold the decoded chunks, as after [`submit`](Self::submit);
    /// a decode error is returned as from [`finish`](Self::finish).
    pub fn time_staged(&mut self, runs: usize) -> Result<Vec<f32>, GpuError> {
        self.usable()?;
        if self.builder.is_empty() || runs == 0 {
            return Ok(Vec::new());
        }
        let batch = self.builder.finish();
        self.time_batch(batch, runs).map_err(|e| self.fail(e))
    }

    fn time_batch(&mut self, batch: Batch, runs: usize) -> Result<Vec<f32>, GpuError> {
        let total = batch.total_len as usize;
        let cur = self.cur;
        self.reclaim(cur)?;
        let timing = || {
            self.gpu
                .ctx
                .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(GpuError::driver("creating a timing event"))
        };
        let (start, end) = (timing()?, timing()?);
        let pristine = {
            let Slot { staging, dev, .. } = &mut self.slots[cur];
            let host = staging
                .as_mut_slice()
                .map_err(GpuError::driver("writing the staging buffer"))?;
            host[batch.tables_off as usize..total].copy_from_slice(&batch.tables);
            self.stream
                .memcpy_htod(&host[..total], &mut dev.slice_mut(..total))
                .map_err(GpuError::driver("copying a batch to the GPU"))?;
            self.stream
                .clone_dtod(&dev.slice(..total))
                .map_err(GpuError::driver("copying a batch on the GPU"))?
        };
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let dev = &mut self.slots[cur].dev;
            self.stream
                .memcpy_dtod(&pristine, &mut dev.slice_mut(..total))
                .map_err(GpuError::driver("restoring a batch on the GPU"))?;
            start
                .record(&self.stream)
                .map_err(GpuError::driver("recording a timing event"))?;
            self.launch_batch(cur, &batch)?;
            end.record(&self.stream)
                .map_err(GpuError::driver("recording a timing event"))?;
            times.push(
                start
                    .elapsed_ms(&end)
                    .map_err(GpuError::driver("reading a timing event"))?,
            );
        }
        let status = self
            .stream
            .clone_dtoh(
                &self.slots[cur]
                    .dev
                    .slice(batch.status_off() as usize..)
                    .slice(..4 * batch.tags.len()),
            )
            .map_err(GpuError::driver("reading back the decode status"))?;
        match batch.first_error(&status) {
            Some((tag, error)) => Err(GpuError::Stream { tag, error }),
            None => Ok(times),
        }
    }

    /// Submits what is staged, waits for every batch, checks their status
    /// and returns the outputs in allocation order. On error the outputs
    /// are dropped: nothing from a failed decode is handed out.
    pub fn finish(mut self) -> Result<Vec<CudaSlice<u8>>, GpuError> {
        self.submit()?;
        let mut first = Ok(());
        for k in 0..self.slots.len() {
            let r = self.reclaim(k);
            if first.is_ok() {
                first = r;
            }
        }
        first?;
        self.usable()?;
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
        // them. Neither is write-combined: the host reads the staging
        // buffer back (chunk digests and tags are checked where the chunk
        // was read to) and reads the status words.
        let (mut staging, mut status) = unsafe {
            (
                ctx.alloc_pinned_with_flags::<u8>(staging_len, 0)
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
