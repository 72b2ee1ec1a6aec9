//! The presets of issue 15 (`gmm25`, `manywell32`) through `train`, `eval`,
//! `sample` and `plot`, and the committed training configs
//! `benches/<target>.toml`, which must keep parsing and training.

mod common;

use common::{diffctl, fails, ok, stderr, temp_dir};

/// Runs `args`, checks success and returns standard error (the banner).
fn ok_stderr(args: &[&str]) -> String {
    let out = diffctl(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stderr(&out)
}

use common::TINY_TRAIN as TINY;

#[test]
fn new_presets_train_eval_sample_and_plot() {
    let dir = temp_dir("presets", "new");
    for (name, d, log_z, modes) in [
        ("gmm25", 2, "0.0000", 25),
        ("manywell32", 32, "164.6957", 65536),
    ] {
        let w = dir.join(format!("{name}.dcw"));
        let w = w.to_str().unwrap();
        let mut args = vec!["train", "--target", name, "--out", w];
        args.extend(TINY);
        ok(&args);
        let eval = ok(&["eval", w, "--n", "2000", "--threads", "1"]);
        assert!(
            eval.contains(&format!("log Z (true)     {log_z}")),
            "{eval}"
        );
        assert!(
            eval.contains(&format!("modes            {modes} ")),
            "{eval}"
        );
        let csv = ok(&["sample", w, "--n", "3", "--format", "csv"]);
        let header = csv.lines().next().unwrap();
        assert!(header.contains(&format!("x{},", d - 1)), "{header}");
        assert!(!header.contains(&format!("x{},", d)), "{header}");
        let svg = dir.join(format!("{name}.svg"));
        ok(&["plot", w, "--n", "500", "--out", svg.to_str().unwrap()]);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    }
    // The many-well's dimension is any even number.
    let w = dir.join("mw4.dcw");
    let mut args = vec![
        "train",
        "--target",
        "manywell32",
        "--dim",
        "4",
        "--out",
        w.to_str().unwrap(),
    ];
    args.extend(TINY);
    let banner = ok_stderr(&args);
    assert!(
        banner.contains("many-well, d = 4, 2 asymmetric"),
        "{banner}"
    );
    let e = fails(&["train", "--target", "manywell32", "--dim", "5"]);
    assert!(e.contains("even"), "{e}");
    let e = fails(&["train", "--target", "manywell32", "--delta", "2"]);
    assert!(e.contains("--delta"), "{e}");
    let e = fails(&["train", "--target", "gmm25", "--dim", "3"]);
    assert!(e.contains("2-d"), "{e}");
    for cmd in ["train", "eval", "sample", "plot"] {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("gmm25 or manywell32"), "{cmd} --help");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_configs_parse_and_train() {
    let dir = temp_dir("presets", "configs");
    let root = env!("CARGO_MANIFEST_DIR");
    for (name, banner) in [
        ("gmm25", "DIS (log-variance loss) on gmm25"),
        ("manywell32", "DDS (log-variance loss) on manywell32"),
        ("funnel", "DIS (log-variance loss) on funnel"),
        ("dw20-dis", "DIS (log-variance loss) on dw20"),
        ("mw50-dis", "DIS (log-variance loss) on mw50"),
        ("gmm-5s", "DIS (log-variance loss) on gmm"),
        ("dw20-60s", "DDS (log-variance loss) on dw20"),
    ] {
        let config = format!("{root}/benches/{name}.toml");
        let w = dir.join(format!("{name}.dcw"));
        let mut args = vec!["train", "--config", &config, "--out", w.to_str().unwrap()];
        args.extend(TINY);
        let out = ok_stderr(&args);
        assert!(out.contains(banner), "{name}: {out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
