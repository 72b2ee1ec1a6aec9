//! A density written in Python, as the runtime's [`Target`].
//!
//! The trainer and the sampler call a target on whole blocks of points
//! ([`Target::log_density_batch`], [`Target::score_batch`]): one Python call
//! per block, holding the GIL only for that call. The user's function gets an
//! `(n, d)` float64 array and returns `(n,)` (the log-density) or `(n, d)`
//! (the score); without a `score` function, `log_density` returns the pair
//! `(value, grad)` and one call serves both.
//!
//! A `Target` cannot return an error, so a failed call (an exception in the
//! user's function, a NaN, a wrong shape) is kept in [`PyDensity::failure`],
//! sets the run's stop flag and writes zeros; every later call returns zeros
//! at once. The caller re-raises the kept error when the Rust work returns
//! ([`PyDensity::take_failure`]). A stop discards the training iteration
//! it happened in, so the zeros never reach a model.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use diffctl_runtime::Target;
use diffctl_trainer::target::TrainTarget;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyReadonlyArrayDyn};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// What a call asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    LogDensity,
    Score,
}

/// `log rho` (and its gradient) as Python callables.
pub struct PyDensity {
    dim: usize,
    log_density: Py<PyAny>,
    /// `None`: `log_density` returns `(value, grad)`.
    score: Option<Py<PyAny>>,
    failure: Mutex<Option<PyErr>>,
    failed: AtomicBool,
    /// The current run's stop flag (set on a failure).
    stop: Mutex<Arc<AtomicBool>>,
}

impl PyDensity {
    pub fn new(dim: usize, log_density: Py<PyAny>, score: Option<Py<PyAny>>) -> Self {
        Self {
            dim,
            log_density,
            score,
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            stop: Mutex::new(Arc::new(AtomicBool::new(false))),
        }
    }

    /// Starts a run: clears any kept failure; a failure sets `stop`.
    pub fn begin(&self, stop: Arc<AtomicBool>) {
        *lock(&self.failure) = None;
        self.failed.store(false, Ordering::SeqCst);
        *lock(&self.stop) = stop;
    }

    /// The first error of the run, if any (cleared).
    pub fn take_failure(&self) -> Option<PyErr> {
        lock(&self.failure).take()
    }

    /// The Python callables, for pickling and `repr`.
    pub fn callables(&self, py: Python<'_>) -> (Py<PyAny>, Option<Py<PyAny>>) {
        (
            self.log_density.clone_ref(py),
            self.score.as_ref().map(|s| s.clone_ref(py)),
        )
    }

    fn fail(&self, e: PyErr) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
        lock(&self.stop).store(true, Ordering::SeqCst);
    }

    fn call(&self, want: Want, xs: &[f32], out: &mut [f32]) {
        if !self.failed.load(Ordering::SeqCst) {
            let n = xs.len() / self.dim;
            match Python::attach(|py| self.call_python(py, want, xs, n, out)) {
                Ok(()) => return,
                Err(e) => self.fail(e),
            }
        }
        out.fill(0.0);
    }

    fn call_python(
        &self,
        py: Python<'_>,
        want: Want,
        xs: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> PyResult<()> {
        let d = self.dim;
        let x = Array2::from_shape_vec((n, d), xs.iter().map(|&v| v as f64).collect())
            .expect("n rows of d")
            .into_pyarray(py);
        let (f, name) = match (want, &self.score) {
            (Want::Score, Some(s)) => (s, "score"),
            _ => (&self.log_density, "log_density"),
        };
        let call = format!("{name}(x) with x of shape ({n}, {d})");
        let result = f.bind(py).call1((x,))?;
        let result = match &self.score {
            Some(_) => result,
            None => {
                let pair = result.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
                let Some(pair) = pair else {
                    return Err(PyValueError::new_err(format!(
                        "{call} returned {}, not a pair (value, grad): without score=, \
                         log_density must return both",
                        type_name(&result)
                    )));
                };
                pair.get_item(if want == Want::Score { 1 } else { 0 })?
            }
        };
        let numpy = py.import("numpy")?;
        let array = numpy
            .getattr("asarray")?
            .call1((result, numpy.getattr("float64")?))
            .map_err(|e| {
                PyValueError::new_err(format!(
                    "{call} returned something that is not an array: {e}"
                ))
            })?;
        let array: PyReadonlyArrayDyn<'_, f64> = array.extract()?;
        let view = array.as_array();
        let (expected, what): (&[usize], &str) = match want {
            Want::LogDensity => (&[n], "the log-density"),
            Want::Score => (&[n, d], "the score"),
        };
        if view.shape() != expected {
            return Err(PyValueError::new_err(format!(
                "{call} returned {what} with shape {:?}, expected {expected:?}",
                view.shape()
            )));
        }
        for (k, (o, &v)) in out.iter_mut().zip(view.iter()).enumerate() {
            let bad = match want {
                // -inf is a point outside the support: a weight of zero.
                Want::LogDensity => v.is_nan() || v == f64::INFINITY,
                Want::Score => v.is_nan(),
            };
            if bad {
                let row = if want == Want::Score { k / d } else { k };
                return Err(PyValueError::new_err(format!(
                    "{call} returned {v} in {what} at row {row} (x = {:?}); return -inf for \
                     log rho outside a support, never NaN",
                    &xs[row * d..(row + 1) * d]
                )));
            }
            *o = v as f32;
        }
        Ok(())
    }
}

/// Paths per call when the runtime samples with a Python density: each call
/// costs some microseconds of Python, so blocks are large.
pub const PYTHON_BLOCK: usize = 2048;

impl TrainTarget for PyDensity {
    fn dim(&self) -> usize {
        self.dim
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.call(Want::LogDensity, xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.call(Want::Score, xs, out)
    }
    fn point(&self) -> Box<dyn Target + Sync + '_> {
        Box::new(Point(self))
    }
    fn block(&self) -> usize {
        PYTHON_BLOCK
    }
}

/// The runtime's view of a [`PyDensity`]; its batched methods make one call.
struct Point<'a>(&'a PyDensity);

impl Target for Point<'_> {
    fn dim(&self) -> usize {
        self.0.dim
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        let mut out = [0.0f32];
        self.0.call(Want::LogDensity, x, &mut out);
        out[0]
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        self.0.call(Want::Score, x, out)
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.0.call(Want::LogDensity, xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.0.call(Want::Score, xs, out)
    }
}

/// A mutex's contents even if a panicking thread poisoned it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map_or_else(|_| "an object".into(), |n| format!("a {n}"))
}
