//! Helpers shared by the end-to-end tests of the `diffctl` binary.
// Each test binary uses a subset.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::normal::{fill_normals, stream};
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::encode;

/// Longest any one `diffctl` run of a test may take before it is killed
/// and the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(300);

/// The built `diffctl`, not yet started.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_diffctl"));
    c.args(args);
    c
}

/// Runs the built `diffctl` with `args` (killed after [`TIMEOUT`]).
pub fn diffctl(args: &[&str]) -> Output {
    run(&mut command(args), TIMEOUT)
}

/// Runs `cmd` to the end with its output captured; kills it and panics
/// after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the diffctl binary runs");
    // Drain both pipes while waiting, so a full pipe cannot stall the child.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait(&mut child, timeout);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits for `child`; kills it and panics after `timeout`.
pub fn wait(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for diffctl") {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("diffctl took longer than {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
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

/// A small weights file with pseudo-random parameters (the runtime's own
/// streams), so the network's arithmetic shows in every sample.
pub fn weights_file(dir: &Path, name: &str, target: Option<TargetSpec>, d: u32) -> PathBuf {
    let header = Header {
        sampler: SamplerKind::Dis,
        shape: NetworkShape {
            d,
            channels: 16,
            layers: 3,
            score_term: target.is_some(),
        },
        sde: Sde::default(),
        grid: TimeGrid::Uniform,
        steps: 30,
        integrator: Integrator::EulerMaruyama,
        prior_nu: 1.0,
        score_clip: 100.0,
        target,
        dtype: Dtype::F32,
    };
    let mut params = vec![0.0f32; header.param_count()];
    fill_normals(&mut stream(7, 0), &mut params);
    params.iter_mut().for_each(|p| *p *= 0.05);
    let path = dir.join(name);
    std::fs::write(&path, encode(&header, &params).unwrap()).unwrap();
    path
}

/// The device-check lines of samples `first .. first + n` under `seed`,
/// drawn with the runtime directly (one lockstep batch).
pub fn runtime_hex(path: &Path, seed: u64, first: u64, n: usize) -> String {
    let bytes = std::fs::read(path).unwrap();
    let model = Model::parse(&bytes).unwrap();
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).unwrap();
    let net = NetworkRef::from_flat(header.shape, &params).unwrap();
    let target = model.target();
    let sampler = header.sampler_for(net, target, None, None).unwrap();
    let d = header.shape.d as usize;
    let mut xs = vec![0.0f32; n * d];
    let mut paths = vec![PathState::default(); n];
    let mut work = vec![0.0f32; sampler.work_len(n)];
    sampler
        .sample(seed, first, &mut xs, &mut paths, &mut work)
        .unwrap();
    let mut out = String::new();
    for (i, x) in xs.chunks_exact(d).enumerate() {
        write_sample_line(&mut out, seed, first + i as u64, x).unwrap();
    }
    out
}

/// Parses hex lines back into `f32` bits, row by row.
pub fn hex_bits(text: &str) -> Vec<Vec<u32>> {
    text.lines()
        .map(|l| {
            l.split(' ')
                .skip(2)
                .map(|h| u32::from_str_radix(h, 16).unwrap())
                .collect()
        })
        .collect()
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

/// Training flags of a tiny run (well under a second): 12 iterations, batch
/// 32, K = 20, C = 8, L = 2, 64 evaluation paths, one thread.
pub const TINY_TRAIN: [&str; 14] = [
    "--iterations",
    "12",
    "--batch",
    "32",
    "--steps",
    "20",
    "--channels",
    "8",
    "--layers",
    "2",
    "--eval-samples",
    "64",
    "--threads",
    "1",
];
