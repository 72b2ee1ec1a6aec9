//! Prints samples of a weights file in the device-check text format
//! ([`diffctl_runtime::hex`]): the host side of `.ci/device-check.sh`.
//!
//! ```text
//! cargo run -p diffctl-runtime --release --example hex_samples -- WEIGHTS SEEDS N
//! ```
//!
//! `SEEDS` is a comma-separated list of `u64`; for each seed, in order, samples
//! `0..N` are drawn with the header's sampler (steps, integrator, grid) and the
//! file's built-in target, all `N` in one lockstep batch, and printed one line
//! each. The Cortex-M firmware and the WASM module draw the same samples in
//! other batch sizes and must print the same bytes.

use std::io::Write;
use std::process::ExitCode;

use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, seeds, n] = args.as_slice() else {
        return Err("usage: hex_samples WEIGHTS SEEDS N  (SEEDS comma-separated)".into());
    };
    let seeds = seeds
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad seed {s:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let n: usize = n.parse().map_err(|_| format!("bad sample count {n:?}"))?;

    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
    // The network reads the file's bytes in place (no parameter buffer).
    let sampler = model.sampler().map_err(|e| format!("{path}: {e}"))?;

    let d = model.header.shape.d as usize;
    let mut xs = vec![0.0f32; n * d];
    let mut paths = vec![PathState::default(); n];
    let mut work = vec![0.0f32; sampler.work_len(n)];
    let mut out = String::new();
    for &seed in &seeds {
        sampler
            .sample(seed, 0, &mut xs, &mut paths, &mut work)
            .map_err(|e| e.to_string())?;
        for (i, x) in xs.chunks_exact(d).enumerate() {
            write_sample_line(&mut out, seed, i as u64, x).map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    match run() {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hex_samples: {e}");
            ExitCode::FAILURE
        }
    }
}
