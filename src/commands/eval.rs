//! `diffctl eval FILE`: log Z estimates, ESS, moments, mode occupancy and the
//! sliced W2 distance to exact target samples, through the runtime; with `--data`,
//! the likelihood bound of MATH.md §7 on held-out samples instead.

use std::path::PathBuf;

use clap::Args;
use diffctl_runtime::prelude::*;
use diffctl_trainer::elbo::{elbo_file, ElboConfig, ElboReport};
use diffctl_trainer::eval::{report, sample_file};
use diffctl_trainer::parallel::default_threads;
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
    #[arg(long, short = 'n', value_name = "N", default_value_t = 10_000)]
    pub n: usize,
    /// Seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Path cost entering the estimates.
    #[arg(long, value_enum, value_name = "NAME", default_value_t = CostArg::Discrete)]
    pub cost: CostArg,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Held-out samples (CSV, .npy or toy:NAME): report the negative
    /// log-likelihood bound in nats instead of sampling.
    #[arg(
        long,
        value_name = "FILE|toy:NAME",
        conflicts_with_all = ["target", "target_config", "dim", "wells", "delta", "sigma", "n", "steps", "integrator", "cost"]
    )]
    pub data: Option<String>,
    /// Points of --data to use, a random subset under --seed (the number
    /// generated for toy:NAME) [default: 10000 of a file, 2000 of toy:NAME].
    #[arg(long, value_name = "N", requires = "data")]
    pub n_points: Option<usize>,
    /// Strata K of the bound's time integral per point [default: 64].
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
    let Some(target) = model_target(&args.target, &model)? else {
        return Err(Error::new(match header.target {
            Some(spec) => format!(
                "{}: the model's target, {spec}, is defined by a data set: give its config \
                 with --target-config FILE",
                args.file.display()
            ),
            None => format!(
                "no target: {} names none; give --target NAME ({}) or --target-config FILE to \
                 evaluate against a target, or --data FILE|toy:NAME for the likelihood bound on data",
                args.file.display(),
                TargetSpec::PRESETS.join(", ")
            ),
        }));
    };
    let opts = sample_options(args.n, args.seed, 0, header.shape.d as usize, &args.run)?;
    let samples = sample_file(&bytes, Some(&*target), &opts)?;
    let report = report(&samples, Some(&*target), args.cost.into());
    let has_cost = samples.costs.is_some();
    let text = if args.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| Error::new(format!("report as JSON: {e}")))?;
        if let Some(m) = v.as_object_mut() {
            m.insert("path_cost".into(), has_cost.into());
            if !has_cost {
                m.insert("estimates".into(), serde_json::Value::Null);
            }
        }
        let mut s = serde_json::to_string_pretty(&v)
            .map_err(|e| Error::new(format!("report as JSON: {e}")))?;
        s.push('\n');
        s
    } else if has_cost {
        report.to_string()
    } else {
        without_path_cost(&report.to_string(), report.n, report.d)
    };
    io::write_stdout(text.as_bytes())
}

/// The report of samples without path costs (the probability-flow ODE):
/// the log Z estimates and ESS, which need them, give way to one line that
/// says why; moments, modes and sliced W2 stay.
fn without_path_cost(text: &str, n: usize, d: usize) -> String {
    let mut out = format!(
        "samples          {n} (d = {d}; probability-flow ODE: deterministic after X_0, so no \
         path cost, no log Z estimate and no ESS; moments, modes and sliced W2 below)\n"
    );
    for line in text.lines() {
        let skip = [
            "samples ",
            "log Z_is ",
            "log Z_lb ",
            "ESS ",
            "Pareto k-hat ",
        ]
        .iter()
        .any(|p| line.starts_with(p));
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
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

/// The bound's report, one line per quantity, in one sign convention: the
/// negative log-likelihood (NLL) bound, in nats, lower is better.
fn bound_text(r: &ElboReport, times: usize) -> String {
    format!(
        "points           {} (d = {}, {times} times per point)\n\
         NLL per point    {:.4} nats (upper bound on the mean of -log p_model; lower is better)\n\
         NLL per dim      {:.4} nats (the same divided by d)\n\
         std error        {:.4} nats per dim\n",
        r.n, r.d, -r.bound, r.nats_per_dim, r.std_error
    )
}

/// `eval --data --json`: the report without the per-point estimates, in
/// the text's sign convention (negative log-likelihood bounds, nats).
#[derive(Serialize)]
struct BoundJson {
    n: usize,
    d: usize,
    times: usize,
    nll_per_point: f64,
    nll_per_dim: f64,
    std_error: f64,
}

impl BoundJson {
    fn new(r: &ElboReport, times: usize) -> Self {
        BoundJson {
            n: r.n,
            d: r.d,
            times,
            nll_per_point: -r.bound,
            nll_per_dim: r.nats_per_dim,
            std_error: r.std_error,
        }
    }
}
