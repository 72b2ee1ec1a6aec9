//! `diffctl fit`, `eval --data` and `plot --data` end to end with the built
//! binary: a small fit on toy data writes a DSM weights file without a
//! target that `inspect`, `sample`, `eval --data` and `plot --data` accept;
//! bad data give one line `error: ...` and a non-zero exit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use diffctl_trainer::data::{to_npy, Toy};

mod common;

use common::{fails, fails_with, ok};

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("fit", name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small, fast fit (about a second): tiny network, few iterations, one thread.
const SMALL: [&str; 12] = [
    "--iterations",
    "200",
    "--batch",
    "128",
    "--channels",
    "16",
    "--layers",
    "2",
    "--threads",
    "1",
    "--seed",
    "3",
];

fn fit_small(data: &str, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["fit", "--data", data, "--out", s(out)];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    ok(&args)
}

/// The value after `key` on the line starting with `key`.
fn field(report: &str, key: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no line {key:?} in {report}"));
    line[key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?}: {line}"))
}

#[test]
fn fit_then_inspect_sample_eval_and_plot() {
    let dir = temp_dir("flow");
    let model = dir.join("gmm.dcw");
    let fit_svg = dir.join("fit.svg");
    let report = fit_small("toy:gmm", &model, &["--n", "2000", "--plot", s(&fit_svg)]);
    assert!(
        report.contains("train/validation 1800 / 200 samples"),
        "{report}"
    );
    assert!(field(&report, "best validation").is_finite(), "{report}");
    assert!(report.contains("early stop       no"), "{report}");
    assert!(model.exists() && !dir.join("gmm.dcw.tmp").exists());
    let svg = std::fs::read_to_string(&fit_svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<circle"));

    // A DSM file with no target built in.
    let header = ok(&["inspect", s(&model)]);
    assert!(header.contains("DSM"), "{header}");
    assert!(header.contains("none built in"), "{header}");

    // The runtime samples it: no target, so no log_w column.
    let csv = ok(&["sample", s(&model), "--n", "5", "--seed", "1"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6, "{csv}");
    assert_eq!(lines[0], "x0,x1");
    for l in &lines[1..] {
        let v: Vec<f32> = l.split(',').map(|x| x.parse().unwrap()).collect();
        assert!(v.len() == 2 && v.iter().all(|x| x.is_finite()), "{l}");
    }

    // The same fit is reproducible bit for bit.
    let again = dir.join("again.dcw");
    fit_small("toy:gmm", &again, &["--n", "2000"]);
    assert_eq!(
        std::fs::read(&model).unwrap(),
        std::fs::read(&again).unwrap()
    );

    // The likelihood bound on held-out data: generated, and from a file.
    let bound = ok(&[
        "eval",
        s(&model),
        "--data",
        "toy:gmm",
        "--n-points",
        "300",
        "--threads",
        "1",
    ]);
    let nats = field(&bound, "NLL per dim");
    let se = field(&bound, "std error");
    assert!(nats.is_finite() && se.is_finite() && se > 0.0, "{bound}");
    assert!(bound.contains("points           300 (d = 2"), "{bound}");

    let held_out = dir.join("held_out.csv");
    let data = Toy::by_name("gmm").unwrap().generate(400, 99).unwrap();
    let mut body = String::from("x0,x1\n");
    for x in data.xs.chunks_exact(2) {
        body.push_str(&format!("{},{}\n", x[0], x[1]));
    }
    std::fs::write(&held_out, body).unwrap();
    let json = ok(&[
        "eval",
        s(&model),
        "--data",
        s(&held_out),
        "--json",
        "--threads",
        "1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["n"], 400);
    assert_eq!(v["d"], 2);
    assert!(v["nll_per_dim"].as_f64().unwrap().is_finite(), "{json}");
    assert!(v["std_error"].as_f64().unwrap().is_finite(), "{json}");

    // Without data or a target, eval has nothing to compare with (the existing error).
    let e = fails(&["eval", s(&model)]);
    assert!(e.contains("no target"), "{e}");

    // Plots against data: side by side in 2-d, histograms for chosen coordinates.
    let svg_path = dir.join("versus.svg");
    ok(&[
        "plot",
        s(&model),
        "--data",
        s(&held_out),
        "--out",
        s(&svg_path),
        "--n",
        "500",
    ]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<circle"));
    let hist = dir.join("hist.svg");
    ok(&[
        "plot",
        s(&model),
        "--data",
        "toy:gmm",
        "--coords",
        "0,1",
        "--out",
        s(&hist),
        "--n",
        "500",
    ]);
    let svg = std::fs::read_to_string(&hist).unwrap();
    assert!(svg.contains("<polyline") || svg.contains("<path"));

    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn npy_data_fit() {
    let dir = temp_dir("npy");
    let npy = dir.join("moons.npy");
    let data = Toy::by_name("moons").unwrap().generate(500, 1).unwrap();
    std::fs::write(&npy, to_npy(&data)).unwrap();
    let model = dir.join("moons.dcw");
    let report = fit_small(s(&npy), &model, &["--validation", "0.2", "--dtype", "f16"]);
    assert!(
        report.contains("train/validation 400 / 100 samples"),
        "{report}"
    );
    let header = ok(&["inspect", s(&model)]);
    assert!(header.contains("f16"), "{header}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_file_sets_fit_keys() {
    let dir = temp_dir("config");
    let cfg = dir.join("fit.toml");
    std::fs::write(
        &cfg,
        "channels = 8\nlayers = 2\niterations = 50\nbatch = 64\npatience = 0\n",
    )
    .unwrap();
    let model = dir.join("m.dcw");
    let out = ok(&[
        "fit",
        "--data",
        "toy:moons",
        "--n",
        "300",
        "--config",
        s(&cfg),
        "--threads",
        "1",
        "--iterations",
        "40",
        "--out",
        s(&model),
    ]);
    assert!(out.contains("no (40 iterations)"), "{out}");
    let header = ok(&["inspect", s(&model)]);
    assert!(header.contains("C = 8 channels, L = 2 layers"), "{header}");

    std::fs::write(&cfg, "chanels = 8\n").unwrap();
    let e = fails(&["fit", "--data", "toy:moons", "--config", s(&cfg)]);
    assert!(e.contains("fit.toml") && e.contains("chanels"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_data_gives_one_line_errors() {
    let dir = temp_dir("bad");
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let ragged = write("ragged.csv", "1,2\n3,4\n5\n");
    let nan = write("nan.csv", "1,2\n3,nan\n");
    let empty = write("empty.csv", "");
    let words = write("words.csv", "1,2\n3,abc\n");
    let three = write("three.csv", "1,2,3\n4,5,6\n7,8,9\n");
    let bad_npy = write("bad.npy", "\u{93}NUMPY garbage");
    let missing = dir.join("missing.csv");
    let out = dir.join("m.dcw");

    let cases: [(&Path, &[&str]); 6] = [
        (&ragged, &["line 3", "ragged"]),
        (&nan, &["line 2, column 2", "NaN"]),
        (&empty, &["empty"]),
        (&words, &["line 2, column 2", "not a number"]),
        (&bad_npy, &["npy"]),
        (&missing, &["cannot read"]),
    ];
    for (path, needles) in cases {
        let e = fails(&["fit", "--data", s(path), "--out", s(&out)]);
        assert!(e.contains(s(path)), "{e}");
        for n in needles {
            assert!(e.contains(n), "{path:?}: {e} lacks {n:?}");
        }
        assert!(!out.exists());
    }
    for args in [
        &["fit", "--data", "toy:nope"][..],
        &["fit", "--data", s(&three), "--n", "10"],
        &["fit", "--data", "toy:moons", "--n", "0"],
        &["fit", "--data", "toy:moons", "--validation", "1.5"],
        &["fit", "--data", "toy:moons", "--batch", "0"],
        &["fit", "--data", "toy:moons", "--threads", "0"],
        &["fit", "--data", "toy:moons", "--plot", "x.png"],
        &["fit", "--data", "toy:moons", "--lr", "nan"],
        &["fit"],
    ] {
        fails(args);
    }

    // A model of d = 2 against data of d = 3 names both dimensions.
    let model = dir.join("two.dcw");
    fit_small("toy:moons", &model, &["--n", "300"]);
    for cmd in ["eval", "plot"] {
        let e = fails(&[cmd, s(&model), "--data", s(&three)]);
        assert!(e.contains("d = 3") && e.contains("d = 2"), "{e}");
        let e = fails(&[cmd, s(&model), "--data", s(&ragged)]);
        assert!(e.contains("ragged"), "{e}");
        let e = fails(&[cmd, s(&model), "--data", s(&nan)]);
        assert!(e.contains("NaN"), "{e}");
        let e = fails(&[cmd, s(&model), "--data", s(&empty)]);
        assert!(e.contains("empty"), "{e}");
        let e = fails(&[cmd, s(&model), "--data", "toy:mw5"]);
        assert!(e.contains("d = 5") && e.contains("d = 2"), "{e}");
        fails(&[cmd, s(&model), "--data", s(&missing)]);
        fails(&[cmd, s(&model), "--data", "toy:moons", "--target", "gmm"]);
    }
    fails(&["eval", s(&model), "--data", "toy:moons", "--n-points", "0"]);
    fails(&["eval", s(&model), "--data", "toy:moons", "--times", "0"]);
    fails(&["eval", s(&model), "--n-points", "10"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C (SIGINT) stops the fit: the best weights so far are written, exit 130.
/// Every wait is bounded: a fit that never starts, ignores SIGINT or hangs
/// while writing fails the test (the process is killed) instead of hanging it.
#[cfg(unix)]
#[test]
fn interrupt_writes_the_weights_so_far() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = temp_dir("sigint");
    let model = dir.join("m.dcw");
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffctl"))
        .args([
            "fit",
            "--data",
            "toy:moons",
            "--n",
            "500",
            "--iterations",
            "100000000",
            "--batch",
            "64",
            "--channels",
            "8",
            "--layers",
            "2",
            "--threads",
            "1",
            "--patience",
            "0",
            "--out",
            s(&model),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout_pipe = common::drain(child.stdout.take().unwrap());
    // Standard error line by line through a channel, so that waiting for the
    // first line has a time limit.
    let (tx, rx) = mpsc::channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The first line is printed once the fit has started (Ctrl-C is caught from then on).
    let first = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no first line on stderr within 60 s ({e}); fit killed");
        }
    };
    assert!(first.starts_with("fitting DSM"), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let Some(status) = common::wait_timeout(&mut child, Duration::from_secs(60)) else {
        panic!("the fit did not stop within 60 s of SIGINT (killed)");
    };
    let rest: Vec<String> = rx.iter().collect();
    let rest = rest.join("\n");
    let report = String::from_utf8(stdout_pipe.join().unwrap()).unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(report.contains("interrupted by Ctrl-C"), "{report}");
    let header = ok(&["inspect", s(&model)]);
    assert!(header.contains("DSM"), "{header}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `fit --checkpoint` writes a checkpoint; `--resume` from a finished one
/// exports the same weights (a mid-run resume is bit-identical too:
/// trainer/tests/dsm.rs); a checkpoint of other data is refused.
#[test]
fn checkpoint_and_resume() {
    let dir = temp_dir("resume");
    let (a, b, ckpt) = (dir.join("a.dcw"), dir.join("b.dcw"), dir.join("fit.ckpt"));
    fit_small(
        "toy:moons",
        &a,
        &["--checkpoint", s(&ckpt), "--checkpoint-every", "50"],
    );
    assert!(ckpt.exists() && !dir.join("fit.ckpt.tmp").exists());
    fit_small("toy:moons", &b, &["--checkpoint", s(&ckpt), "--resume"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let mut args = vec!["fit", "--data", "toy:checkerboard", "--out", s(&b)];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(&["--checkpoint", s(&ckpt), "--resume"]);
    let out = common::diffctl(&args);
    let err = common::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("resuming from checkpoint"), "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("error: ") && l.contains("different target or data")),
        "{err}"
    );
    fails_with(&["fit", "--data", "toy:moons", "--resume"], "--checkpoint");
    std::fs::remove_dir_all(&dir).unwrap();
}
