//! Opens a signed artifact with the runtime API, checks every chunk, and
//! reads every tensor into host memory, printing its digest.
//!
//!   cargo run --release -p tic-examples --example read_tensors -- MODEL.tic SIGNING.pub [IDENTITY]

use anyhow::Context;
use tic_runtime::{Artifact, OpenOptions, Trust};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (artifact, key) = match args.as_slice() {
        [a, k] | [a, k, _] => (a, k),
        _ => anyhow::bail!("usage: read_tensors MODEL.tic SIGNING.pub [IDENTITY]"),
    };
    let key = tic_runtime::read_public_key(key.as_ref())?;
    let identities = match args.get(2) {
        Some(p) => tic_runtime::read_identities(p.as_ref())?,
        None => Vec::new(),
    };
    let opts = OpenOptions {
        trust: Trust {
            keys: vec![key],
            allow_unsigned: false,
        },
        identities,
    };
    // The signature is checked here, before anything in the header is used.
    let art = Artifact::open(artifact, &opts).with_context(|| format!("opening {artifact}"))?;
    println!("{}: {:?}", artifact, art.signature());
    for t in art.header().tensors.iter().filter(|t| !t.name.is_empty()) {
        // Each chunk is checked against its signed digest, then decrypted and
        // decoded; the whole tensor is checked against its original digest.
        let bytes = art.read_tensor(&t.name)?;
        let digest = tic_runtime::tic_format::sha256(&bytes);
        println!(
            "{:<56} {:<6} {:<16} {}",
            t.name,
            t.dtype.name(),
            format!("{:?}", t.shape),
            tic_runtime::tic_format::hex(&digest[..8])
        );
    }
    Ok(())
}
