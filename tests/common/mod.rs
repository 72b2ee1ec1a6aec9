//! Helpers shared by the end-to-end tests of the `diffctl` binary.
// Each test binary uses a subset.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the built `diffctl` with `args`.
pub fn diffctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffctl"))
        .args(args)
        .output()
        .expect("the diffctl binary runs")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("UTF-8 output")
}

/// Runs `args` and checks success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = diffctl(args);
    assert!(
        out.status.success(),
        "diffctl {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `args` and checks the failure: non-zero exit, no panic, exactly one
/// line on standard error starting with `error:`. Returns that line.
pub fn fails(args: &[&str]) -> String {
    let out = diffctl(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "diffctl {args:?} succeeded");
    assert_ne!(
        out.status.code(),
        Some(101),
        "diffctl {args:?} panicked: {err}"
    );
    assert!(
        err.starts_with("error: ") && err.ends_with('\n') && err.lines().count() == 1,
        "diffctl {args:?}: stderr is not one `error:` line: {err:?}"
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
    err.trim_end().to_owned()
}

/// A fresh, empty directory for one test (`group` names the test file).
pub fn temp_dir(group: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("diffctl-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
