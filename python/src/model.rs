//! `diffctl.Model`: a weights file and the density it samples.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use diffctl_runtime::integrate::Integrator;
use diffctl_runtime::weights::Header;
use diffctl_trainer::eval::{self, CostForm, EvalError, SampleOptions, Samples};
use diffctl_trainer::io::write_atomic;
use diffctl_trainer::target::TrainTarget;
use diffctl_trainer::train::{integrator_long_name, INTEGRATOR_NAMES};
use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde::Deserialize;

use crate::density::PyDensity;
use crate::settings::RustTarget;

/// Where a model's `log rho` comes from.
pub enum Density {
    /// The weights file's own target (a preset, a stored mixture), or none.
    Own,
    Rust(RustTarget),
    Python(Arc<PyDensity>),
}

impl Density {
    fn target(&self) -> Option<&dyn TrainTarget> {
        match self {
            Density::Own => None,
            Density::Rust(t) => Some(&**t),
            Density::Python(p) => Some(&**p),
        }
    }

    /// Runs `work` without the GIL, the Python density (if any) set up for
    /// it to set `stop` when it fails; returns the result and the first
    /// error the density raised (kept as it was, traceback included).
    pub fn run<R: Send>(
        &self,
        py: Python<'_>,
        stop: Arc<AtomicBool>,
        work: impl FnOnce(Option<&dyn TrainTarget>) -> R + Send,
    ) -> (R, Option<PyErr>) {
        if let Density::Python(p) = self {
            p.begin(stop);
        }
        let result = py.detach(|| work(self.target()));
        let failure = match self {
            Density::Python(p) => p.take_failure(),
            _ => None,
        };
        (result, failure)
    }

    /// [`Density::run`], raising the density's error if there was one.
    pub fn run_or_raise<R: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(Option<&dyn TrainTarget>) -> R + Send,
    ) -> PyResult<R> {
        match self.run(py, Arc::new(AtomicBool::new(false)), work) {
            (_, Some(e)) => Err(e),
            (r, None) => Ok(r),
        }
    }
}

/// `(x, log_w)` as [`Model::sample`] returns them.
type Drawn<'py> = (Bound<'py, PyAny>, Option<Bound<'py, PyArray1<f64>>>);

/// A trained sampler: the weights file (the same bytes the CLI and the
/// devices read) and the density it was trained on.
#[pyclass(frozen, module = "diffctl")]
pub struct Model {
    pub weights: Vec<u8>,
    pub header: Header,
    pub density: Density,
    /// Training iterations done (0 for a loaded file).
    pub iterations: usize,
    /// Whether training was stopped (Ctrl-C) before its last iteration.
    pub interrupted: bool,
}

impl Model {
    fn options(
        &self,
        n: usize,
        seed: u64,
        first: u64,
        steps: Option<usize>,
        integrator: Option<&str>,
        threads: Option<usize>,
    ) -> PyResult<SampleOptions> {
        let integrator = integrator.map(parse_integrator).transpose()?;
        Ok(SampleOptions {
            n,
            seed,
            first,
            steps,
            integrator,
            threads: threads.unwrap_or_else(diffctl_trainer::parallel::default_threads),
            block: self
                .density
                .target()
                .map_or(eval::DEFAULT_BLOCK, |t| t.block()),
        })
    }

    fn draw(&self, py: Python<'_>, opts: &SampleOptions) -> PyResult<Samples> {
        let weights = &self.weights;
        self.density
            .run_or_raise(py, |target| eval::sample_file(weights, target, opts))?
            .map_err(eval_error)
    }
}

#[pymethods]
impl Model {
    /// Draws samples `first .. first + n` under `seed` with the runtime:
    /// `(x, log_w)`, `x` float32 `(n, d)` and `log_w = -R_disc` float64 `(n,)`
    /// (`None` without path costs: the flow integrator). Sample `i` depends
    /// only on `(seed, i)`, so shards drawn anywhere concatenate to one run.
    #[pyo3(signature = (n, seed=0, *, first=0, steps=None, integrator=None, threads=None))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
        first: u64,
        steps: Option<usize>,
        integrator: Option<&str>,
        threads: Option<usize>,
    ) -> PyResult<Drawn<'py>> {
        let opts = self.options(n, seed, first, steps, integrator, threads)?;
        let samples = self.draw(py, &opts)?;
        // Copied into arrays NumPy allocates, which own their memory.
        let d = samples.d;
        let x = PyArray2::<f32>::zeros(py, [samples.xs.len() / d, d], false);
        x.readwrite()
            .as_slice_mut()
            .expect("a new array is contiguous")
            .copy_from_slice(&samples.xs);
        let x = x.into_any();
        let log_w = samples.costs.map(|c| {
            let log_w: Vec<f64> = c.iter().map(|c| -c.r_disc).collect();
            PyArray1::from_slice(py, &log_w)
        });
        Ok((x, log_w))
    }

    /// Draws `n` paths and estimates `log Z`: a dict with `log_z_is`,
    /// `log_z_is_se`, `log_z_lb`, `ess` (normalised), `pareto_k`, `log_z_true`
    /// and the errors when the truth is known, and the full `report`
    /// (`diffctl eval --json`).
    #[pyo3(signature = (n=100_000, seed=0, *, steps=None, integrator=None, threads=None, cost="discrete"))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn estimate<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
        steps: Option<usize>,
        integrator: Option<&str>,
        threads: Option<usize>,
        cost: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cost = CostForm::deserialize(toml::Value::String(cost.into())).map_err(|_| {
            PyValueError::new_err(format!(
                "cost must be discrete or continuous (got {cost:?})"
            ))
        })?;
        let opts = self.options(n, seed, 0, steps, integrator, threads)?;
        if opts.integrator.unwrap_or(self.header.integrator) == Integrator::ProbabilityFlow {
            return Err(PyValueError::new_err(
                "the flow integrator has no path costs: estimates need em or exp",
            ));
        }
        let weights = &self.weights;
        let report = self
            .density
            .run_or_raise(py, |target| eval::evaluate(weights, target, &opts, cost))?
            .map_err(eval_error)?;
        let json = serde_json::to_string(&report).expect("a report serialises");
        let full = py.import("json")?.getattr("loads")?.call1((json,))?;
        let out = PyDict::new(py);
        let e = &report.estimates;
        out.set_item("log_z_is", e.log_z_is)?;
        out.set_item("log_z_is_se", e.log_z_is_se)?;
        out.set_item("log_z_lb", e.log_z_lb)?;
        out.set_item("ess", e.ess)?;
        out.set_item("pareto_k", e.pareto_k)?;
        out.set_item("log_z_true", report.log_z_true)?;
        out.set_item("log_z_is_error", report.log_z_is_error())?;
        out.set_item("log_z_lb_error", report.log_z_lb_error())?;
        out.set_item("n", report.n)?;
        out.set_item("report", full)?;
        Ok(out)
    }

    /// Writes the weights file (atomically: a reader sees the old file or the new one).
    fn save(&self, path: std::path::PathBuf) -> PyResult<()> {
        write_atomic(&path, &self.weights)
            .map_err(|e| PyOSError::new_err(format!("cannot write {}: {e}", path.display())))
    }

    /// The header: sampler, network shape, SDE, time grid, steps `K`,
    /// integrator, prior, score clip, dtype and the target it names.
    #[getter]
    fn header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut value = serde_json::to_value(self.header).expect("a header serialises");
        value["target"] = match self.header.target {
            Some(t) => serde_json::Value::String(t.to_string()),
            None => serde_json::Value::Null,
        };
        py.import("json")?
            .getattr("loads")?
            .call1((value.to_string(),))
    }

    /// Dimension `d`.
    #[getter]
    fn dim(&self) -> usize {
        self.header.shape.d as usize
    }

    /// The weights file's bytes.
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.weights)
    }

    /// Training iterations done (0 for a loaded file).
    #[getter]
    fn iterations(&self) -> usize {
        self.iterations
    }

    /// Whether training was stopped (Ctrl-C) before its last iteration.
    #[getter]
    fn interrupted(&self) -> bool {
        self.interrupted
    }

    /// Pickles as the weights and the density (a Python density must be
    /// picklable itself: a module-level function, not a lambda).
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let loads = py.import("diffctl")?.getattr("loads")?;
        let bytes = PyBytes::new(py, &self.weights).into_any();
        let (target, score) = match &self.density {
            Density::Python(p) => {
                let (f, s) = p.callables(py);
                (f.into_bound(py), s.map(|s| s.into_bound(py)))
            }
            Density::Rust(_) => {
                return Err(PyValueError::new_err(
                    "a model on a configuration-file target does not pickle: send its weights \
                     (model.weights) and the file name, and use diffctl.loads",
                ))
            }
            Density::Own => (py.None().into_bound(py), None),
        };
        let score = score.unwrap_or_else(|| py.None().into_bound(py));
        (loads, (bytes, target, score))
            .into_pyobject(py)
            .map(|t| t.into_any())
    }

    fn __repr__(&self) -> String {
        let h = &self.header;
        let target = match (&self.density, h.target) {
            (Density::Python(_), _) => "a Python density".to_string(),
            (_, Some(t)) => t.to_string(),
            (_, None) => "no target".to_string(),
        };
        format!(
            "diffctl.Model({:?}, d = {}, K = {}, {:?}, {:?}, trained on {target}, {} bytes)",
            h.sampler,
            h.shape.d,
            h.steps,
            h.integrator,
            h.dtype,
            self.weights.len()
        )
    }
}

fn parse_integrator(name: &str) -> PyResult<Integrator> {
    integrator_long_name(name)
        .and_then(|long| Integrator::deserialize(toml::Value::String(long.into())).ok())
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "integrator must be one of {INTEGRATOR_NAMES} (got {name:?})"
            ))
        })
}

pub fn eval_error(e: EvalError) -> PyErr {
    PyValueError::new_err(e.to_string())
}
