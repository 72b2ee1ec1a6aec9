//! `diffctl train --config FILE.toml`: the training configuration file.
//!
//! Keys mirror `diffctl_trainer::train::TrainConfig` (missing keys keep the
//! reference setup, and `integrator` the command's default, exponential),
//! except `target`, which names a preset with optional parameter overrides.
//! `integrator` and `loss` take the short or the long names of the flags:
//!
//! ```toml
//! target = "dw20"                                   # or
//! target = { name = "funnel", dim = 20, sigma = 3.0 }
//! loss = "log-variance"                             # lv|log-variance or kl
//! integrator = "exp"                                # em|euler-maruyama, exp|exponential, flow|probability-flow
//! batch = 512
//! steps = 100
//! iterations = 2000
//! lr = 5e-3
//! sde = { vp = { schedule = { linear = { beta_min = 0.1, beta_max = 10.0 } }, t_end = 1.0 } }
//! ```

use std::path::Path;

use diffctl_trainer::target::config::{TargetConfig, CONFIG_KINDS};
use diffctl_trainer::train::TrainConfig;
use serde::Deserialize;

use crate::args::{
    integrator_long_name, loss_long_name, target_spec, ChosenTarget, TargetParams,
    DEFAULT_INTEGRATOR, INTEGRATOR_NAMES, LOSS_NAMES,
};
use crate::error::{Error, Result};
use crate::io;

/// The `target` entry: a preset name, a table with a preset's name and
/// overrides, or a target described by its parameters ([`TargetConfig`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetEntry {
    Name(String),
    Table(TargetTable),
    Config(TargetConfig),
}

impl TargetEntry {
    /// Reads the entry; a table's `name` picks its kind, so errors are the kind's.
    fn from_value(v: toml::Value) -> std::result::Result<Self, String> {
        const USAGE: &str = "`target` must be a preset name, { name = ..., dim, wells, delta, sigma }, \
                             or a [target] table with name = \"mixture\" or \"logistic-regression\"";
        match v {
            toml::Value::String(s) => Ok(TargetEntry::Name(s)),
            toml::Value::Table(t) => {
                let kind = t.get("name").and_then(|n| n.as_str()).unwrap_or_default();
                if CONFIG_KINDS.contains(&kind) {
                    let kind = kind.to_string();
                    TargetConfig::deserialize(toml::Value::Table(t))
                        .map(TargetEntry::Config)
                        .map_err(|e| format!("[target] ({kind}): {}", e.to_string().trim()))
                } else {
                    TargetTable::deserialize(toml::Value::Table(t))
                        .map(TargetEntry::Table)
                        .map_err(|_| USAGE.to_string())
                }
            }
            _ => Err(USAGE.into()),
        }
    }

    /// Builds the target, merging `cli` overrides into a preset's
    /// parameters; `base` is the folder relative data paths start from and
    /// `stem` names the target of a config for file names.
    pub fn build(&self, cli: &TargetParams, base: &Path, stem: &str) -> Result<ChosenTarget> {
        if let TargetEntry::Config(c) = self {
            if *cli != TargetParams::default() {
                return Err(
                    "--dim, --wells, --delta and --sigma apply to presets, not to this target"
                        .into(),
                );
            }
            let target = c
                .build(base)
                .map_err(|e| Error::new(format!("[target]: {e}")))?;
            let description = match target.spec() {
                Some(spec) => spec.to_string(),
                None => "target from a config".into(),
            };
            return Ok(ChosenTarget {
                target,
                name: stem.to_string(),
                description,
            });
        }
        let (name, file) = self.parts();
        let merged = TargetParams {
            dim: cli.dim.or(file.dim),
            wells: cli.wells.or(file.wells),
            delta: cli.delta.or(file.delta),
            sigma: cli.sigma.or(file.sigma),
        };
        ChosenTarget::builtin(target_spec(name, &merged)?)
    }
}

/// The target of a TOML file's `target` entry (`--target-config FILE`).
pub fn load_target(path: &Path) -> Result<ChosenTarget> {
    let what = path.display().to_string();
    let text = String::from_utf8(io::read(path)?)
        .map_err(|_| Error::new(format!("{what}: not UTF-8 text")))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::new(format!("{what}: {}", e.to_string().trim())))?;
    let value = table
        .get("target")
        .cloned()
        .ok_or_else(|| Error::new(format!("{what}: no [target] table")))?;
    let entry = TargetEntry::from_value(value).map_err(|e| Error::new(format!("{what}: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .map_or("target".into(), |s| s.to_string_lossy().into_owned());
    entry
        .build(&TargetParams::default(), base, &stem)
        .map_err(|e| Error::new(format!("{what}: {e}")))
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetTable {
    pub name: String,
    pub dim: Option<u32>,
    pub wells: Option<u32>,
    pub delta: Option<f32>,
    pub sigma: Option<f32>,
}

impl TargetEntry {
    /// The preset name and parameter overrides.
    pub fn parts(&self) -> (&str, TargetParams) {
        match self {
            TargetEntry::Config(c) => (
                match c {
                    TargetConfig::Mixture { .. } => "mixture",
                    TargetConfig::LogisticRegression { .. } => "logistic-regression",
                },
                TargetParams::default(),
            ),
            TargetEntry::Name(n) => (n, TargetParams::default()),
            TargetEntry::Table(t) => (
                &t.name,
                TargetParams {
                    dim: t.dim,
                    wells: t.wells,
                    delta: t.delta,
                    sigma: t.sigma,
                },
            ),
        }
    }
}

/// The TOML table of a configuration file (`what` names it in errors),
/// with `integrator` and `loss` given by either name rewritten to the long
/// name the library's types read.
pub fn normalise_names(text: &str, what: &str) -> Result<toml::Table> {
    let err = |e: &dyn std::fmt::Display| Error::new(format!("{what}: {e}"));
    let mut table: toml::Table = text.parse().map_err(|e| err(&e))?;
    for (key, long, names) in [
        (
            "integrator",
            integrator_long_name as fn(&str) -> Option<&'static str>,
            INTEGRATOR_NAMES,
        ),
        ("loss", loss_long_name, LOSS_NAMES),
    ] {
        if let Some(v) = table.get_mut(key) {
            let name = v
                .as_str()
                .and_then(long)
                .ok_or_else(|| err(&format!("`{key}` must be one of {names} (got {v})")))?;
            *v = toml::Value::String(name.into());
        }
    }
    Ok(table)
}

/// A parsed configuration file: the settings and, separately, the target entry.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub config: TrainConfig,
    pub target: Option<TargetEntry>,
}

/// Parses a configuration file's text (`what` names it in errors).
pub fn parse(text: &str, what: &str) -> Result<ConfigFile> {
    let err = |e: &dyn std::fmt::Display| Error::new(format!("{what}: {e}"));
    let mut table = normalise_names(text, what)?;
    let target = match table.remove("target") {
        None => None,
        Some(v) => Some(TargetEntry::from_value(v).map_err(|e| err(&e))?),
    };
    if let Some(entry @ (TargetEntry::Name(_) | TargetEntry::Table(_))) = &target {
        let (name, params) = entry.parts();
        target_spec(name, &params).map_err(|e| err(&e))?;
    }
    let has_integrator = table.contains_key("integrator");
    let mut config = TrainConfig::deserialize(toml::Value::Table(table)).map_err(|e| err(&e))?;
    if !has_integrator {
        config.integrator = DEFAULT_INTEGRATOR;
    }
    Ok(ConfigFile { config, target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffctl_trainer::train::Loss;

    #[test]
    fn partial_file_keeps_defaults() {
        let c = parse(
            "target = { name = \"funnel\", dim = 20 }\nloss = \"kl\"\nbatch = 64\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.config.loss, Loss::Kl);
        assert_eq!(c.config.batch, 64);
        assert_eq!(c.config.steps, TrainConfig::default().steps);
        let (name, p) = c.target.as_ref().unwrap().parts();
        assert_eq!((name, p.dim), ("funnel", Some(20)));
    }

    /// Both spellings of the integrator and the loss; the command's default
    /// integrator when the file names none.
    #[test]
    fn short_and_long_names_and_the_default_integrator() {
        use diffctl_runtime::prelude::Integrator;
        for (text, want) in [
            ("integrator = \"em\"", Integrator::EulerMaruyama),
            ("integrator = \"euler-maruyama\"", Integrator::EulerMaruyama),
            ("integrator = \"exp\"", Integrator::Exponential),
            ("integrator = \"exponential\"", Integrator::Exponential),
            ("integrator = \"flow\"", Integrator::ProbabilityFlow),
            (
                "integrator = \"probability-flow\"",
                Integrator::ProbabilityFlow,
            ),
            ("batch = 8", DEFAULT_INTEGRATOR),
        ] {
            assert_eq!(
                parse(text, "t.toml").unwrap().config.integrator,
                want,
                "{text}"
            );
        }
        for (text, want) in [
            ("loss = \"lv\"", Loss::LogVariance),
            ("loss = \"log-variance\"", Loss::LogVariance),
            ("loss = \"kl\"", Loss::Kl),
        ] {
            assert_eq!(parse(text, "t.toml").unwrap().config.loss, want, "{text}");
        }
        let e = parse("integrator = \"rk4\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(INTEGRATOR_NAMES), "{e}");
    }

    #[test]
    fn bad_files_are_errors() {
        for text in [
            "batch = \"many\"",
            "bacth = 3",
            "target = \"nope\"",
            "target = { name = \"gmm\", colour = 1 }",
            "target = { name = \"dw20\", delta = nan }",
            "not toml at all [",
        ] {
            let e = parse(text, "t.toml").unwrap_err().to_string();
            assert!(
                e.starts_with("t.toml: ") && !e.contains('\n'),
                "{text}: {e}"
            );
        }
    }

    /// The reference setup's own serialisation reads back (so TrainConfig
    /// keys, enums and all, can be written as TOML).
    #[test]
    fn default_config_round_trips_through_toml() {
        let table = toml::Table::try_from(TrainConfig::default()).unwrap();
        let text = toml::to_string(&table).unwrap();
        let back = parse(&text, "t.toml").unwrap();
        assert_eq!(back.config, TrainConfig::default());
    }

    /// The README's example configuration is a valid file with what it says.
    #[test]
    fn readme_example_parses() {
        let readme = include_str!("../README.md");
        let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let c = parse(text, "README.md").unwrap();
        let (name, params) = c.target.as_ref().expect("a target").parts();
        assert_eq!((name, params.delta), ("dw20", Some(3.0)));
        assert_eq!(c.config.explore, Some(2.0));
        assert_eq!(c.config.iterations, 2000);
    }
}
