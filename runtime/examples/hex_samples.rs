//! Prints samples of a weights file in the device-check text format
//! ([`diffctl_runtime::hex`]): the host side of `.ci/device-check.sh`.
//!
//! ```text
//! cargo run -p diffctl-runtime --release --example hex_samples -- WEIGHTS SEEDS N [BATCH [--time-table]]
//! ```
//!
//! `SEEDS` is a comma-separated list of `u64`; for each seed, in order, samples
//! `0..N` are drawn with the header's sampler (steps, integrator, grid) and the
//! file's built-in target, all `N` in one lockstep batch (or batches of `BATCH`, optionally with the
//! time branch tabulated: `--time-table`), and printed one line
//! each. The Cortex-M firmware and the WASM module draw the same samples in
//! other batch sizes and must print the same bytes.

use std::io::Write;
use std::process::ExitCode;

use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, seeds, n, batch, tabulate) = match args.as_slice() {
        [path, seeds, n] => (path, seeds, n, None, false),
        [path, seeds, n, batch] => (path, seeds, n, Some(batch), false),
        [path, seeds, n, batch, flag] if flag == "--time-table" => {
            (path, seeds, n, Some(batch), true)
        }
        _ => return Err(
            "usage: hex_samples WEIGHTS SEEDS N [BATCH [--time-table]]  (SEEDS comma-separated)"
                .into(),
        ),
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
    let batch = match batch {
        Some(b) => b
            .parse::<usize>()
            .ok()
            .filter(|&b| b > 0)
            .ok_or_else(|| format!("bad batch size {b:?}"))?,
        None => n.max(1),
    };

    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let model = Model::parse(&bytes).map_err(|e| format!("{path}: {e}"))?;
    // The network reads the file's bytes in place (no parameter buffer).
    let mut sampler = model.sampler().map_err(|e| format!("{path}: {e}"))?;
    let shape = model.header.shape;
    let mut table = vec![
        0.0f32;
        if tabulate {
            shape.time_table_len(sampler.steps)
        } else {
            0
        }
    ];
    if tabulate {
        sampler.control.time_table = Some(sampler.control.tabulate(
            sampler.grid,
            sampler.steps,
            &mut table,
        )?);
    }

    let d = shape.d as usize;
    let mut xs = vec![0.0f32; batch * d];
    let mut paths = vec![PathState::default(); batch];
    let mut work = vec![0.0f32; sampler.work_len(batch)];
    let mut out = String::new();
    for &seed in &seeds {
        let mut first = 0;
        while first < n {
            let m = batch.min(n - first);
            let (xs, paths) = (&mut xs[..m * d], &mut paths[..m]);
            sampler
                .sample(seed, first as u64, xs, paths, &mut work)
                .map_err(|e| e.to_string())?;
            for (i, x) in xs.chunks_exact(d).enumerate() {
                write_sample_line(&mut out, seed, (first + i) as u64, x)
                    .map_err(|e| e.to_string())?;
            }
            first += m;
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
