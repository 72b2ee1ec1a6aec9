//! Keyword arguments to a [`TrainConfig`], and a target named by a string.

use std::path::Path;
use std::sync::Arc;

use diffctl_runtime::target::TargetSpec;
use diffctl_trainer::parallel::default_threads;
use diffctl_trainer::target::config::{TargetConfig, CONFIG_KINDS};
use diffctl_trainer::target::{Known, TrainTarget};
use diffctl_trainer::train::{
    integrator_long_name, loss_long_name, TrainConfig, DEFAULT_INTEGRATOR, INTEGRATOR_NAMES,
    LOSS_NAMES,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use serde::Deserialize;

/// A target defined in Rust (a preset, a configuration file's target).
pub type RustTarget = Arc<dyn TrainTarget + Send>;

/// The training settings: `TrainConfig` keys as keyword arguments, with
/// the command line's defaults (the exponential integrator, all cores) and
/// both spellings of the integrator and the loss.
pub fn train_config(settings: &Bound<'_, PyDict>) -> PyResult<TrainConfig> {
    let mut table = toml::Table::new();
    for (key, value) in settings.iter() {
        let key: String = key.extract()?;
        if value.is_none() {
            continue;
        }
        let value = to_toml(&key, &value)?;
        let value = match key.as_str() {
            "integrator" => long_name(&key, &value, integrator_long_name, INTEGRATOR_NAMES)?,
            "loss" => long_name(&key, &value, loss_long_name, LOSS_NAMES)?,
            _ => value,
        };
        table.insert(key, value);
    }
    let has_integrator = table.contains_key("integrator");
    let has_threads = table.contains_key("threads");
    let mut cfg = TrainConfig::deserialize(toml::Value::Table(table))
        .map_err(|e| PyValueError::new_err(format!("training settings: {}", e.message())))?;
    if !has_integrator {
        cfg.integrator = DEFAULT_INTEGRATOR;
    }
    if !has_threads {
        cfg.threads = default_threads();
    }
    cfg.validate()
        .map_err(|e| PyValueError::new_err(format!("training settings: {e}")))?;
    Ok(cfg)
}

fn to_toml(key: &str, v: &Bound<'_, PyAny>) -> PyResult<toml::Value> {
    // bool before int: Python's bool is an int.
    if v.is_instance_of::<PyBool>() {
        Ok(toml::Value::Boolean(v.extract()?))
    } else if v.is_instance_of::<PyInt>() {
        let i: i64 = v
            .extract()
            .map_err(|_| PyValueError::new_err(format!("{key}: {v} is out of range")))?;
        Ok(toml::Value::Integer(i))
    } else if v.is_instance_of::<PyFloat>() {
        Ok(toml::Value::Float(v.extract()?))
    } else if v.is_instance_of::<PyString>() {
        Ok(toml::Value::String(v.extract()?))
    } else {
        Err(PyTypeError::new_err(format!(
            "{key}: expected a bool, int, float or str, got {}",
            v.get_type().name()?
        )))
    }
}

fn long_name(
    key: &str,
    v: &toml::Value,
    long: fn(&str) -> Option<&'static str>,
    names: &str,
) -> PyResult<toml::Value> {
    v.as_str()
        .and_then(long)
        .map(|n| toml::Value::String(n.into()))
        .ok_or_else(|| PyValueError::new_err(format!("{key} must be one of {names} (got {v})")))
}

/// A built-in preset by name, or a TOML file whose `[target]` table
/// describes a mixture or a logistic regression (as `--target-config`).
pub fn named_target(name: &str) -> PyResult<RustTarget> {
    if let Some(k) = Known::preset(name) {
        return Ok(Arc::new(k));
    }
    let path = Path::new(name);
    if !name.ends_with(".toml") {
        return Err(PyValueError::new_err(format!(
            "unknown target {name:?}: give a preset ({}), a TOML file with a [target] table, \
             or a Python function",
            TargetSpec::PRESETS.join(", ")
        )));
    }
    let what = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| PyValueError::new_err(format!("cannot read {what}: {e}")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| PyValueError::new_err(format!("{what}: {}", e.message())))?;
    let value = table
        .get("target")
        .cloned()
        .ok_or_else(|| PyValueError::new_err(format!("{what}: no [target] table")))?;
    let config = TargetConfig::deserialize(value).map_err(|e| {
        PyValueError::new_err(format!(
            "{what}: [target] must be one of {} ({})",
            CONFIG_KINDS.join(", "),
            e.message()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let target = config
        .build(base)
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    Ok(Arc::from(target))
}
