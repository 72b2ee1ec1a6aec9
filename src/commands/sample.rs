//! `diffctl sample FILE --n N --seed S`: samples through the runtime, as CSV,
//! `.npy` or the device-check hex lines.

use std::fmt::Write;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{sample_file, Samples};

use crate::args::{model_target, sample_options, RunArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::{io, npy};

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Weights file.
    pub file: PathBuf,
    /// Number of samples.
    #[arg(long, short = 'n')]
    pub n: usize,
    /// Seed: sample i under seed s is the same on every machine.
    #[arg(long)]
    pub seed: u64,
    /// First sample index (samples first .. first + n are drawn).
    #[arg(long, default_value_t = 0)]
    pub first: u64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format (default: from the --out extension, else csv).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Output file, written atomically (default: standard output).
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Header `x0,x1,...` (and `log_w` = -R_disc when there is a target), one row per sample.
    Csv,
    /// NumPy array of shape (n, d), little-endian f32.
    Npy,
    /// `<seed> <index> <f32 bits in hex>...`, one line per sample (runtime::hex).
    Hex,
}

impl Format {
    fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "npy" => Some(Format::Npy),
            "hex" => Some(Format::Hex),
            _ => None,
        }
    }
}

pub fn run(args: &SampleArgs) -> Result<()> {
    let bytes = io::read(&args.file)?;
    let in_file = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", args.file.display()));
    let model = Model::parse(&bytes).map_err(|e| in_file(&e))?;
    let header = model.header;
    // Check the target before drawing anything.
    let target = model_target(&args.target, &model)?;
    let opts = sample_options(
        args.n,
        args.seed,
        args.first,
        header.shape.d as usize,
        &args.run,
    )?;
    let format = args
        .format
        .or_else(|| args.out.as_deref().and_then(Format::from_path))
        .unwrap_or(Format::Csv);
    if format == Format::Npy && args.out.is_none() && std::io::stdout().is_terminal() {
        return Err(
            "refusing to write binary .npy to a terminal: give --out PATH.npy or redirect".into(),
        );
    }
    let samples = sample_file(&bytes, target.as_deref(), &opts)?;
    let out = match format {
        Format::Csv => csv(&samples).into_bytes(),
        Format::Npy => npy::encode_f32(samples.xs.len() / samples.d, samples.d, &samples.xs),
        Format::Hex => hex(&samples, args.seed).into_bytes(),
    };
    match &args.out {
        Some(path) => io::write_atomic(path, &out),
        None => io::write_stdout(&out),
    }
}

/// CSV with a header row; `log_w = -R_disc`, the log importance weight, when
/// the samples have path costs. Values print as the shortest decimal that
/// reads back to the same `f32` (`f64` for `log_w`).
pub fn csv(samples: &Samples) -> String {
    let d = samples.d;
    let mut s = String::new();
    let names: Vec<String> = (0..d).map(|j| format!("x{j}")).collect();
    s.push_str(&names.join(","));
    if samples.costs.is_some() {
        s.push_str(",log_w");
    }
    s.push('\n');
    for (i, x) in samples.xs.chunks_exact(d).enumerate() {
        for (j, v) in x.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(s, "{v}");
        }
        if let Some(c) = &samples.costs {
            let _ = write!(s, ",{}", -c[i].r_disc);
        }
        s.push('\n');
    }
    s
}

/// The runtime's device-check lines (`diffctl_runtime::hex`).
pub fn hex(samples: &Samples, seed: u64) -> String {
    let mut s = String::new();
    for (i, x) in samples.xs.chunks_exact(samples.d).enumerate() {
        // Writing into a String cannot fail.
        let _ = write_sample_line(&mut s, seed, samples.first + i as u64, x);
    }
    s
}
