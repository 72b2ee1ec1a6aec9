//! The `diffctl` Python module: train a diffusion sampler on a density
//! written in Python (or a built-in one), sample it with the runtime, and
//! estimate `log Z`.
//!
//! | file | what |
//! |---|---|
//! | [`density`] | a Python `log_density` (and `score`) as the runtime's `Target` |
//! | [`settings`] | keyword arguments to a `TrainConfig`; targets named by a string |
//! | [`model`] | `diffctl.Model`: sample, estimate, save, header |
//!
//! Rust work runs without the GIL; a Python density takes it only for its
//! own calls, one per block of paths. See `python/README.md`.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diffctl_runtime::target::MAX_TARGET_DIM;
use diffctl_runtime::weights::Model as File;
use diffctl_trainer::optimise::{RunOptions, TrainError};
use diffctl_trainer::train::{self as trainer, Progress};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

mod density;
mod model;
mod settings;

use density::PyDensity;
use model::{Density, Model};

/// The density a `target` argument names: a preset or TOML file (a
/// string), or a Python function of `dim` variables.
fn density(
    target: &Bound<'_, PyAny>,
    dim: Option<usize>,
    score: Option<Py<PyAny>>,
) -> PyResult<Density> {
    if let Ok(name) = target.cast::<PyString>() {
        if score.is_some() {
            return Err(PyValueError::new_err(
                "score= goes with a Python log_density, not a named target",
            ));
        }
        let t = settings::named_target(&name.extract::<String>()?)?;
        if let Some(d) = dim.filter(|&d| d != t.dim()) {
            return Err(PyValueError::new_err(format!(
                "target {name} has dimension {}, not dim={d}",
                t.dim()
            )));
        }
        return Ok(Density::Rust(t));
    }
    if !target.is_callable() {
        return Err(PyTypeError::new_err(format!(
            "target must be a function log_density(x), a preset name or a TOML file, got {}",
            target.get_type().name()?
        )));
    }
    let dim = dim.ok_or_else(|| PyValueError::new_err("dim= is required with a Python density"))?;
    if dim == 0 || dim > MAX_TARGET_DIM as usize {
        return Err(PyValueError::new_err(format!(
            "dim must be in 1..={MAX_TARGET_DIM}, got {dim}"
        )));
    }
    if let Some(s) = &score {
        if !s.bind(target.py()).is_callable() {
            return Err(PyTypeError::new_err("score must be a function score(x)"));
        }
    }
    Ok(Density::Python(Arc::new(PyDensity::new(
        dim,
        target.clone().unbind(),
        score,
    ))))
}

/// Trains a sampler (see the module's README for every setting).
///
/// `target`: a function `log_density(x)` taking a float64 array `(n, dim)`
/// and returning `(n,)` (give `dim`, and `score(x) -> (n, dim)` or return
/// `(value, grad)` from `log_density`); or a preset name (`"gmm"`, ...); or a
/// TOML file with a `[target]` table. Settings are `TrainConfig` keys, with
/// the command line's defaults: `sampler="dis"`, `loss="log-variance"`,
/// `iterations=2000`, `batch=512`, `steps=100`, `integrator="exp"`, `seed=0`,
/// `threads=None` (all cores), `lr=5e-3`, ... Ctrl-C stops training and
/// returns the model of the last completed iteration.
#[pyfunction]
#[pyo3(signature = (target, dim=None, score=None, *, progress=true, **settings))]
fn train(
    py: Python<'_>,
    target: &Bound<'_, PyAny>,
    dim: Option<usize>,
    score: Option<Py<PyAny>>,
    progress: bool,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<Model> {
    let density = density(target, dim, score)?;
    let empty = PyDict::new(py);
    let cfg = settings::train_config(settings.unwrap_or(&empty))?;
    let stop = Arc::new(AtomicBool::new(false));
    let signal: Mutex<Option<PyErr>> = Mutex::new(None);
    let mut printer = Printer::new(progress);
    let (result, failure) = density.run(py, stop.clone(), |target| {
        let target = target.expect("training always has a target");
        let run = RunOptions {
            stop: Some(&stop),
            ..RunOptions::default()
        };
        trainer::train(&cfg, target, &run, &mut |p| {
            Python::attach(|py| {
                // Ctrl-C while Rust runs: Python's handler has run, and its
                // KeyboardInterrupt is raised here. Training stops after
                // this iteration and keeps it.
                if let Err(e) = py.check_signals() {
                    stop.store(true, Ordering::SeqCst);
                    lock(&signal).get_or_insert(e);
                }
                printer.show(py, p);
            })
        })
    });
    // An exception in the density is raised as it was; a KeyboardInterrupt
    // (inside the density's call, or seen between iterations) returns the
    // model of the last completed iteration.
    let interrupt = match failure.or_else(|| lock(&signal).take()) {
        Some(e) if !e.is_instance_of::<PyKeyboardInterrupt>(py) => return Err(e),
        other => other,
    };
    let outcome = match (result, interrupt.is_some()) {
        (Ok(o), _) => o,
        (Err(_), true) => return Err(interrupt.expect("checked")),
        (Err(e), false) => return Err(train_error(e)),
    };
    if interrupt.is_some() {
        write_stderr(
            py,
            &format!(
                "\ndiffctl: interrupted after {} of {} iterations; returning the model reached so far\n",
                outcome.iterations, cfg.iterations
            ),
        )?;
    }
    Ok(Model {
        weights: outcome.weights,
        header: outcome.header,
        density,
        iterations: outcome.iterations,
        interrupted: outcome.interrupted || interrupt.is_some(),
    })
}

/// A mutex's contents even if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The progress line on stderr: rewritten in place at most twice a second
/// on a terminal, else a line every tenth of the run.
struct Printer {
    on: bool,
    last: Option<Instant>,
    tenth: usize,
}

impl Printer {
    fn new(on: bool) -> Self {
        Self {
            on,
            last: None,
            tenth: 0,
        }
    }

    fn show(&mut self, py: Python<'_>, p: &Progress) {
        if !self.on {
            return;
        }
        let done = p.step.iteration == p.step.iterations;
        let tty = stderr_is_tty(py);
        let due = if tty {
            self.last
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
        } else {
            let tenth = 10 * p.step.iteration / p.step.iterations.max(1);
            std::mem::replace(&mut self.tenth, tenth) != tenth
        };
        if !(due || done) {
            return;
        }
        self.last = Some(Instant::now());
        let mut line = format!(
            "diffctl: iteration {}/{}  loss {:.4}  {:.0} s",
            p.step.iteration,
            p.step.iterations,
            p.step.loss,
            p.step.elapsed.as_secs_f64()
        );
        if let Some(e) = &p.last_eval {
            line += &format!(
                "  log Z_is {:.4} (ESS {:.2})",
                e.estimates.log_z_is, e.estimates.ess
            );
        }
        let line = match (tty, done) {
            (true, false) => format!("\r{line}\x1b[K"),
            (true, true) => format!("\r{line}\x1b[K\n"),
            (false, _) => format!("{line}\n"),
        };
        let _ = write_stderr(py, &line);
    }
}

fn stderr_is_tty(py: Python<'_>) -> bool {
    py.import("sys")
        .and_then(|s| s.getattr("stderr")?.call_method0("isatty")?.extract())
        .unwrap_or(false)
}

fn write_stderr(py: Python<'_>, text: &str) -> PyResult<()> {
    let stderr = py.import("sys")?.getattr("stderr")?;
    if stderr.is_none() {
        let _ = std::io::stderr().write_all(text.as_bytes());
        return Ok(());
    }
    stderr.call_method1("write", (text,))?;
    stderr.call_method0("flush")?;
    Ok(())
}

/// Loads a weights file. `target`: the density it was trained on when the
/// file cannot name it (a Python function, with `score`), or a TOML file
/// for a data-defined target; presets and stored mixtures need nothing.
#[pyfunction]
#[pyo3(signature = (path, target=None, score=None))]
fn load(
    py: Python<'_>,
    path: std::path::PathBuf,
    target: Option<&Bound<'_, PyAny>>,
    score: Option<Py<PyAny>>,
) -> PyResult<Model> {
    let bytes = std::fs::read(&path)
        .map_err(|e| PyOSError::new_err(format!("cannot read {}: {e}", path.display())))?;
    from_bytes(py, bytes, target, score)
        .map_err(|e| PyValueError::new_err(format!("{}: {}", path.display(), e.value(py))))
}

/// [`load`] from the bytes of a weights file (what pickling uses).
#[pyfunction]
#[pyo3(signature = (data, target=None, score=None))]
fn loads(
    py: Python<'_>,
    data: Vec<u8>,
    target: Option<&Bound<'_, PyAny>>,
    score: Option<Py<PyAny>>,
) -> PyResult<Model> {
    from_bytes(py, data, target, score)
}

fn from_bytes(
    _py: Python<'_>,
    bytes: Vec<u8>,
    target: Option<&Bound<'_, PyAny>>,
    score: Option<Py<PyAny>>,
) -> PyResult<Model> {
    let header = File::parse(&bytes)
        .map_err(|e| PyValueError::new_err(e.to_string()))?
        .header;
    let d = header.shape.d as usize;
    let density = match target.filter(|t| !t.is_none()) {
        None => Density::Own,
        Some(t) => density(t, Some(d), score)?,
    };
    Ok(Model {
        weights: bytes,
        header,
        density,
        iterations: 0,
        interrupted: false,
    })
}

fn train_error(e: TrainError) -> PyErr {
    match e {
        TrainError::Config(_) => PyValueError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

#[pymodule]
fn diffctl(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(loads, m)?)?;
    m.add_class::<Model>()?;
    Ok(())
}
