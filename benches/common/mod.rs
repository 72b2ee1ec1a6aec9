//! Shared by the benchmark harnesses: a column's summary over seeds, the
//! runs file, and one run of the user's `diffctl train` command evaluated
//! through the runtime. (Each harness uses part of it.)
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{
    file_target, report, sample_file, CostForm, EvalReport, SampleOptions, Samples,
};

/// Median, smallest and largest of a column's values.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// "median [min, max]" with `digits` decimals, with a `+` on positive
    /// values when `signed`.
    pub fn text(&self, digits: usize, signed: bool) -> String {
        let f = |x: f64| {
            if signed {
                format!("{x:+.digits$}")
            } else {
                format!("{x:.digits$}")
            }
        };
        format!("{} [{}, {}]", f(self.median), f(self.min), f(self.max))
    }

    /// "median,min,max" with 5 decimals.
    pub fn csv(&self) -> String {
        format!("{:.5},{:.5},{:.5}", self.median, self.min, self.max)
    }
}

/// The runs already in a harness's runs file (one CSV line each), or none
/// when it is missing or its header is not `header` (another format).
pub fn load_runs(path: &std::path::Path, header: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .filter(|text| text.lines().next() == Some(header))
        .map(|text| text.lines().skip(1).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Writes the runs file atomically (a temporary file renamed over it), so
/// that an interrupted benchmark never loses the runs it had.
pub fn save_runs(path: &std::path::Path, header: &str, runs: &[String]) {
    let text = std::iter::once(header.to_string())
        .chain(runs.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).expect("write runs");
    std::fs::rename(&tmp, path).expect("replace runs file");
}

/// FNV-1a of a config's text: a run is valid for the text it was made with.
pub fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A CSV cell: the value with 5 decimals, or empty.
pub fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.5}"))
}

/// Runs the user's command `diffctl train --config CONFIG --seed SEED
/// [extra] -o WEIGHTS` and times it (start-up and the final evaluation
/// included), then samples the file through the runtime (`eval::sample_file`,
/// the code behind `diffctl eval`) on `paths` paths with sample seed `seed`,
/// and reports with the discrete path cost `R_disc`.
pub fn train_and_evaluate(
    config: &Path,
    seed: u64,
    extra: &[String],
    weights: &Path,
    paths: usize,
) -> (f64, Samples, EvalReport) {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_diffctl"))
        .arg("train")
        .arg("--config")
        .arg(config)
        .args(["--seed", &seed.to_string()])
        .args(extra)
        .arg("-o")
        .arg(weights)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run diffctl");
    assert!(
        status.success(),
        "diffctl train --config {} failed",
        config.display()
    );
    let seconds = started.elapsed().as_secs_f64();
    let bytes = std::fs::read(weights).expect("read weights");
    let model = Model::parse(&bytes).expect("parse weights");
    let target = file_target(&model).expect("a built-in target");
    let opts = SampleOptions {
        n: paths,
        seed,
        ..SampleOptions::default()
    };
    let samples = sample_file(&bytes, Some(&target), &opts).expect("sample");
    let r = report(&samples, Some(&target), CostForm::Discrete);
    (seconds, samples, r)
}

/// The harness's arguments: `[--seeds N] [ROW ...]` (cargo's `--bench`
/// ignored); seeds default to 5, rows to all of `rows`.
pub fn parse_args(rows: &[&str]) -> (u64, Vec<String>) {
    let mut seeds = 5u64;
    let mut chosen: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()).expect("--seeds N"),
            "--bench" => {}
            r if rows.contains(&r) => chosen.push(r.to_string()),
            other => panic!("unknown argument {other}; rows are {rows:?}"),
        }
    }
    (seeds, chosen)
}
