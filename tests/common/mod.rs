//! Helpers shared by the end-to-end tests of the `diffctl` binary.
// Each test binary uses a subset.
#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `diffctl` run may take before the test fails (and the
/// process is killed): a hang must fail, not stall CI. The slowest run in
/// these tests (`demo --quick`) takes about 20 s on one core; override with
/// `DIFFCTL_TEST_TIMEOUT_SECS`.
pub fn process_timeout() -> Duration {
    let secs = std::env::var("DIFFCTL_TEST_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// Waits for `child` at most `limit`; on time-out kills it (and reaps it)
/// and returns `None`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child process") {
            return Some(status);
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads a pipe to its end on a thread (so a full pipe cannot block the child).
pub fn drain<R: Read + Send + 'static>(pipe: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Runs the built `diffctl` with `args`; panics (after killing it) if it
/// runs longer than [`process_timeout`].
pub fn diffctl(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_diffctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the diffctl binary runs");
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let limit = process_timeout();
    let status = wait_timeout(&mut child, limit);
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let Some(status) = status else {
        panic!(
            "diffctl {args:?} did not finish within {limit:?} (killed); stderr: {}",
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
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

/// [`fails`], and the error line contains `needle` (which error it is).
pub fn fails_with(args: &[&str], needle: &str) -> String {
    let e = fails(args);
    assert!(
        e.contains(needle),
        "diffctl {args:?}: {e:?} lacks {needle:?}"
    );
    e
}
