//! RISC-V microcontroller firmware (`riscv32imac`: integer multiply, atomics,
//! compressed instructions, no FPU, so all float arithmetic is software):
//! samples the device-check fixtures and prints them over semihosting in the
//! hex line format of `diffctl_runtime::hex`, like `../cortex-m`, so that
//! `.ci/device-check.sh` can compare them byte for byte with the host. Runs
//! on QEMU's `virt` board (`cargo run --release` here).
//!
//! For every fixture (in [`FIXTURES`] order) and every seed of [`SEEDS`], it
//! draws samples `0..N` in batches of [`BATCH`] and writes one line each to
//! the host's stdout. Exit status 0 on success, 1 on any error or panic.

#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use diffctl_runtime::hex::{write_sample_line, LineBuf};
use diffctl_runtime::prelude::*;
use semihosting::io::Write;

/// The weights files, embedded in the image.
const FIXTURES: [&[u8]; 6] = [
    include_bytes!("../../fixtures/gmm_f32.dcw"),
    include_bytes!("../../fixtures/gmm_f16.dcw"),
    include_bytes!("../../fixtures/dw20_f32.dcw"),
    include_bytes!("../../fixtures/dw20_f16.dcw"),
    include_bytes!("../../fixtures/pis_gmm_f32.dcw"),
    include_bytes!("../../fixtures/dds_gmm_f32.dcw"),
];
/// Seeds, in order (`.ci/device-check.sh` passes the same list to the host).
const SEEDS: [u64; 3] = [0, 1, u64::MAX];
/// Samples per seed: indices `0..N` (the first 10 of the golden 100: software
/// floating point under QEMU is slow, and the check must stay fast).
const N: u64 = 10;
/// Paths per lockstep batch (differs from the other programs').
const BATCH: usize = 4;
/// Largest state dimension `d` of the embedded files (read at compile time).
const MAX_D: usize = max_over_fixtures(false);
/// Work buffer floats: the largest `sampler_work_len(BATCH)` of the files.
const MAX_WORK: usize = max_over_fixtures(true);

/// The largest `d` (or, `work`, `sampler_work_len(BATCH)`) over the
/// embedded files' network shapes.
const fn max_over_fixtures(work: bool) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < FIXTURES.len() {
        let Some(shape) = shape_of(FIXTURES[i]) else {
            panic!("an embedded fixture is not a weights file");
        };
        let n = if work {
            shape.sampler_work_len(BATCH)
        } else {
            shape.d as usize
        };
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
}

#[riscv_rt::entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => 0,
        Err(e) => {
            semihosting::eprintln!("riscv: {e}");
            1
        }
    };
    semihosting::process::exit(status)
}

fn run() -> Result<(), diffctl_runtime::Error> {
    let mut stdout = semihosting::io::stdout().map_err(|_| Error::Invalid("no stdout"))?;
    let mut work = [0.0f32; MAX_WORK];
    let mut xs = [0.0f32; BATCH * MAX_D];
    let mut paths: [PathState; BATCH] = Default::default();
    let mut line = LineBuf::<256>::new();
    for bytes in FIXTURES {
        let model = Model::parse(bytes)?;
        let sampler = model.sampler()?;
        let d = model.header.shape.d as usize;
        for seed in SEEDS {
            let mut first = 0;
            while first < N {
                let b = BATCH.min((N - first) as usize);
                let (xs, paths) = (&mut xs[..b * d], &mut paths[..b]);
                sampler.sample(seed, first, xs, paths, &mut work)?;
                for (i, x) in xs.chunks_exact(d).enumerate() {
                    line.clear();
                    write_sample_line(&mut line, seed, first + i as u64, x)
                        .map_err(|_| Error::Invalid("line buffer too small"))?;
                    stdout
                        .write_all(line.as_bytes())
                        .map_err(|_| Error::Invalid("semihosting write failed"))?;
                }
                first += b as u64;
            }
        }
    }
    Ok(())
}
