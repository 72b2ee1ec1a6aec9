//! Issue 16's time-to-accuracy table: `log Z` error and ESS against wall
//! time, for gmm within 5 s and dw20 within 60 s on 2 threads.
//!
//! `cargo bench --bench time_to_accuracy [-- --seeds N] [ROW ...]` (rows:
//! gmm-5s, dw20-60s; default both).
//!
//! For each row, each quarter, half and whole of its config's iteration
//! budget, and each seed, a run is exactly the user's command, timed from
//! start to exit:
//!
//! ```text
//! diffctl train --config benches/<row>.toml --seed S --iterations N -o target/time_to_accuracy/...
//! ```
//!
//! evaluated here through the runtime on 100,000 paths (sample seed `S`,
//! `R_disc`). Runs are appended to
//! `benches/results/time_to_accuracy_runs.csv`, keyed by row, iterations,
//! seed and a hash of the config's text (an interrupted table resumes; an
//! edited config reruns its row). The summary (median [min, max] over seeds)
//! goes to `benches/results/time_to_accuracy.{md,csv}`. Time it on an idle
//! machine: the wall time is the measurement.

use std::fmt::Write as _;
use std::path::Path;

mod common;

use common::{fnv, load_runs, opt, parse_args, save_runs, train_and_evaluate, Spread};

const EVAL_PATHS: usize = 100_000;

/// A row: its config and its wall-time budget in seconds.
const ROWS: [(&str, f64); 2] = [("gmm-5s", 5.0), ("dw20-60s", 60.0)];

const RUNS_HEADER: &str =
    "row,iterations,seed,config_hash,wall_seconds,log_z_is_err,log_z_is_se,log_z_lb_err,ess";

/// The iteration budget a config sets.
fn config_iterations(text: &str) -> usize {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "iterations")
        .and_then(|(_, v)| v.trim().parse().ok())
        .expect("the config sets iterations")
}

fn main() {
    let (seeds, chosen) = parse_args(&ROWS.iter().map(|r| r.0).collect::<Vec<_>>());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("benches/results");
    let out_dir = root.join("target/time_to_accuracy");
    std::fs::create_dir_all(&dir).expect("results directory");
    std::fs::create_dir_all(&out_dir).expect("weights directory");
    let runs_path = dir.join("time_to_accuracy_runs.csv");
    let mut runs = load_runs(&runs_path, RUNS_HEADER);
    for (name, _) in ROWS
        .iter()
        .filter(|(n, _)| chosen.is_empty() || chosen.iter().any(|c| c == n))
    {
        let config = root.join(format!("benches/{name}.toml"));
        let text = std::fs::read_to_string(&config).expect("read the row's config");
        let (hash, full) = (fnv(&text), config_iterations(&text));
        for iterations in [full / 4, full / 2, full] {
            for seed in 0..seeds {
                let key = format!("{name},{iterations},{seed},{hash}");
                if runs.iter().any(|r| r.starts_with(&format!("{key},"))) {
                    continue;
                }
                let weights = out_dir.join(format!("{name}_{iterations}_s{seed}.dcw"));
                let extra = ["--iterations".to_string(), iterations.to_string()];
                let (secs, _, r) = train_and_evaluate(&config, seed, &extra, &weights, EVAL_PATHS);
                let line = format!(
                    "{key},{secs:.2},{},{:.5},{},{:.4}",
                    opt(r.log_z_is_error()),
                    r.estimates.log_z_is_se,
                    opt(r.log_z_lb_error()),
                    r.estimates.ess
                );
                eprintln!("{line}");
                runs.push(line);
                save_runs(&runs_path, RUNS_HEADER, &runs);
            }
        }
    }
    let (md, csv) = summary(root, &runs);
    std::fs::write(dir.join("time_to_accuracy.md"), &md).expect("write markdown");
    std::fs::write(dir.join("time_to_accuracy.csv"), csv).expect("write csv");
    println!("{md}");
}

/// Per row and iteration count (runs of the current configs only): the
/// spreads over seeds and whether the medians meet the aim.
fn summary(root: &Path, runs: &[String]) -> (String, String) {
    let mut md = String::from(
        "| row | iterations | seeds | wall (s) | log Z_is error | log Z_lb error | ESS | \
         aim met by the median |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut csv = String::from(
        "row,iterations,seeds,wall_median,wall_min,wall_max,is_err_median,is_err_min,is_err_max,\
         lb_err_median,lb_err_min,lb_err_max,ess_median,ess_min,ess_max,aim_met\n",
    );
    for (name, budget) in ROWS {
        let Ok(text) = std::fs::read_to_string(root.join(format!("benches/{name}.toml"))) else {
            continue;
        };
        let hash = fnv(&text);
        let rows: Vec<Vec<&str>> = runs
            .iter()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[0] == name && f[3] == hash)
            .collect();
        let mut counts: Vec<usize> = rows.iter().filter_map(|f| f[1].parse().ok()).collect();
        counts.sort_unstable();
        counts.dedup();
        for n in counts {
            let mine: Vec<&Vec<&str>> = rows.iter().filter(|f| f[1] == n.to_string()).collect();
            let col = |i: usize| Spread::of(mine.iter().filter_map(|f| f[i].parse().ok()));
            let (wall, is, lb, ess) = (col(4), col(5), col(7), col(8));
            let met = matches!((wall, is, ess), (Some(w), Some(i), Some(e))
                if w.median <= budget && i.median.abs() <= 0.05 && e.median >= 0.5);
            let text = |s: Option<Spread>, digits, signed| {
                s.map_or("-".to_string(), |s| s.text(digits, signed))
            };
            let cells = |s: Option<Spread>| s.map_or(",,".to_string(), |s| s.csv());
            let _ = writeln!(
                md,
                "| {name} | {n} | {} | {} | {} | {} | {} | {} |",
                mine.len(),
                text(wall, 2, false),
                text(is, 3, true),
                text(lb, 3, true),
                text(ess, 3, false),
                if met { "yes" } else { "no" }
            );
            let _ = writeln!(
                csv,
                "{name},{n},{},{},{},{},{},{met}",
                mine.len(),
                cells(wall),
                cells(is),
                cells(lb),
                cells(ess)
            );
        }
    }
    md.push_str(
        "\nAim (issue 16, on the median over seeds): |log Z_is error| ≤ 0.05 and ESS ≥ 0.5 \
         within the row's wall time (gmm 5 s, dw20 60 s), 2 threads.\n",
    );
    (md, csv)
}
