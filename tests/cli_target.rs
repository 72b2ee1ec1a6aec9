//! `--target-config`: targets described in a TOML file (a Gaussian mixture,
//! a Bayesian logistic regression on a CSV file) through `train`, `eval`,
//! `sample` and `plot`; the file records what it needs, and bad configs get
//! one-line errors naming the key.

mod common;

use std::path::Path;

use common::{fails, ok, temp_dir};

/// A small training budget (seconds).
const TINY: [&str; 14] = [
    "--iterations",
    "40",
    "--batch",
    "64",
    "--steps",
    "10",
    "--channels",
    "16",
    "--layers",
    "3",
    "--eval-samples",
    "512",
    "--threads",
    "2",
];

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn train(config: &Path, out: &Path) -> String {
    let mut args = vec![
        "train",
        "--target-config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(TINY);
    ok(&args)
}

/// A stored mixture needs no config after training: `eval` and `sample` read
/// its parameters from the weights file, and `log Z = log sum w`.
#[test]
fn mixture_config_trains_and_the_file_carries_it() {
    let dir = temp_dir("target", "mixture");
    let config = dir.join("mix.toml");
    write(
        &config,
        "[target]\nname = \"mixture\"\nweights = [1.0, 2.0, 1.0]\n\
         means = [[0.0, 0.0], [3.0, 1.0], [-2.0, 2.0]]\n\
         covs = [[[1.0, 0.3], [0.3, 0.5]], [[0.3, 0.0], [0.0, 0.3]], [[2.0, -0.5], [-0.5, 1.0]]]\n",
    );
    let weights = dir.join("mix.dcw");
    let report = train(&config, &weights);
    assert!(report.contains("log Z (true)     1.3863"), "{report}");
    let w = weights.to_str().unwrap();
    let eval = ok(&["eval", w, "--n", "2000"]);
    assert!(eval.contains("log Z (true)     1.3863"), "{eval}");
    assert!(eval.contains("Pareto k-hat"), "{eval}");
    assert!(eval.contains("modes            3"), "{eval}");
    let inspect = ok(&["inspect", w]);
    assert!(inspect.contains("mixture"), "{inspect}");
    let csv = ok(&["sample", w, "--n", "5", "--seed", "1"]);
    assert_eq!(csv.lines().count(), 6, "{csv}");
    // Resampled draws follow the weights: the first coordinate's mean is
    // the mixture's, (1 * 0 + 2 * 3 + 1 * (-2)) / 4 = 1, within 4 SE. The
    // SE has two parts: 4000 draws (std about 2.1) and the weighted set
    // they come from, worth ESS * 20 000 independent draws. The tiny
    // model's ESS is low (0.06 at this budget), so the second part is the
    // larger one; the ESS is read from `eval` of the same 20 000 paths.
    let eval = ok(&["eval", w, "--n", "20000", "--seed", "2"]);
    let ess: f64 = eval
        .lines()
        .find_map(|l| l.strip_prefix("ESS"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ESS line: {eval}"));
    assert!(ess > 0.02, "training did not reach even ESS 0.02: {ess}");
    let se = 2.1 * (1.0 / 4000.0 + 1.0 / (ess * 20_000.0)).sqrt();
    let draws = ok(&[
        "sample",
        w,
        "--n",
        "20000",
        "--resample",
        "4000",
        "--seed",
        "2",
    ]);
    let x0: Vec<f64> = draws
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(x0.len(), 4000);
    assert!(!draws.lines().next().unwrap().contains("log_w"));
    let mean = x0.iter().sum::<f64>() / 4000.0;
    assert!((mean - 1.0).abs() < 4.0 * se, "mean {mean}, SE {se}");
    let e = fails(&[
        "sample",
        w,
        "--n",
        "10",
        "--resample",
        "5",
        "--format",
        "hex",
    ]);
    assert!(e.contains("--format csv or npy"), "{e}");
    // The same target given again is accepted; another one is refused.
    ok(&[
        "eval",
        w,
        "--n",
        "500",
        "--target-config",
        config.to_str().unwrap(),
    ]);
    let e = fails(&["eval", w, "--target", "gmm"]);
    assert!(e.contains("trained on target mixture"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

/// A logistic regression's data stay outside the file: `eval` needs the
/// config, and refuses data whose checksum differs from the recorded one.
#[test]
fn logistic_config_needs_its_data_and_checks_them() {
    let dir = temp_dir("target", "logistic");
    let mut csv = String::from("age,dose,outcome\n");
    for i in 0..60 {
        let (a, b) = ((i % 7) as f64 - 3.0, ((i * 5) % 11) as f64 / 3.0);
        let y = u8::from(a + 0.8 * b > 1.0);
        csv.push_str(&format!("{a},{b},{y}\n"));
    }
    write(&dir.join("data.csv"), &csv);
    let config = dir.join("lr.toml");
    write(
        &config,
        "[target]\nname = \"logistic-regression\"\ndata = \"data.csv\"\nlabel = \"outcome\"\nprior_std = 2.0\n",
    );
    let weights = dir.join("lr.dcw");
    let report = train(&config, &weights);
    assert!(
        report.contains("log Z_is") && !report.contains("log Z (true)"),
        "{report}"
    );
    assert!(report.contains("x2"), "3 coefficients are listed: {report}");
    let (w, c) = (weights.to_str().unwrap(), config.to_str().unwrap());
    let e = fails(&["eval", w]);
    assert!(e.contains("--target-config"), "{e}");
    // The config is an input: training never writes over it.
    let mut over = vec!["train", "--target-config", c, "--out", c];
    over.extend(TINY);
    assert!(fails(&over).contains("refusing to overwrite"));
    let eval = ok(&["eval", w, "--n", "1000", "--target-config", c]);
    assert!(eval.contains("mean (weighted)"), "{eval}");
    ok(&["sample", w, "--n", "3", "--seed", "0", "--target-config", c]);
    let svg = dir.join("lr.svg");
    ok(&[
        "plot",
        w,
        "--n",
        "300",
        "--target-config",
        c,
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(svg.exists());
    // Changed data: refused by every command that samples.
    write(
        &dir.join("data.csv"),
        &csv.replacen("-3,0,0", "-3,0.5,0", 1),
    );
    for cmd in ["eval", "sample", "plot"] {
        let e = fails(&[cmd, w, "--n", "10", "--seed", "0", "--target-config", c]);
        assert!(
            e.contains("differ from the data the model was trained on"),
            "{cmd}: {e}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Every bad config is one line naming what is wrong.
#[test]
fn bad_target_configs_name_the_key() {
    let dir = temp_dir("target", "bad");
    write(&dir.join("ok.csv"), "a,target\n1,0\n2,1\n3,1\n");
    write(&dir.join("nan.csv"), "a,target\n1,0\nnan,1\n");
    write(&dir.join("label.csv"), "a,target\n1,0\n2,2\n");
    let mix = "[target]\nname = \"mixture\"\n";
    let cases = [
        (
            format!("{mix}weights = [1.0]\nmeans = [[0.0, 1.0]]\nstds = [[1.0]]\n"),
            "stds[0] has 1 values, expected d = 2",
        ),
        (
            format!(
                "{mix}weights = [1.0, 1.0]\nmeans = [[0.0], [1.0, 2.0]]\nstds = [[1.0], [1.0]]\n"
            ),
            "means[1] has 2 values, expected d = 1",
        ),
        (
            format!("{mix}weights = [-1.0]\nmeans = [[0.0]]\nstds = [[1.0]]\n"),
            "weights[0] is -1",
        ),
        (
            format!(
                "{mix}weights = [1.0]\nmeans = [[0.0, 0.0]]\ncovs = [[[1.0, 2.0], [2.0, 1.0]]]\n"
            ),
            "covs[0] is not positive definite",
        ),
        (
            format!("{mix}weights = [1.0]\nmeans = [[\"a\"]]\nstds = [[1.0]]\n"),
            "(mixture)",
        ),
        (
            format!("{mix}weights = [1.0]\nmeans = [[0.0]]\n"),
            "stds or covs is needed",
        ),
        (
            format!("{mix}weights = [1.0]\nmeans = [[0.0]]\nstds = [[1.0]]\ncolour = 3\n"),
            "colour",
        ),
        (
            "[target]\nname = \"logistic-regression\"\ndata = \"ok.csv\"\nlabel = \"y\"\n".into(),
            "no column named \"y\"",
        ),
        (
            "[target]\nname = \"logistic-regression\"\ndata = \"nan.csv\"\n".into(),
            "column a: nan",
        ),
        (
            "[target]\nname = \"logistic-regression\"\ndata = \"label.csv\"\n".into(),
            "not 0 or 1",
        ),
        (
            "[target]\nname = \"logistic-regression\"\ndata = \"missing.csv\"\n".into(),
            "missing.csv",
        ),
        (
            "[target]\nname = \"logistic-regression\"\ndata = \"ok.csv\"\nprior_std = 0.0\n".into(),
            "prior_std",
        ),
        (
            "[target]\nname = \"banana\"\n".into(),
            "unknown target 'banana'",
        ),
        ("target_typo = 1\n".into(), "no [target] table"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.toml"));
        write(&path, text);
        let mut args = vec!["train", "--target-config", path.to_str().unwrap()];
        args.extend(TINY);
        let e = fails(&args);
        assert!(e.contains(needle), "{text}\n=> {e}");
    }
    std::fs::remove_dir_all(dir).ok();
}
