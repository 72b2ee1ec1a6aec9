//! `diffctl eval FILE`: log Z estimates, ESS, moments, mode occupancy and the
//! sliced W2 distance to exact target samples, through the runtime; with `--data`,
//! the likelihood bound of MATH.md §7 on held-out samples instead.

use std::path::PathBuf;

use clap::Args;
use diffctl_runtime::prelude::*;
use diffctl_trainer::elbo::{elbo_file, ElboConfig, ElboReport};
use diffctl_trainer::eval::{default_threads, evaluate};
use serde::Serialize;

use crate::args::{check_threads, model_target, sample_options, CostArg, RunArgs, TargetArgs};
use crate::datasets::{check_dim, subset, Purpose, Source};
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
    /// Held-out samples (CSV, .npy or toy:NAME): report the likelihood bound
    /// in nats per dimension instead of sampling.
    #[arg(
        long,
        value_name = "FILE|toy:NAME",
        conflicts_with_all = ["target", "target_config", "dim", "wells", "delta", "sigma", "n", "steps", "integrator", "cost"]
    )]
    pub data: Option<String>,
    /// Points of --data to use (a random subset under --seed; the number
    /// generated for toy:NAME).
    #[arg(long, value_name = "N", requires = "data")]
    pub n_points: Option<usize>,
    /// Strata K of the bound's time integral per point.
    #[arg(long, value_name = "K", requires = "data")]
    pub times: Option<usize>,
}

/// Points of a data file the bound uses by default (all when fewer).
const DEFAULT_POINTS: usize = 10_000;
/// Points generated for toy:NAME by default.
const DEFAULT_TOY_POINTS: usize = 2_000;
/// Most strata per point.
const MAX_TIMES: usize = 1 << 16;

pub fn run(args: &EvalArgs) -> Result<()> {
    let bytes = io::read(&args.file)?;
    let model =
        Model::parse(&bytes).map_err(|e| Error::new(format!("{}: {e}", args.file.display())))?;
    let header = model.header;
    if let Some(data) = &args.data {
        return bound(args, &bytes, &header, data);
    }
    let target = model_target(&args.target, &model)?;
    let opts = sample_options(args.n, args.seed, 0, header.shape.d as usize, &args.run)?;
    let report = evaluate(&bytes, target.as_deref(), &opts, args.cost.into())?;
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

/// `eval --data`: the likelihood bound on held-out samples.
fn bound(args: &EvalArgs, bytes: &[u8], header: &Header, data_arg: &str) -> Result<()> {
    let source = Source::parse(data_arg)?;
    check_threads(args.run.threads)?;
    let times = args.times.unwrap_or(ElboConfig::default().times);
    if times == 0 || times > MAX_TIMES {
        return Err(Error::new(format!(
            "the number of times must be in 1..={MAX_TIMES}"
        )));
    }
    let points = match (&source, args.n_points) {
        (_, Some(0)) => return Err("the number of points must be at least 1".into()),
        (Source::Toy { .. }, n) => n.unwrap_or(DEFAULT_TOY_POINTS),
        (Source::File(_), n) => n.unwrap_or(DEFAULT_POINTS),
    };
    let data = source.load(points, args.seed, Purpose::HeldOut)?;
    check_dim(&data, &source, header.shape.d as usize, &args.file)?;
    let data = subset(&data, points, args.seed)?;
    let cfg = ElboConfig {
        times,
        seed: args.seed,
        threads: args.run.threads.unwrap_or_else(default_threads),
        ..ElboConfig::default()
    };
    let report = elbo_file(bytes, &data, &cfg)
        .map_err(|e| Error::new(format!("{}: {e}", args.file.display())))?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&BoundJson::new(&report, times))
            .map_err(|e| Error::new(format!("report as JSON: {e}")))?;
        s.push('\n');
        s
    } else {
        bound_text(&report, times)
    };
    io::write_stdout(text.as_bytes())
}

/// The bound's report, one line per quantity.
fn bound_text(r: &ElboReport, times: usize) -> String {
    format!(
        "points           {} (d = {}, {times} times per point)\n\
         bound            {:.4} nats per point (mean lower bound on log p_model)\n\
         nats per dim     {:.4}\n\
         std error        {:.4} nats per dim\n",
        r.n, r.d, r.bound, r.nats_per_dim, r.std_error
    )
}

/// `eval --data --json`: the report without the per-point estimates.
#[derive(Serialize)]
struct BoundJson {
    n: usize,
    d: usize,
    times: usize,
    bound: f64,
    nats_per_dim: f64,
    std_error: f64,
}

impl BoundJson {
    fn new(r: &ElboReport, times: usize) -> Self {
        BoundJson {
            n: r.n,
            d: r.d,
            times,
            bound: r.bound,
            nats_per_dim: r.nats_per_dim,
            std_error: r.std_error,
        }
    }
}
