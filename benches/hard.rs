//! Issue 15's benchmark: the hard rows, five seeds each, beside the
//! published numbers.
//!
//! `cargo bench --bench hard [-- --seeds N] [ROW ...]` (rows: gmm25,
//! manywell32, funnel, dw20-dis, mw50-dis; default all).
//!
//! A run is exactly the user's command, timed:
//!
//! ```text
//! diffctl train --config benches/<row>.toml --seed S -o target/hard/<row>_s<S>.dcw
//! ```
//!
//! and is then evaluated here through the runtime (`eval::sample_file`, the
//! code behind `diffctl eval`) on 100,000 paths, sample seed `S`, with the
//! discrete path cost `R_disc`. Each finished run is appended at once to
//! `benches/results/hard_runs.csv`, keyed by row, seed and a hash of the
//! config file's text: an interrupted benchmark continues where it stopped,
//! and editing a config re-runs its row. The summary over seeds (median
//! [min, max]) and whether each of the issue's aims is met by the median are
//! written to `benches/results/hard.md` and `hard.csv` after every run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod common;

use common::{fnv, load_runs, opt, parse_args, save_runs, train_and_evaluate, Spread};
use diffctl_runtime::target::manywell::POSITIVE_SHARE;
use diffctl_trainer::eval::{CostForm, Samples};

/// Paths of every evaluation.
const EVAL_PATHS: usize = 100_000;

/// One row of the table: its config and what the literature and the issue say.
struct Row {
    name: &'static str,
    /// Sendera et al. 2024, Table 1 (100-step samplers, GPU, mean of 5 runs):
    /// plain lower-bound error / importance-weighted error.
    published: &'static str,
    aim: &'static str,
}

const ROWS: [Row; 5] = [
    Row {
        name: "gmm25",
        published: "DIS 1.125 / 0.986; best 0.206 / 0.011",
        aim: "\\|IS\\| ≤ 0.01, ESS ≥ 0.8, every mode ≥ 0.8 of its share",
    },
    Row {
        name: "manywell32",
        published: "DIS 10.52 / 3.05; DDS 7.36 / 0.23; best 3.85 (lb) / 0.02",
        aim: "\\|IS\\| ≤ 0.05, \\|lb\\| ≤ 1, well shares raw ±0.02, weighted ±0.01",
    },
    Row {
        name: "funnel",
        published: "DIS 0.839 / 0.093; best 0.424 (lb) / 0.051",
        aim: "\\|IS\\| ≤ 0.05, \\|lb\\| ≤ 0.3, weighted E\\|x\\|² within 10 % of 819",
    },
    Row {
        name: "dw20-dis",
        published: "-",
        aim: "\\|lb\\| ≤ 0.5 at DDS's budget (1000 iterations)",
    },
    Row {
        name: "mw50-dis",
        published: "-",
        aim: "\\|lb\\| ≤ 0.5 at DDS's budget (1000 iterations)",
    },
];

const RUNS_HEADER: &str = "row,seed,config_hash,train_seconds,log_z_is_err,log_z_is_se,\
log_z_lb_err,ess,pareto_k,sq_raw,sq_weighted,sq_true,worst_mode_ratio,well_dev_raw,well_dev_weighted";

/// Largest deviation from the truth, over manywell32's 16 wells, of the
/// share of samples with `x_{2i} > 0`: raw and self-normalised
/// importance-weighted (weights `exp(-R_disc)`).
fn well_deviations(samples: &Samples) -> (f64, f64) {
    let d = samples.d;
    let costs = samples.costs.as_ref().expect("evaluated with a target");
    let log_w: Vec<f64> = costs.iter().map(|c| -CostForm::Discrete.of(c)).collect();
    let top = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = log_w.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = w.iter().sum();
    let n = w.len() as f64;
    let (mut raw, mut weighted) = (0.0f64, 0.0f64);
    for well in 0..d / 2 {
        let (mut count, mut mass) = (0.0f64, 0.0f64);
        for (x, wi) in samples.xs.chunks_exact(d).zip(&w) {
            if x[2 * well] > 0.0 {
                count += 1.0;
                mass += wi;
            }
        }
        raw = raw.max((count / n - POSITIVE_SHARE).abs());
        weighted = weighted.max((mass / total - POSITIVE_SHARE).abs());
    }
    (raw, weighted)
}

/// Trains one run with the `diffctl` command and evaluates it: one line of the runs file.
fn run(row: &Row, seed: u64, config: &Path, key: &str, out_dir: &Path) -> String {
    let weights: PathBuf = out_dir.join(format!("{}_s{seed}.dcw", row.name));
    let (train_seconds, samples, r) = train_and_evaluate(config, seed, &[], &weights, EVAL_PATHS);
    let wells = (row.name == "manywell32").then(|| well_deviations(&samples));
    let e = &r.estimates;
    format!(
        "{key},{train_seconds:.1},{},{:.5},{},{:.5},{:.4},{:.5},{},{},{},{},{}",
        opt(r.log_z_is_error()),
        e.log_z_is_se,
        opt(r.log_z_lb_error()),
        e.ess,
        e.pareto_k,
        r.sq_norm.estimate,
        opt(r.sq_norm.weighted),
        opt(r.sq_norm.truth),
        opt(r.worst_mode_ratio()),
        opt(wells.map(|w| w.0)),
        opt(wells.map(|w| w.1)),
    )
}

fn main() {
    let (seeds, chosen) = parse_args(&ROWS.iter().map(|r| r.name).collect::<Vec<_>>());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("benches/results");
    let out_dir = root.join("target/hard");
    std::fs::create_dir_all(&dir).expect("results directory");
    std::fs::create_dir_all(&out_dir).expect("weights directory");
    let runs_path = dir.join("hard_runs.csv");
    let mut runs = load_runs(&runs_path, RUNS_HEADER);
    for row in ROWS
        .iter()
        .filter(|r| chosen.is_empty() || chosen.iter().any(|c| c == r.name))
    {
        let config = root.join(format!("benches/{}.toml", row.name));
        let text = std::fs::read_to_string(&config).expect("read the row's config");
        let hash = fnv(&text);
        for seed in 0..seeds {
            let key = format!("{},{seed},{hash}", row.name);
            if runs.iter().any(|r| r.starts_with(&format!("{key},"))) {
                continue;
            }
            let line = run(row, seed, &config, &key, &out_dir);
            eprintln!("{line}");
            runs.push(line);
            save_runs(&runs_path, RUNS_HEADER, &runs);
            write_summary(root, &dir, &runs);
        }
    }
    write_summary(root, &dir, &runs);
    println!("{}", summary(root, &runs).0);
}

fn write_summary(root: &Path, dir: &Path, runs: &[String]) {
    let (md, csv) = summary(root, runs);
    std::fs::write(dir.join("hard.md"), md).expect("write markdown");
    std::fs::write(dir.join("hard.csv"), csv).expect("write csv");
}

/// One column over a row's runs: its median, "median [min, max]" and CSV cells.
struct Column {
    median: Option<f64>,
    text: String,
    csv: String,
}

fn column(rows: &[Vec<String>], i: usize, digits: usize, signed: bool) -> Column {
    match Spread::of(rows.iter().filter_map(|r| r[i].parse().ok())) {
        Some(s) => Column {
            median: Some(s.median),
            text: s.text(digits, signed),
            csv: s.csv(),
        },
        None => Column {
            median: None,
            text: "-".into(),
            csv: ",,".into(),
        },
    }
}

/// Which of a row's aims its medians miss (empty: all met).
fn missed(row: &str, c: &BTreeMap<&str, Option<f64>>) -> Vec<&'static str> {
    let get = |k: &str| c[k].unwrap_or(f64::NAN);
    let abs_le = |k: &str, bound: f64| get(k).abs() <= bound;
    let checks: Vec<(&'static str, bool)> = match row {
        "gmm25" => vec![
            ("IS", abs_le("is", 0.01)),
            ("ESS", get("ess") >= 0.8),
            ("modes", get("modes") >= 0.8),
        ],
        "manywell32" => vec![
            ("IS", abs_le("is", 0.05)),
            ("lb", abs_le("lb", 1.0)),
            ("raw shares", get("wells_raw") <= 0.02),
            ("weighted shares", get("wells_weighted") <= 0.01),
        ],
        "funnel" => vec![
            ("IS", abs_le("is", 0.05)),
            ("lb", abs_le("lb", 0.3)),
            (
                "weighted E|x|²",
                (get("sq_weighted") / get("sq_true") - 1.0).abs() <= 0.1,
            ),
        ],
        _ => vec![("lb", abs_le("lb", 0.5))],
    };
    checks
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect()
}

/// The per-row table over seeds (runs of the current config only), as Markdown and CSV.
fn summary(root: &Path, runs: &[String]) -> (String, String) {
    let mut md = String::from(
        "| row | seeds | train wall (s) | log Z_is error | log Z_lb error | ESS | Pareto k̂ | \
         E\\|x\\|² raw / weighted (true) | smallest mode share / expected | \
         largest well-share error raw / weighted | aims missed by the median | \
         published lb / IS error |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut csv = String::from(
        "row,seeds,train_seconds_median,train_seconds_min,train_seconds_max,\
         is_err_median,is_err_min,is_err_max,lb_err_median,lb_err_min,lb_err_max,\
         ess_median,ess_min,ess_max,pareto_k_median,pareto_k_min,pareto_k_max,\
         sq_raw_median,sq_raw_min,sq_raw_max,sq_weighted_median,sq_weighted_min,sq_weighted_max,\
         worst_mode_median,worst_mode_min,worst_mode_max,\
         well_raw_median,well_raw_min,well_raw_max,\
         well_weighted_median,well_weighted_min,well_weighted_max,aims_missed\n",
    );
    let mut aims = String::from("\nAims (issue 15, on the median over seeds):\n\n");
    for row in &ROWS {
        let Ok(text) = std::fs::read_to_string(root.join(format!("benches/{}.toml", row.name)))
        else {
            continue;
        };
        let hash = fnv(&text);
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter(|f| f[0] == row.name && f[2] == hash)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let secs = column(&rows, 3, 0, false);
        let is = column(&rows, 4, 3, true);
        let lb = column(&rows, 6, 3, true);
        let ess = column(&rows, 7, 3, false);
        let k = column(&rows, 8, 2, false);
        let sq_raw = column(&rows, 9, 1, false);
        let sq_w = column(&rows, 10, 1, false);
        let sq_true = rows[0][11].parse::<f64>().ok();
        let modes = column(&rows, 12, 2, false);
        let well_raw = column(&rows, 13, 3, false);
        let well_w = column(&rows, 14, 3, false);
        let medians = BTreeMap::from([
            ("is", is.median),
            ("lb", lb.median),
            ("ess", ess.median),
            ("modes", modes.median),
            ("wells_raw", well_raw.median),
            ("wells_weighted", well_w.median),
            ("sq_weighted", sq_w.median),
            ("sq_true", sq_true),
        ]);
        let miss = missed(row.name, &medians);
        let verdict = if miss.is_empty() {
            "none".to_string()
        } else {
            miss.join(", ").replace('|', "\\|")
        };
        let sq = match sq_true {
            Some(t) => format!("{} / {} ({t:.1})", sq_raw.text, sq_w.text),
            None => "-".into(),
        };
        let wells = if well_raw.median.is_some() {
            format!("{} / {}", well_raw.text, well_w.text)
        } else {
            "-".into()
        };
        writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {sq} | {} | {wells} | {verdict} | {} |",
            row.name,
            rows.len(),
            secs.text,
            is.text,
            lb.text,
            ess.text,
            k.text,
            modes.text,
            row.published,
        )
        .unwrap();
        writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            row.name,
            rows.len(),
            secs.csv,
            is.csv,
            lb.csv,
            ess.csv,
            k.csv,
            sq_raw.csv,
            sq_w.csv,
            modes.csv,
            well_raw.csv,
            well_w.csv,
            miss.join("; "),
        )
        .unwrap();
        writeln!(
            aims,
            "* {}: {} (`benches/{}.toml`)",
            row.name, row.aim, row.name
        )
        .unwrap();
    }
    md.push_str(&aims);
    (md, csv)
}
