//! `diffctl eval FILE`: log Z estimates, ESS, moments and mode occupancy,
//! through the runtime.

use std::path::PathBuf;

use clap::Args;
use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{evaluate, resolve_target};

use crate::args::{sample_options, CostArg, RunArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::io;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Weights file.
    pub file: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Number of samples.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    pub n: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Path cost entering the estimates.
    #[arg(long, value_enum, default_value_t = CostArg::Discrete)]
    pub cost: CostArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let bytes = io::read(&args.file)?;
    let header = Model::parse(&bytes)
        .map_err(|e| Error::new(format!("{}: {e}", args.file.display())))?
        .header;
    let given = args.target.spec()?;
    resolve_target(&header, given)?;
    let opts = sample_options(args.n, args.seed, 0, header.shape.d as usize, &args.run)?;
    let report = evaluate(&bytes, given, &opts, args.cost.into())?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::new(format!("report as JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        report.to_string()
    };
    io::write_stdout(text.as_bytes())
}
