//! The `diffctl` command, run as a user would: bad inputs give one line
//! `error: ...` and a non-zero exit; good ones give the runtime's samples,
//! bit for bit.

use std::path::PathBuf;

use diffctl_runtime::prelude::*;
use diffctl_trainer::target::Known;

mod common;

use common::{diffctl, fails, fails_with, hex_bits, ok, runtime_hex, stderr, weights_file};

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("cli", name)
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let dir = temp_dir("bad");
    let gmm = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let free = weights_file(&dir, "free.dcw", None, 3);
    let gmm = gmm.to_str().unwrap();
    let free = free.to_str().unwrap();

    // A corrupt copy (one byte flipped in the parameters) and a cut one.
    let mut bytes = std::fs::read(gmm).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let corrupt = dir.join("corrupt.dcw");
    std::fs::write(&corrupt, &bytes).unwrap();
    let corrupt = corrupt.to_str().unwrap();
    let cut = dir.join("cut.dcw");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let cut = cut.to_str().unwrap();
    let text = dir.join("text.dcw");
    std::fs::write(&text, "hello\n").unwrap();
    let text = text.to_str().unwrap();
    let missing = dir.join("missing.dcw");
    let missing = missing.to_str().unwrap();

    // Each case names its error by a distinctive part of the message.
    fails_with(&["inspect", missing], "missing.dcw");
    let e = fails_with(&["inspect", corrupt], "corrupt");
    assert!(e.contains("checksum"), "{e}");
    fails_with(&["inspect", cut], "truncated");
    fails_with(&["inspect", text], "not a diffctl weights file");
    fails_with(&["inspect", dir.to_str().unwrap()], "is a directory");
    let checksum = "weights file is corrupt: checksum";
    fails_with(&["sample", corrupt, "--n", "2", "--seed", "0"], checksum);
    fails_with(&["eval", corrupt], checksum);
    fails_with(
        &[
            "plot",
            corrupt,
            "--out",
            dir.join("c.svg").to_str().unwrap(),
        ],
        checksum,
    );

    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--target", "nope"],
        "unknown target 'nope'",
    );
    // The file's target is gmm: another one is refused; so is a wrong dimension.
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--target", "mw5"],
        "trained on target gmm",
    );
    fails_with(&["eval", free, "--target", "mw5"], "dimension");
    fails_with(&["eval", free], "no target");
    let at_least_one = "number of samples must be at least 1";
    fails_with(&["sample", gmm, "--n", "0", "--seed", "0"], at_least_one);
    fails_with(&["eval", gmm, "--n", "0"], at_least_one);
    fails_with(&["plot", gmm, "--n", "0"], at_least_one);
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--steps", "0"],
        "number of steps must be in",
    );
    let threads = "number of threads must be in 1..=";
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--threads", "0"],
        threads,
    );
    fails_with(
        &[
            "sample",
            gmm,
            "--n",
            "3",
            "--seed",
            "0",
            "--threads",
            "100000",
        ],
        threads,
    );
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "-1"],
        "unexpected argument '-1'",
    );
    fails_with(
        &["sample", gmm, "--n", "many", "--seed", "0"],
        "invalid value 'many' for '--n",
    );
    fails_with(
        &[
            "sample",
            gmm,
            "--n",
            "3",
            "--seed",
            "0",
            "--first",
            "18446744073709551615",
        ],
        "overflow a 64-bit index",
    );
    fails_with(
        &[
            "sample",
            gmm,
            "--n",
            "3",
            "--seed",
            "0",
            "--integrator",
            "rk4",
        ],
        "invalid value 'rk4' for '--integrator",
    );
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--format", "xml"],
        "invalid value 'xml' for '--format",
    );
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--bogus"],
        "unexpected argument '--bogus'",
    );
    fails_with(
        &["sample", gmm, "--n", "3", "--seed", "0", "--dim", "3"],
        "need --target",
    );
    for (flag, value) in [("--delta", "nan"), ("--delta", "inf")] {
        fails_with(
            &["eval", free, "--target", "mw5", "--dim", "3", flag, value],
            "multiwell delta must be finite",
        );
    }
    for sigma in ["-1", "0", "NaN"] {
        fails_with(
            &[
                "eval", free, "--target", "funnel", "--dim", "3", "--sigma", sigma,
            ],
            "funnel sigma must be finite and positive",
        );
    }
    fails_with(
        &["eval", gmm, "--target", "gmm", "--wells", "2"],
        "has no parameter --wells",
    );
    fails_with(
        &[
            "plot",
            gmm,
            "--coords",
            "2",
            "--out",
            dir.join("p.svg").to_str().unwrap(),
        ],
        "coordinate 2 does not exist",
    );
    fails_with(
        &["plot", gmm, "--out", dir.join("p.png").to_str().unwrap()],
        "plots are written as SVG",
    );
    fails_with(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    fails_with(&[], "missing subcommand");
    fails_with(&["sample"], "required arguments were not provided");

    // Training: bad settings are refused before any work.
    fails_with(&["train"], "no target: give --target");
    fails_with(&["train", "--target", "nope"], "unknown target 'nope'");
    let lr = "lr must be finite and positive";
    fails_with(&["train", "--target", "gmm", "--lr", "nan"], lr);
    fails_with(&["train", "--target", "gmm", "--lr", "-0.1"], lr);
    fails_with(
        &["train", "--target", "gmm", "--batch", "0"],
        "batch must be at least 1",
    );
    fails_with(
        &["train", "--target", "gmm", "--iterations", "0"],
        "iterations must be at least 1",
    );
    fails_with(
        &["train", "--target", "gmm", "--batch", "99999999999999"],
        "is too large for d = 2",
    );
    fails_with(
        &["train", "--target", "gmm", "--threads", "100000"],
        threads,
    );
    fails_with(
        &["train", "--target", "dw20", "--delta", "nan"],
        "multiwell delta must be finite",
    );
    fails_with(
        &["train", "--target", "gmm", "--plot", "x.png"],
        "plots are written as SVG",
    );
    fails_with(
        &["train", "--target", "gmm", "--resume"],
        "not provided: --checkpoint",
    );
    let explore = "explore must be in [1, 100]";
    fails_with(&["train", "--target", "gmm", "--explore", "0.5"], explore);
    fails_with(&["train", "--target", "gmm", "--explore", "inf"], explore);
    fails_with(
        &[
            "train",
            "--target",
            "gmm",
            "--explore",
            "2",
            "--explore-decay",
            "0",
        ],
        "explore_decay must be in (0, 1]",
    );
    let kl = fails(&["train", "--target", "gmm", "--explore", "2", "--loss", "kl"]);
    assert!(
        kl.contains("explore") && kl.contains("log-variance"),
        "{kl}"
    );
    fails_with(&["train", "--config", missing], "missing.dcw");
    let config = dir.join("bad.toml");
    for (bad, why) in [
        ("bacth = 3\n", "unknown field `bacth`"),
        ("target = \"nope\"\n", "unknown target 'nope'"),
        ("batch = \"many\"\n", "invalid type: string \"many\""),
        ("[[[", "TOML parse error"),
    ] {
        std::fs::write(&config, bad).unwrap();
        let e = fails_with(&["train", "--config", config.to_str().unwrap()], why);
        assert!(e.contains("bad.toml"), "{bad}: {e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inspect_shows_the_header() {
    let dir = temp_dir("inspect");
    let f = weights_file(&dir, "dw.dcw", TargetSpec::preset("dw20"), 20);
    let text = ok(&["inspect", f.to_str().unwrap()]);
    let size = std::fs::metadata(&f).unwrap().len();
    let count = Model::parse(&std::fs::read(&f).unwrap())
        .unwrap()
        .header
        .param_count();
    for want in [
        "DIS".to_string(),
        "d = 20, C = 16 channels, L = 3 layers".into(),
        format!("{count}"),
        "variance preserving".into(),
        "uniform".into(),
        "30 (default K)".into(),
        "Euler-Maruyama".into(),
        "N(0, 1^2 I)".into(),
        "dw20".into(),
        "delta = 3".into(),
        "f32".into(),
        format!("{size} bytes"),
    ] {
        assert!(text.contains(&want), "missing {want:?} in\n{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sample_hex_matches_the_runtime() {
    let dir = temp_dir("hex");
    for (name, target, d) in [
        ("gmm.dcw", Some(TargetSpec::Gmm), 2),
        ("dw.dcw", TargetSpec::preset("dw20"), 20),
        ("free.dcw", None, 3),
    ] {
        let f = weights_file(&dir, name, target, d);
        let path = f.to_str().unwrap();
        let want = runtime_hex(&f, 42, 5, 70);
        for threads in ["1", "2", "3"] {
            let got = ok(&[
                "sample",
                path,
                "--n",
                "70",
                "--seed",
                "42",
                "--first",
                "5",
                "--format",
                "hex",
                "--threads",
                threads,
            ]);
            assert_eq!(got, want, "{name}, {threads} threads");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sample_csv_and_npy_hold_the_same_bits() {
    let dir = temp_dir("formats");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let path = f.to_str().unwrap();
    let want = hex_bits(&runtime_hex(&f, 9, 0, 50));

    // CSV on standard output: header, then values that read back exactly.
    let csv = ok(&["sample", path, "--n", "50", "--seed", "9"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("x0,x1,log_w"));
    let rows: Vec<Vec<u32>> = lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), 3, "{l}");
            assert!(fields[2].parse::<f64>().unwrap().is_finite());
            fields[..2]
                .iter()
                .map(|v| v.parse::<f32>().unwrap().to_bits())
                .collect()
        })
        .collect();
    assert_eq!(rows, want);

    // A file without a target has no path costs: no log_w column.
    let free = weights_file(&dir, "free.dcw", None, 3);
    let csv = ok(&["sample", free.to_str().unwrap(), "--n", "2", "--seed", "9"]);
    assert_eq!(csv.lines().next(), Some("x0,x1,x2"));
    assert_eq!(csv.lines().count(), 3);

    // .npy, written atomically: the format is chosen by the extension.
    let npy = dir.join("s.npy");
    ok(&[
        "sample",
        path,
        "--n",
        "50",
        "--seed",
        "9",
        "--out",
        npy.to_str().unwrap(),
    ]);
    assert!(!dir.join("s.npy.tmp").exists());
    let bytes = std::fs::read(&npy).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let offset = 10 + header_len;
    assert_eq!(offset % 64, 0);
    let dict = std::str::from_utf8(&bytes[10..offset]).unwrap();
    assert!(dict.ends_with('\n'));
    assert_eq!(
        dict.trim_end(),
        "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 2), }"
    );
    let data: Vec<u32> = bytes[offset..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data, want.concat());

    // --format wins over the extension.
    let out = dir.join("s.txt");
    ok(&[
        "sample",
        path,
        "--n",
        "50",
        "--seed",
        "9",
        "--format",
        "hex",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(hex_bits(&std::fs::read_to_string(&out).unwrap()), want);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_reports_text_and_json() {
    let dir = temp_dir("eval");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let path = f.to_str().unwrap();
    let text = ok(&["eval", path, "--n", "300", "--seed", "1", "--threads", "3"]);
    for want in [
        "samples          300",
        "log Z (true)",
        "log Z_is",
        "ESS",
        "modes",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let json = ok(&[
        "eval",
        path,
        "--n",
        "300",
        "--seed",
        "1",
        "--json",
        "--cost",
        "continuous",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["n"], 300);
    assert_eq!(v["d"], 2);
    assert_eq!(v["cost"], "continuous");
    assert!(v["estimates"]["log_z_is"].is_number());
    // Same seed, same report; the thread count does not matter (3 and 1:
    // explicit, so they differ whatever the machine's core count).
    let again = ok(&["eval", path, "--n", "300", "--seed", "1", "--threads", "1"]);
    assert_eq!(text, again);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn plots_are_svg() {
    let dir = temp_dir("plot");
    let gmm = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let dw = weights_file(&dir, "dw.dcw", TargetSpec::preset("dw20"), 20);
    ok(&["plot", gmm.to_str().unwrap(), "--n", "500"]);
    let svg = std::fs::read_to_string(dir.join("gmm.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<circle"));
    let out = dir.join("m.svg");
    ok(&[
        "plot",
        dw.to_str().unwrap(),
        "--n",
        "500",
        "--coords",
        "0,7,19",
        "--out",
        out.to_str().unwrap(),
    ]);
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(svg.contains("x19") && svg.contains("<polyline"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// PIS and DDS through the CLI: train a tiny model, then `inspect` names the
/// sampler and its SDE, `sample` gives the same bits on 1 and 2 threads, and
/// `eval` reports log Z on the file's own target.
#[test]
fn pis_and_dds_files_train_inspect_sample_and_eval() {
    let dir = temp_dir("peers");
    for (sampler, shown, sde) in [
        ("pis", "PIS", "Brownian reference"),
        ("dds", "DDS", "variance preserving"),
    ] {
        let weights = dir.join(format!("{sampler}.dcw"));
        let w = weights.to_str().unwrap();
        ok(&[
            "train",
            "--target",
            "gmm",
            "--sampler",
            sampler,
            "--iterations",
            "6",
            "--batch",
            "32",
            "--steps",
            "20",
            "--channels",
            "8",
            "--layers",
            "3",
            "--eval-every",
            "0",
            "--eval-samples",
            "64",
            "--seed",
            "5",
            "--out",
            w,
        ]);
        let inspect = ok(&["inspect", w]);
        assert!(
            inspect.contains(shown) && inspect.contains(sde),
            "{inspect}"
        );
        let one = ok(&[
            "sample",
            w,
            "--n",
            "50",
            "--seed",
            "9",
            "--format",
            "hex",
            "--threads",
            "1",
        ]);
        let two = ok(&[
            "sample",
            w,
            "--n",
            "50",
            "--seed",
            "9",
            "--format",
            "hex",
            "--threads",
            "2",
        ]);
        assert_eq!(one, two);
        assert_eq!(hex_bits(&one).len(), 50);
        let eval = ok(&["eval", w, "--n", "500"]);
        assert!(
            eval.contains("log Z_is") && eval.contains("log Z (true)"),
            "{eval}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CI check: `diffctl train` on gmm with a small budget, then
/// `diffctl sample` on the exported file reproduces, bit for bit, the samples
/// of the trainer's final evaluation (seed = the training seed, indices from 0).
#[test]
fn train_then_sample_reproduces_the_final_evaluation() {
    use diffctl_trainer::optimise::RunOptions;
    use diffctl_trainer::train::{train, TrainConfig};

    let dir = temp_dir("train");
    let weights = dir.join("gmm.dcw");
    let checkpoint = dir.join("gmm.ckpt");
    let svg = dir.join("gmm.svg");
    let (w, c, s) = (
        weights.to_str().unwrap(),
        checkpoint.to_str().unwrap(),
        svg.to_str().unwrap(),
    );
    let args = [
        "train",
        "--target",
        "gmm",
        "--iterations",
        "20",
        "--batch",
        "32",
        "--steps",
        "20",
        "--channels",
        "16",
        "--layers",
        "3",
        "--threads",
        "2",
        "--eval-every",
        "10",
        "--eval-samples",
        "256",
        "--seed",
        "3",
        "--out",
        w,
        "--checkpoint",
        c,
        "--plot",
        s,
    ];
    let report = ok(&args);
    assert!(
        report.contains("log Z_is") && report.contains(w),
        "{report}"
    );
    assert!(checkpoint.exists() && svg.exists());
    assert!(!dir.join("gmm.dcw.tmp").exists());

    // The library, with the same settings, trains the same weights.
    let cfg = TrainConfig {
        iterations: 20,
        batch: 32,
        steps: 20,
        channels: 16,
        layers: 3,
        threads: 2,
        eval_every: 10,
        eval_samples: 256,
        seed: 3,
        // The command's default integrator.
        integrator: Integrator::Exponential,
        ..TrainConfig::default()
    };
    let gmm = Known::preset("gmm").unwrap();
    let outcome = train(&cfg, &gmm, &RunOptions::default(), &mut |_| {}).unwrap();
    let written = std::fs::read(&weights).unwrap();
    assert_eq!(written, outcome.weights);

    let hex = ok(&["sample", w, "--n", "256", "--seed", "3", "--format", "hex"]);
    let got: Vec<u32> = hex_bits(&hex).concat();
    let want: Vec<u32> = outcome.samples.xs.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want);

    // Resuming a finished run from its checkpoint gives the same file.
    let mut resume = args.to_vec();
    resume.push("--resume");
    ok(&resume);
    assert_eq!(std::fs::read(&weights).unwrap(), written);

    // A settings file, overridden by flags. (Explicit steps through the
    // wells' cubic score need K >= ~50 at delta = 4: keep the wells gentle.)
    let config = dir.join("run.toml");
    std::fs::write(
        &config,
        "target = { name = \"mw5\", dim = 2, wells = 1, delta = 1.0 }\nbatch = 16\n\
         steps = 30\niterations = 3\nchannels = 8\nlayers = 3\neval_every = 0\n\
         eval_samples = 64\n",
    )
    .unwrap();
    let out2 = dir.join("mw.dcw");
    ok(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--iterations",
        "2",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let header = Model::parse(&std::fs::read(&out2).unwrap()).unwrap().header;
    assert_eq!(
        header.target,
        Some(TargetSpec::MultiWell {
            d: 2,
            w: 1,
            delta: 1.0
        })
    );
    assert_eq!((header.steps, header.shape.channels), (30, 8));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn divergence_is_an_error() {
    let dir = temp_dir("diverge");
    let out = diffctl(&[
        "train",
        "--target",
        "gmm",
        "--lr",
        "1e30",
        "--iterations",
        "20",
        "--batch",
        "8",
        "--steps",
        "5",
        "--channels",
        "8",
        "--layers",
        "3",
        "--eval-every",
        "0",
        "--out",
        dir.join("x.dcw").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: training diverged at iteration "),
        "{err}"
    );
    assert!(!dir.join("x.dcw").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `diffctl demo --quick`: the README's main job on a smoke-test budget
/// (28 s measured on a shared 2-core machine, README), end to end; the
/// plot carries the log Z error and the ESS and stays small.
#[test]
fn quick_demo_writes_weights_and_plot() {
    let dir = temp_dir("demo");
    let text = ok(&["demo", "--quick", "--dir", dir.to_str().unwrap()]);
    // "summary          log Z error -0.0008 (importance sampling, 4096 paths), ESS 0.566"
    let summary = text
        .lines()
        .find(|l| l.starts_with("summary          log Z error"))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    let words: Vec<&str> = summary.split_whitespace().collect();
    let err: f64 = words[4].parse().unwrap();
    let n: f64 = words[7].parse().unwrap();
    let ess: f64 = words.last().unwrap().parse().unwrap();
    // With normalised ESS e = (sum w)^2 / (n sum w^2), the delta-method
    // standard error of log Z_is is sqrt((1/e - 1) / n). The trained sampler
    // must reach a useful ESS (0.546 measured, 400 iterations) and an
    // unbiased estimate within 4 of those standard errors.
    let se = ((1.0 / ess - 1.0) / n).sqrt();
    assert!(ess > 0.3, "ESS {ess}: {summary}");
    assert!(
        err.abs() < 4.0 * se,
        "log Z error {err} vs 4 se = {}: {summary}",
        4.0 * se
    );
    let bytes = std::fs::read(dir.join("gmm.dcw")).unwrap();
    let header = Model::parse(&bytes).unwrap().header;
    assert_eq!(header.target, Some(TargetSpec::Gmm));
    let svg = std::fs::read_to_string(dir.join("gmm.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("log Z error") && svg.contains("ESS"));
    assert!(svg.len() < 400_000, "{} bytes", svg.len());
    std::fs::remove_dir_all(&dir).unwrap();
}
