//! The command line as a new user meets it (issue 14): no lost work, one
//! vocabulary, honest output. One test per item of the issue, numbered as
//! there; every process is killed after a timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use diffctl_runtime::prelude::*;

mod common;

use common::{
    command, diffctl, fails, hex_bits, ok, run, runtime_hex, stderr, stdout, wait, weights_file,
    TIMEOUT,
};

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("edges", name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `train` on gmm with the [`common::TINY_TRAIN`] settings, `--out out`,
/// and `extra` flags (which replace a tiny setting of the same name).
fn train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--target", "gmm"];
    a.extend_from_slice(&common::TINY_TRAIN);
    a.extend_from_slice(&["--out", out]);
    let mut rest = Vec::new();
    let mut i = 0;
    while i < extra.len() {
        let flag = extra[i];
        let value = extra.get(i + 1).filter(|v| !v.starts_with("--"));
        match (a.iter().position(|x| *x == flag), value) {
            (Some(k), Some(v)) => a[k + 1] = v,
            (_, Some(v)) => rest.extend([flag, *v]),
            (_, None) => rest.push(flag),
        }
        i += if value.is_some() { 2 } else { 1 };
    }
    a.extend(rest);
    a
}

/// The weights file at `path` decodes, with the gmm target.
fn assert_weights(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = Model::parse(&bytes).unwrap().header;
    assert_eq!(header.target, Some(TargetSpec::Gmm));
}

/// Item 1: `train | head -1` and `train 2>&1 | head -1`: no panic, the weights are
/// written, the exit is quiet (status 0).
#[test]
fn item01_closed_pipes_never_lose_the_weights() {
    let dir = temp_dir("pipe");
    for (case, close_stdout_first) in [("stderr", false), ("stdout", true)] {
        let w = dir.join(format!("{case}.dcw"));
        let mut child = command(&train_args(s(&w), &["--eval-every", "2"]))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        if close_stdout_first {
            // `| head -1` on standard output: the reader is gone before the report.
            drop(out);
            let status = wait(&mut child, TIMEOUT);
            let mut text = String::new();
            err.read_to_string(&mut text).unwrap();
            assert_eq!(status.code(), Some(0), "{case}: {text}");
            assert!(!text.contains("panicked"), "{text}");
        } else {
            // `2>&1 | head -1`: both streams close after the first line.
            let mut first = String::new();
            err.read_line(&mut first).unwrap();
            assert!(first.starts_with("training DIS"), "{first}");
            drop(err);
            drop(out);
            let status = wait(&mut child, TIMEOUT);
            assert_eq!(status.code(), Some(0), "{case}");
        }
        assert_weights(&w);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 2: Outputs that cannot be written are refused before the first
/// iteration (no banner, no progress); weights that cannot be written at
/// the end go to a fallback file that the error names.
#[test]
fn item02_outputs_are_checked_before_training_and_weights_are_rescued() {
    let dir = temp_dir("unwritable");
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "a file, not a directory").unwrap();
    let inside = |name: &str| s(&blocker.join(name)).to_owned();
    let good = dir.join("good.dcw");
    // A long run: were it started, the one-line check below would fail.
    let long = |extra: &[&str]| {
        let mut a = train_args(s(&good), &["--iterations", "100000"]);
        a.extend_from_slice(extra);
        a.iter().map(|x| x.to_string()).collect::<Vec<_>>()
    };
    for (flag, what) in [
        ("--out", "weights file"),
        ("--checkpoint", "checkpoint"),
        ("--plot", "plot"),
    ] {
        let path = inside(if flag == "--plot" { "p.svg" } else { "x.dcw" });
        let mut a = long(&[]);
        if flag == "--out" {
            let i = a.iter().position(|x| x == "--out").unwrap();
            a[i + 1] = path.clone();
        } else {
            a.extend([flag.to_string(), path.clone()]);
        }
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let e = fails(&a);
        assert!(
            e.contains(&format!("cannot write the {what}")) && e.contains("blocker"),
            "{flag}: {e}"
        );
    }
    let e = fails(&["demo", "--quick", "--dir", &inside("demo")]);
    assert!(e.contains("cannot write the weights file"), "{e}");
    // The same file twice is refused too.
    let same = s(&good);
    let e = fails(&train_args(same, &["--checkpoint", same]));
    assert!(e.contains("same file"), "{e}");
    assert!(!good.exists());

    // Passes the check (a device), fails at the end: the weights are saved
    // in the temporary directory, and the error says where.
    if Path::new("/dev/full").exists() {
        let out = run(
            command(&train_args("/dev/full", &[])).env("TMPDIR", &dir),
            TIMEOUT,
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap();
        assert!(
            last.starts_with("error: cannot write the weights file /dev/full")
                && last.contains("saved to"),
            "{last}"
        );
        let rescued = last.rsplit("saved to ").next().unwrap();
        let rescued = Path::new(rescued.trim_end_matches(" instead"));
        assert!(rescued.starts_with(&dir), "{}", rescued.display());
        assert_weights(rescued);
        assert!(stdout(&out).contains(s(rescued)), "{}", stdout(&out));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 3: `sample` never overwrites its input and refuses a format that
/// contradicts the output's extension (or a `.dcw` output).
#[test]
fn item03_sample_refuses_to_overwrite_an_input_or_contradict_the_extension() {
    let dir = temp_dir("overwrite");
    let g = weights_file(&dir, "g", Some(TargetSpec::Gmm), 2);
    let before = std::fs::read(&g).unwrap();
    let e = fails(&["sample", s(&g), "--n", "5", "--out", s(&g)]);
    assert!(e.contains("refusing to overwrite the weights file"), "{e}");
    let dotted = dir.join(".").join("g");
    let e = fails(&["sample", s(&g), "--n", "5", "--out", s(&dotted)]);
    assert!(e.contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&g).unwrap(), before);
    let e = fails(&["sample", s(&g), "--n", "5", "--out", s(&dir.join("g.dcw"))]);
    assert!(e.contains(".dcw"), "{e}");
    let npy = dir.join("c.npy");
    let e = fails(&[
        "sample",
        s(&g),
        "--n",
        "5",
        "--format",
        "hex",
        "--out",
        s(&npy),
    ]);
    assert!(e.contains("contradicts"), "{e}");
    assert!(!npy.exists());
    // Agreeing flag and extension are fine; so is a plot beside its input.
    ok(&[
        "sample",
        s(&g),
        "--n",
        "5",
        "--format",
        "npy",
        "--out",
        s(&npy),
    ]);
    let e = fails(&["plot", s(&g), "--n", "5", "--out", s(&dir.join("g"))]);
    assert!(e.contains("svg"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 4: Samples stream in chunks: the same bits for any chunk size, and a
/// practically endless `--n` into `| head` ends at once, quietly.
#[test]
fn item04_sample_streams_the_same_bits_in_any_chunks() {
    let dir = temp_dir("stream");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let want = runtime_hex(&f, 4, 3, 150);
    for chunk in ["1", "7", "64", "1000"] {
        let got = ok(&[
            "sample",
            s(&f),
            "--n",
            "150",
            "--seed",
            "4",
            "--first",
            "3",
            "--format",
            "hex",
            "--chunk",
            chunk,
        ]);
        assert_eq!(got, want, "chunk {chunk}");
    }
    let npy = |name: &str, chunk: &str| {
        let p = dir.join(name);
        ok(&[
            "sample",
            s(&f),
            "--n",
            "150",
            "--out",
            s(&p),
            "--chunk",
            chunk,
        ]);
        std::fs::read(p).unwrap()
    };
    assert_eq!(npy("a.npy", "150"), npy("b.npy", "11"));
    assert_eq!(hex_bits(&want).len(), 150);

    let start = Instant::now();
    let mut child = command(&["sample", s(&f), "--n", "99999999999999", "--format", "hex"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let head: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    drop(lines);
    let status = wait(&mut child, Duration::from_secs(60));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success() && err.is_empty(), "{status:?}: {err}");
    assert_eq!(head.join("\n") + "\n", runtime_hex(&f, 0, 0, 3));
    assert!(start.elapsed() < Duration::from_secs(60));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 5: The CSV `sample` writes (`x0,x1,log_w`) reads back as d = 2 in `fit`,
/// `plot --data` and `eval --data`, which say they drop `log_w`; headers
/// with coordinates out of order are refused.
#[test]
fn item05_csv_readers_recognise_log_w_and_the_header() {
    let dir = temp_dir("logw");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let csv = dir.join("samples.csv");
    ok(&[
        "sample",
        s(&f),
        "--n",
        "400",
        "--seed",
        "1",
        "--out",
        s(&csv),
    ]);
    assert!(std::fs::read_to_string(&csv)
        .unwrap()
        .starts_with("x0,x1,log_w\n"));
    let model = dir.join("m.dcw");
    let out = diffctl(&[
        "fit",
        "--data",
        s(&csv),
        "--out",
        s(&model),
        "--iterations",
        "20",
        "--batch",
        "64",
        "--channels",
        "8",
        "--layers",
        "2",
        "--threads",
        "1",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("dropping column log_w"), "{err}");
    assert!(stdout(&out).contains("samples, d = 2)"), "{}", stdout(&out));
    for args in [
        vec![
            "eval",
            s(&model),
            "--data",
            s(&csv),
            "--n-points",
            "50",
            "--times",
            "4",
        ],
        vec![
            "plot",
            s(&model),
            "--data",
            s(&csv),
            "--n",
            "50",
            "--out",
            "v.svg",
        ],
    ] {
        let mut args = args;
        let svg = dir.join("v.svg");
        if args[0] == "plot" {
            *args.last_mut().unwrap() = s(&svg);
        }
        let out = diffctl(&args);
        let err = stderr(&out);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("dropping column log_w"), "{args:?}: {err}");
    }
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "x1,x0\n1,2\n3,4\n").unwrap();
    let e = fails(&["eval", s(&model), "--data", s(&bad)]);
    assert!(e.contains("bad.csv") && e.contains("x0"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 6: Both spellings of integrators and losses work in flags and TOML, and
/// help, README and `inspect` list them the same way.
#[test]
fn item06_one_vocabulary_in_flags_toml_help_readme_and_inspect() {
    let dir = temp_dir("names");
    let names = "em|euler-maruyama, exp|exponential, flow|probability-flow";
    let long = dir.join("long.dcw");
    ok(&train_args(
        s(&long),
        &["--integrator", "euler-maruyama", "--loss", "log-variance"],
    ));
    assert!(ok(&["inspect", s(&long)]).contains("em|euler-maruyama"));
    let short = dir.join("short.dcw");
    ok(&train_args(
        s(&short),
        &["--integrator", "em", "--loss", "lv"],
    ));
    assert_eq!(
        std::fs::read(&long).unwrap(),
        std::fs::read(&short).unwrap()
    );
    let toml = dir.join("run.toml");
    std::fs::write(&toml, "integrator = \"em\"\nloss = \"lv\"\n").unwrap();
    let from_toml = dir.join("toml.dcw");
    ok(&train_args(s(&from_toml), &["--config", s(&toml)]));
    assert_eq!(
        std::fs::read(&long).unwrap(),
        std::fs::read(&from_toml).unwrap()
    );
    std::fs::write(&toml, "integrator = \"rk4\"\n").unwrap();
    let e = fails(&train_args(s(&from_toml), &["--config", s(&toml)]));
    assert!(e.contains(names), "{e}");

    let a = ok(&[
        "sample",
        s(&long),
        "--n",
        "20",
        "--integrator",
        "exponential",
        "--format",
        "hex",
    ]);
    let b = ok(&[
        "sample",
        s(&long),
        "--n",
        "20",
        "--integrator",
        "exp",
        "--format",
        "hex",
    ]);
    assert_eq!(a, b);
    for cmd in ["train", "sample", "eval", "plot"] {
        let help = ok(&[cmd, "--help"]).replace("\n          ", " ");
        assert!(help.contains(names), "{cmd} --help:\n{help}");
    }
    assert!(ok(&["train", "--help"]).contains("lv|log-variance or kl"));
    let readme = include_str!("../README.md");
    for want in [names, "lv|log-variance"] {
        assert!(readme.contains(want), "README lacks {want:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 7: `train` defaults to the exponential integrator (flags and TOML),
/// named in the start banner and recorded in the file.
#[test]
fn item07_train_defaults_to_the_exponential_integrator_and_says_so() {
    let dir = temp_dir("default-integrator");
    let w = dir.join("d.dcw");
    let out = diffctl(&train_args(s(&w), &[]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let banner = err.lines().next().unwrap();
    assert!(banner.contains("integrator exp|exponential"), "{banner}");
    let header = Model::parse(&std::fs::read(&w).unwrap()).unwrap().header;
    assert_eq!(header.integrator, Integrator::Exponential);
    let toml = dir.join("run.toml");
    std::fs::write(&toml, "batch = 32\n").unwrap();
    let w2 = dir.join("t.dcw");
    ok(&train_args(s(&w2), &["--config", s(&toml)]));
    assert_eq!(std::fs::read(&w).unwrap(), std::fs::read(&w2).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 8: `sample`, `eval` and `plot` share one rule: `--seed` defaults to 0.
#[test]
fn item08_seed_defaults_to_zero_everywhere() {
    let dir = temp_dir("seed");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let base = ["sample", s(&f), "--n", "6", "--format", "hex"];
    let none = ok(&base);
    let mut zero = base.to_vec();
    zero.extend(["--seed", "0"]);
    let mut one = base.to_vec();
    one.extend(["--seed", "1"]);
    assert_eq!(none, ok(&zero));
    assert_ne!(none, ok(&one));
    for cmd in ["sample", "eval", "plot"] {
        let help = ok(&[cmd, "--help"]);
        let block = option_block(&help, "--seed");
        assert!(block.contains("[default: 0]"), "{cmd}: {block}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 9: Errors name targets as users type them.
#[test]
fn item09_errors_use_the_names_users_type() {
    let dir = temp_dir("names-in-errors");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let e = fails(&["sample", s(&f), "--n", "3", "--target", "mw5"]);
    assert!(
        e.contains("trained on target gmm, not mw5 (d = 5, wells = 5, delta = 4)"),
        "{e}"
    );
    assert!(!e.contains("MultiWell") && !e.contains("Gmm"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The help text of option `flag` (its line and the indented lines below).
fn option_block(help: &str, flag: &str) -> String {
    let mut block = String::new();
    let mut inside = false;
    for line in help.lines() {
        let t = line.trim_start();
        // (Possible values are listed as "- name: ...".)
        if t.starts_with('-') && !t.starts_with("- ") {
            inside = t.split([' ', ',', '=']).any(|w| w == flag);
        }
        if inside {
            block.push_str(t);
            block.push(' ');
        }
    }
    block
}

/// Item 10: Every option that takes a value shows its default in `--help`
/// (those with none are listed here), and train's agree with TrainConfig.
#[test]
fn item10_help_shows_every_default() {
    // Options without a default: modes, required inputs and optional extras.
    let none = [
        "--target",
        "--config",
        "--target-config",
        "--resample",
        "--checkpoint",
        "--plot",
        "--data",
        "--help",
        "--version",
    ];
    for cmd in ["train", "sample", "eval", "plot", "fit", "demo"] {
        let help = ok(&[cmd, "--help"]);
        let flags: Vec<&str> = help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-') && l.contains('<'))
            .filter_map(|l| l.split([' ', ',']).find(|w| w.starts_with("--")))
            .collect();
        assert!(!flags.is_empty(), "{cmd}: {help}");
        for flag in flags {
            if none.contains(&flag) || (cmd == "sample" && flag == "--n") {
                continue;
            }
            let block = option_block(&help, flag);
            assert!(block.contains("[default: "), "{cmd} {flag}: {block}");
        }
    }
    let help = ok(&["train", "--help"]);
    let d = diffctl_trainer::train::TrainConfig::default();
    for (flag, value) in [
        ("--iterations", d.iterations.to_string()),
        ("--batch", d.batch.to_string()),
        ("--steps", d.steps.to_string()),
        ("--channels", d.channels.to_string()),
        ("--layers", d.layers.to_string()),
        ("--eval-every", d.eval_every.to_string()),
        ("--eval-samples", d.eval_samples.to_string()),
        ("--checkpoint-every", d.checkpoint_every.to_string()),
        ("--seed", d.seed.to_string()),
        ("--explore-decay", d.explore_decay.to_string()),
    ] {
        let block = option_block(&help, flag);
        assert!(
            block.contains(&format!("[default: {value}]")),
            "{flag}: {block}"
        );
    }
    for (flag, value) in [("--lr", d.lr), ("--lr-final", d.lr_final)] {
        let block = option_block(&help, flag);
        let shown: f32 = block
            .split("[default: ")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag}: {block}"));
        assert_eq!(shown, value, "{flag}");
    }
    let eval = ok(&["eval", "--help"]);
    for (flag, value) in [("--times", "64"), ("--n-points", "10000")] {
        assert!(option_block(&eval, flag).contains(value), "{flag}");
    }
}

/// Item 11: The probability-flow ODE has no path cost: `eval` says so and prints
/// moments, modes and sliced W2, never NaN.
#[test]
fn item11_eval_with_the_flow_says_there_is_no_path_cost() {
    let dir = temp_dir("flow");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let text = ok(&["eval", s(&f), "--n", "300", "--integrator", "flow"]);
    assert!(!text.to_lowercase().contains("nan"), "{text}");
    for want in [
        "no path cost",
        "E|x|^2",
        "sliced W2",
        "modes",
        "log Z (true)",
    ] {
        assert!(text.contains(want), "missing {want:?}:\n{text}");
    }
    assert!(
        !text.contains("log Z_is") && !text.contains("ESS "),
        "{text}"
    );
    let json = ok(&[
        "eval",
        s(&f),
        "--n",
        "300",
        "--integrator",
        "flow",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["path_cost"], false);
    assert!(
        v["estimates"].is_null() && v["sliced_w2"].is_number(),
        "{json}"
    );
    let with_cost = ok(&["eval", s(&f), "--n", "300", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&with_cost).unwrap();
    assert_eq!(v["path_cost"], true);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 12: The progress line shows log Z with its ESS and the iteration it was
/// computed at, each estimate once; nothing before the first one.
#[test]
fn item12_progress_shows_fresh_estimates_with_ess_and_iteration() {
    let dir = temp_dir("progress");
    let w = dir.join("p.dcw");
    // 20 iterations: a log line per iteration, an evaluation every 5.
    let out = diffctl(&train_args(
        s(&w),
        &["--iterations", "20", "--eval-every", "5"],
    ));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let mut seen = Vec::new();
    for line in err.lines().filter(|l| l.starts_with("iteration")) {
        let it: usize = line["iteration".len()..]
            .trim_start()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        if let Some(rest) = line.split("log Z_is ").nth(1) {
            assert!(rest.contains("(ESS "), "{line}");
            let at: usize = rest
                .split("at iteration ")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!(at, it, "an estimate is shown when it is new: {line}");
            seen.push(at);
        }
    }
    assert_eq!(seen, vec![5, 10, 15], "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 13: The likelihood bound is reported in one sign convention, labelled:
/// negative log-likelihood per point and per dimension (= per point / d).
#[test]
fn item13_likelihood_output_has_one_labelled_sign() {
    let dir = temp_dir("nll");
    let model = dir.join("m.dcw");
    ok(&[
        "fit",
        "--data",
        "toy:gmm",
        "--n",
        "500",
        "--out",
        s(&model),
        "--iterations",
        "20",
        "--batch",
        "64",
        "--channels",
        "8",
        "--layers",
        "2",
        "--threads",
        "1",
    ]);
    let args = [
        "eval",
        s(&model),
        "--data",
        "toy:gmm",
        "--n-points",
        "100",
        "--times",
        "4",
    ];
    let text = ok(&args);
    let value = |key: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line[key.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (point, dim) = (value("NLL per point"), value("NLL per dim"));
    assert!(text.contains("-log p_model"), "{text}");
    assert!(
        (point - 2.0 * dim).abs() < 1e-3 * point.abs().max(1.0),
        "{text}"
    );
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&ok(&json_args)).unwrap();
    let (jp, jd) = (
        v["nll_per_point"].as_f64().unwrap(),
        v["nll_per_dim"].as_f64().unwrap(),
    );
    assert!(
        (jp - 2.0 * jd).abs() < 1e-9 && v.get("bound").is_none(),
        "{v}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 14: A resumed run says from which iteration; `plot --coords` is checked
/// before sampling; `eval` without a target names `--target` and `--data`;
/// `fit` with fewer rows than the batch warns.
#[test]
fn item14_resume_coords_missing_target_and_small_data() {
    let dir = temp_dir("misc");
    // Resume: interrupt a run, then continue it (and interrupt it again).
    let (w, c) = (dir.join("r.dcw"), dir.join("r.ckpt"));
    let args = train_args(
        s(&w),
        &[
            "--iterations",
            "100000",
            "--checkpoint",
            s(&c),
            "--eval-every",
            "0",
            "--resume",
        ],
    );
    // Runs `args` until standard error has a line starting with `until`
    // (then waits `pause`), stops it with Ctrl-C; returns all of standard error.
    let interrupted = |until: &str, pause: Duration| -> String {
        let mut child = command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "no {until:?} in {text}"
            );
            text.push_str(&line);
            if line.starts_with(until) {
                break;
            }
        }
        std::thread::sleep(pause);
        let killed = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = wait(&mut child, TIMEOUT);
        err.read_to_string(&mut text).unwrap();
        assert_eq!(status.code(), Some(130), "{text}");
        text
    };
    let first = interrupted("training", Duration::from_millis(700));
    assert!(first.contains("starting at iteration 0"), "{first}");
    let stopped: usize = first
        .split("interrupted after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert!(stopped > 1, "{first}");
    let second = interrupted("resumed at", Duration::ZERO);
    assert!(second.contains("resuming from checkpoint"), "{second}");
    assert!(
        second.contains(&format!("resumed at iteration {stopped} of 100000")),
        "{second}"
    );

    // plot --coords 7 on a 2-d model: refused before drawing 10^8 samples.
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let out = run(
        &mut command(&[
            "plot",
            s(&f),
            "--coords",
            "0,7",
            "--n",
            "100000000",
            "--out",
            s(&dir.join("p.svg")),
        ]),
        Duration::from_secs(20),
    );
    let e = stderr(&out);
    assert!(!out.status.success() && e.contains("coordinate 7"), "{e}");

    let free = weights_file(&dir, "free.dcw", None, 2);
    let e = fails(&["eval", s(&free)]);
    assert!(e.contains("--target") && e.contains("--data"), "{e}");

    let rows = dir.join("rows.csv");
    std::fs::write(&rows, "x0,x1\n".to_string() + &"0.5,1.5\n-1,2\n".repeat(10)).unwrap();
    let out = diffctl(&[
        "fit",
        "--data",
        s(&rows),
        "--out",
        s(&dir.join("f.dcw")),
        "--iterations",
        "5",
        "--channels",
        "8",
        "--layers",
        "2",
        "--threads",
        "1",
    ]);
    let err = stderr(&out);
    assert!(
        err.contains("warning: ") && err.contains("fewer than the batch of 1024"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Item 15: README states the demo's time as measured, with the machine.
#[test]
fn item15_readme_states_measured_demo_times_with_the_machine() {
    let readme = include_str!("../README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run --release -- demo"))
        .expect("the demo command in README");
    assert!(!line.contains("about 70 s"), "{line}");
    let section = &readme[readme
        .find("Measured demo times")
        .expect("a measured-times note")..];
    let section = &section[..section.len().min(1200)];
    for want in ["lscpu", "cores", "demo --quick", "build"] {
        assert!(section.contains(want), "missing {want:?} in\n{section}");
    }
}

/// Item 16: The 2-d plot: labelled target contours, log Z error and ESS in the
/// caption, and a small SVG (at most 2000 points drawn).
#[test]
fn item16_the_2d_plot_is_labelled_and_small() {
    let dir = temp_dir("plot");
    let f = weights_file(&dir, "gmm.dcw", Some(TargetSpec::Gmm), 2);
    let svg_path = dir.join("g.svg");
    ok(&["plot", s(&f), "--n", "10000", "--out", s(&svg_path)]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.len() < 400_000, "{} bytes", svg.len());
    for want in [
        "log Z error",
        "ESS",
        "target log-density, nats below its peak",
        "the first 2000 of 10000",
        "<polyline",
    ] {
        assert!(svg.contains(want), "missing {want:?}");
    }
    let dots = svg.matches("<circle").count();
    assert!((100..=2001).contains(&dots), "{dots} points");
    assert!(svg.matches("<rect").count() < 10, "density cells are back");
    std::fs::remove_dir_all(&dir).unwrap();
}
