//! Issue 7 (Task 2 of the slides): log Z of DIS, PIS and DDS on `gmm`,
//! `funnel`, `dw20` and `mw50`, median and spread over 5 seeds.
//!
//! `cargo bench --bench task2 [-- --seeds N] [--iterations N] [TARGET ...]`
//!
//! Every run uses one budget (below), trains with the log-variance loss and
//! off-policy exploration, and is evaluated by the runtime on the exported
//! weights (20,000 paths, discrete path cost `R_disc`). Each finished run is
//! appended to `benches/results/task2_runs.csv` at once, and a run already
//! there (same target, sampler, seed and settings) is not repeated, so an
//! interrupted benchmark continues where it stopped. The summary over seeds
//! is written to `benches/results/task2.{md,csv}` after every run. The key
//! does not know the code: after a change to what a model computes, delete
//! the rows it affects (as was done for PIS when the network's time input
//! became `t / T`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

mod common;

use common::{load_runs, save_runs, Spread};
use diffctl_runtime::prelude::*;
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::target::Known;
use diffctl_trainer::train::{train, TrainConfig};

const TARGETS: [&str; 4] = ["gmm", "funnel", "dw20", "mw50"];
const SAMPLERS: [&str; 3] = ["dis", "pis", "dds"];
/// The budget of every run: batch 512, K = 100, 1000 iterations, about 40 s
/// of training each on this 2-core machine.
const BATCH: usize = 512;
const STEPS: usize = 100;
const ITERATIONS: usize = 1000;
/// Exploration: path noise scaled by 2 at the start, on-policy from a
/// quarter of the run on (the trainer's defaults).
const EXPLORE: f32 = 2.0;
const EXPLORE_DECAY: f32 = 0.25;
const EVAL_SAMPLES: usize = 20_000;

const RUNS_HEADER: &str = "target,sampler,seed,iterations,batch,steps,integrator,explore,\
seconds,log_z_lb_err,log_z_is_err,ess,sq_norm_err,sliced_w2,worst_mode_ratio";

fn config(sampler: &str, seed: u64, iterations: usize) -> TrainConfig {
    let base = TrainConfig {
        batch: BATCH,
        steps: STEPS,
        iterations,
        explore: Some(EXPLORE),
        explore_decay: EXPLORE_DECAY,
        eval_every: 0,
        eval_samples: EVAL_SAMPLES,
        checkpoint_every: 0,
        seed,
        ..TrainConfig::default()
    };
    match sampler {
        // PIS: its Brownian reference, which only Euler–Maruyama integrates.
        "pis" => TrainConfig {
            sampler: SamplerKind::Pis,
            sde: Sde::pis_reference(),
            integrator: Integrator::EulerMaruyama,
            ..base
        },
        // DDS as published: the exponential integrator.
        "dds" => TrainConfig {
            sampler: SamplerKind::Dds,
            integrator: Integrator::Exponential,
            ..base
        },
        _ => TrainConfig {
            integrator: Integrator::Exponential,
            ..base
        },
    }
}

/// The settings columns of a run, which identify it in the runs file.
fn run_key(target: &str, sampler: &str, cfg: &TrainConfig) -> String {
    format!(
        "{target},{sampler},{},{},{},{},{:?},{}/{}",
        cfg.seed,
        cfg.iterations,
        cfg.batch,
        cfg.steps,
        cfg.integrator,
        cfg.explore(),
        cfg.explore_decay
    )
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.5}"))
}

fn main() {
    let mut seeds = 5u64;
    let mut iterations = ITERATIONS;
    let mut targets: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()).expect("--seeds N"),
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--iterations N")
            }
            "--bench" => {}
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => panic!("unknown argument {other}; targets are {TARGETS:?}"),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    std::fs::create_dir_all(&dir).expect("results directory");
    let runs_path = dir.join("task2_runs.csv");
    let mut runs = load_runs(&runs_path, RUNS_HEADER);
    for target in &targets {
        for sampler in SAMPLERS {
            for seed in 0..seeds {
                let cfg = config(sampler, seed, iterations);
                let key = run_key(target, sampler, &cfg);
                if runs.iter().any(|r| r.starts_with(&format!("{key},"))) {
                    continue;
                }
                let known = Known::preset(target).expect("known preset");
                let out = train(&cfg, &known, &RunOptions::default(), &mut |_| {})
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
                let r = &out.report;
                let line = format!(
                    "{key},{:.1},{},{},{:.4},{},{},{}",
                    out.seconds,
                    opt(r.log_z_lb_error()),
                    opt(r.log_z_is_error()),
                    r.estimates.ess,
                    opt(r.sq_norm.error()),
                    opt(r.sliced_w2),
                    opt(r.worst_mode_ratio()),
                );
                eprintln!("{line}");
                runs.push(line);
                save_runs(&runs_path, RUNS_HEADER, &runs);
                write_summary(&dir, &runs);
            }
        }
    }
    write_summary(&dir, &runs);
    println!("{}", summary(&runs).0);
}

fn write_summary(dir: &Path, runs: &[String]) {
    let (md, csv) = summary(runs);
    std::fs::write(dir.join("task2.md"), md).expect("write markdown");
    std::fs::write(dir.join("task2.csv"), csv).expect("write csv");
}

/// "median [min, max]" of a column, or "-" when no run has it; and its CSV cells.
fn spread(values: &[Option<f64>], digits: usize) -> (String, String) {
    match Spread::of(values.iter().flatten().copied()) {
        Some(s) => (s.text(digits, true), s.csv()),
        None => ("-".into(), ",,".into()),
    }
}

/// The per-(target, sampler) table over seeds, as Markdown and CSV.
fn summary(runs: &[String]) -> (String, String) {
    // (target order, sampler order) -> rows of fields
    let mut groups: BTreeMap<(usize, usize, String), Vec<Vec<String>>> = BTreeMap::new();
    for line in runs {
        let f: Vec<String> = line.split(',').map(str::to_string).collect();
        let t = TARGETS.iter().position(|t| *t == f[0]).unwrap_or(99);
        let s = SAMPLERS.iter().position(|s| *s == f[1]).unwrap_or(99);
        // Group by everything but the seed.
        let settings = format!("{},{},{},{},{}", f[3], f[4], f[5], f[6], f[7]);
        groups.entry((t, s, settings)).or_default().push(f);
    }
    let mut md = String::from(
        "| target | sampler | seeds | iterations | batch | K | integrator | wall time (s) | \
         log Z_lb error | log Z_is error | ESS | E\\|x\\|² error | sliced W2 | \
         smallest mode share / expected |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut csv = String::from(
        "target,sampler,seeds,iterations,batch,steps,integrator,explore,seconds_median,\
         lb_err_median,lb_err_min,lb_err_max,is_err_median,is_err_min,is_err_max,\
         ess_median,ess_min,ess_max,sq_norm_err_median,sq_norm_err_min,sq_norm_err_max,\
         sliced_w2_median,sliced_w2_min,sliced_w2_max,\
         worst_mode_median,worst_mode_min,worst_mode_max\n",
    );
    for rows in groups.values() {
        let col = |i: usize| -> Vec<Option<f64>> {
            rows.iter().map(|r| r[i].parse::<f64>().ok()).collect()
        };
        let secs = Spread::of(col(8).into_iter().flatten()).map_or(f64::NAN, |s| s.median);
        let (lb, lb_csv) = spread(&col(9), 3);
        let (is, is_csv) = spread(&col(10), 3);
        let (ess, ess_csv) = spread(&col(11), 3);
        let (sq, sq_csv) = spread(&col(12), 2);
        let (w2, w2_csv) = spread(&col(13), 3);
        let (modes, modes_csv) = spread(&col(14), 2);
        let f = &rows[0];
        let unsigned = |s: String| s.replace('+', "");
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {secs:.0} | {lb} | {is} | {} | {sq} | {} | {} |",
            f[0],
            f[1].to_uppercase(),
            rows.len(),
            f[3],
            f[4],
            f[5],
            f[6],
            unsigned(ess),
            unsigned(w2),
            unsigned(modes),
        )
        .unwrap();
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{secs:.1},{lb_csv},{is_csv},{ess_csv},{sq_csv},{w2_csv},{modes_csv}",
            f[0],
            f[1],
            rows.len(),
            f[3],
            f[4],
            f[5],
            f[6],
            f[7],
        )
        .unwrap();
    }
    (md, csv)
}
