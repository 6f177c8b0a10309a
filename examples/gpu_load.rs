//! Loads every tensor of an artifact onto a GPU (or the CPU when no GPU can
//! be used) and prints each one's name, dtype, shape, where it landed and
//! the SHA-256 of the loaded bytes.
//!
//! ```text
//! cargo run -p tic-examples --example gpu_load -- model.tic --trusted-key signer.pub
//! cargo run -p tic-examples --example gpu_load -- model.tic --allow-unsigned --device cuda:1
//! ```
//!
//! Options: `--trusted-key KEY.pub` (repeatable; a file or a directory of
//! *.pub), `--allow-unsigned`, `--identity FILE` (encrypted artifacts),
//! `--device cpu|cuda|cuda:N` (default cuda:0), `--no-verify` (skip the
//! copy-back digest check of GPU tensors; the SHA-256 printed is still
//! computed from the loaded bytes).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use tic_runtime::tic_format::hex;
use tic_runtime::{
    probe_cuda, read_identities, read_trusted_keys, Artifact, Device, LoadOptions, OpenOptions,
    Trust,
};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut keys = Vec::new();
    let mut allow_unsigned = false;
    let mut identities = Vec::new();
    let mut device = Device::Cuda(0);
    let mut verify = true;
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "--trusted-key" => keys.push(PathBuf::from(value("--trusted-key")?)),
            "--allow-unsigned" => allow_unsigned = true,
            "--identity" => identities.extend(read_identities(value("--identity")?.as_ref())?),
            "--device" => device = value("--device")?.parse().map_err(anyhow::Error::msg)?,
            "--no-verify" => verify = false,
            s if s.starts_with("--") => bail!("unknown option {s}"),
            _ if path.is_none() => path = Some(PathBuf::from(a)),
            _ => bail!("one artifact at a time"),
        }
    }
    let Some(path) = path else {
        bail!("usage: gpu_load ARTIFACT [--trusted-key KEY.pub]... [--allow-unsigned] [--identity FILE] [--device cpu|cuda:N] [--no-verify]");
    };

    let opts = OpenOptions {
        trust: Trust {
            keys: read_trusted_keys(&keys)?,
            allow_unsigned,
        },
        identities,
    };
    let art = Artifact::open(&path, &opts)?;
    if let Device::Cuda(n) = device {
        // The runtime logs its fallback through `tracing`; say it here too,
        // since this example installs no subscriber.
        match probe_cuda(n) {
            Ok(gpu) => println!("device cuda:{n}: {gpu}"),
            Err(why) => println!("device cuda:{n} unavailable ({why}); loading on the CPU"),
        }
    }
    let mut load = LoadOptions::new(device);
    load.verify = verify;
    let tensors = art.load_with(None, &load)?;
    for t in &tensors {
        println!(
            "{}\t{}\t{:?}\t{}\t{}",
            t.name,
            t.dtype,
            t.shape,
            t.device(),
            hex(&t.sha256()?)
        );
    }
    eprintln!("{} tensors loaded from {}", tensors.len(), path.display());
    Ok(())
}
