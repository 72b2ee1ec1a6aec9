//! [`TargetSpec`]: the target a weights file records, and the registry of
//! built-in targets ([`Builtin`]). Adding a built-in target is a variant
//! here and a line in [`TargetSpec::build`].

use core::fmt;

use serde::{Deserialize, Serialize};

use super::{Funnel, GaussianMixture, GroundTruth, ManyWell, MultiWell, StoredMixture, Target};
use crate::normal::PathRng;

/// `gmm`: 9 equal modes at `{-5, 0, 5}^2` with std `sqrt(0.3)`.
pub mod gmm {
    /// Component weights.
    pub const WEIGHTS: [f32; 9] = [1.0; 9];
    /// Means `[9, 2]`, row-major.
    pub const MEANS: [f32; 18] = [
        -5.0, -5.0, -5.0, 0.0, -5.0, 5.0, 0.0, -5.0, 0.0, 0.0, 0.0, 5.0, 5.0, -5.0, 5.0, 0.0, 5.0,
        5.0,
    ];
    /// Stds `[9, 2]`: all `sqrt(0.3)`.
    pub const STDS: [f32; 18] = [0.547_722_6; 18];
}

/// `gmm25`: 25 equal modes at `{-10, -5, 0, 5, 10}^2` with std `sqrt(0.3)`
/// (covariance `0.3 I`), components in the order of [`gmm`]'s (first
/// coordinate major).
pub mod gmm25 {
    /// Component weights.
    pub const WEIGHTS: [f32; 25] = [1.0; 25];
    /// Means `[25, 2]`, row-major.
    pub const MEANS: [f32; 50] = means();
    /// Stds `[25, 2]`: all `sqrt(0.3)`.
    pub const STDS: [f32; 50] = [0.547_722_6; 50];

    const fn means() -> [f32; 50] {
        const GRID: [f32; 5] = [-10.0, -5.0, 0.0, 5.0, 10.0];
        let mut m = [0.0; 50];
        let mut i = 0;
        while i < 25 {
            m[2 * i] = GRID[i / 5];
            m[2 * i + 1] = GRID[i % 5];
            i += 1;
        }
        m
    }
}

/// A target by kind and parameters: what a weights file records. New
/// variants are appended (postcard stores the variant's index), so files
/// written before them read the same.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSpec {
    /// The `gmm` preset (2-d, 9 modes).
    Gmm,
    /// [`Funnel`]; preset `funnel` is `d = 10`, `sigma = 3`.
    Funnel { d: u32, sigma: f32 },
    /// [`MultiWell`]; presets `mw5`, `dw20`, `mw50`.
    MultiWell { d: u32, w: u32, delta: f32 },
    /// A [`StoredMixture`] whose parameters the weights file holds after the
    /// network's ([`TargetSpec::data_len`] bytes).
    Mixture { d: u32, components: u32, full: bool },
    /// Bayesian logistic regression ([`super::LogisticRegression`]) on a data
    /// set the file does not hold: `rows` rows, `d` coefficients, and the
    /// CRC-32 of the design matrix and labels as `f32` little endian bytes,
    /// so a program given the data can check it is the same.
    LogisticRegression {
        d: u32,
        rows: u32,
        prior_std: f32,
        intercept: bool,
        standardize: bool,
        data_crc: u32,
    },
    /// The `gmm25` preset (2-d, 25 modes).
    Gmm25,
    /// [`ManyWell`] in dimension `d` (even: `d / 2` pairs); preset `manywell32`.
    ManyWell { d: u32 },
}

/// Largest dimension a [`TargetSpec`] may declare.
pub const MAX_TARGET_DIM: u32 = 1 << 16;
/// Largest parameter block of a stored mixture (bytes).
pub const MAX_TARGET_DATA: usize = 1 << 28;

impl TargetSpec {
    /// Names accepted by [`TargetSpec::preset`].
    pub const PRESETS: [&'static str; 7] = [
        "gmm",
        "funnel",
        "mw5",
        "dw20",
        "mw50",
        "gmm25",
        "manywell32",
    ];

    /// The built-in presets of MATH.md §8.
    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "gmm" => TargetSpec::Gmm,
            "funnel" => TargetSpec::Funnel { d: 10, sigma: 3.0 },
            "mw5" => TargetSpec::MultiWell {
                d: 5,
                w: 5,
                delta: 4.0,
            },
            "dw20" => TargetSpec::MultiWell {
                d: 20,
                w: 5,
                delta: 3.0,
            },
            "mw50" => TargetSpec::MultiWell {
                d: 50,
                w: 5,
                delta: 2.0,
            },
            "gmm25" => TargetSpec::Gmm25,
            "manywell32" => TargetSpec::ManyWell { d: 32 },
            _ => return None,
        })
    }

    /// The preset's name, if this is one.
    pub fn preset_name(&self) -> Option<&'static str> {
        Self::PRESETS
            .into_iter()
            .find(|n| Self::preset(n).as_ref() == Some(self))
    }

    /// Checks dimensions and parameters (finite, in range).
    pub fn validate(&self) -> Result<(), &'static str> {
        match *self {
            TargetSpec::Gmm | TargetSpec::Gmm25 => Ok(()),
            TargetSpec::ManyWell { d } => {
                if !(2..=MAX_TARGET_DIM).contains(&d) || d % 2 != 0 {
                    Err("many-well dimension must be even and in 2..=65536")
                } else {
                    Ok(())
                }
            }
            TargetSpec::Funnel { d, sigma } => {
                if !(2..=MAX_TARGET_DIM).contains(&d) {
                    Err("funnel dimension must be in 2..=65536")
                } else if !(sigma.is_finite() && sigma > 0.0) {
                    Err("funnel sigma must be finite and positive")
                } else {
                    Ok(())
                }
            }
            TargetSpec::MultiWell { d, w, delta } => {
                if d == 0 || d > MAX_TARGET_DIM || w > d {
                    Err("multiwell needs 1 <= d <= 65536 and w <= d")
                } else if !delta.is_finite() {
                    Err("multiwell delta must be finite")
                } else {
                    Ok(())
                }
            }
            TargetSpec::Mixture {
                d,
                components,
                full,
            } => {
                if d == 0 || d > MAX_TARGET_DIM || components == 0 {
                    Err("a mixture needs 1 <= d <= 65536 and a component")
                } else if StoredMixture::byte_len(d as usize, components as usize, full)
                    .is_none_or(|n| n > MAX_TARGET_DATA)
                {
                    Err("mixture parameters larger than 256 MiB")
                } else {
                    Ok(())
                }
            }
            TargetSpec::LogisticRegression {
                d, rows, prior_std, ..
            } => {
                if d == 0 || d > MAX_TARGET_DIM || rows == 0 {
                    Err("logistic regression needs 1 <= d <= 65536 and a data row")
                } else if !(prior_std.is_finite() && prior_std > 0.0) {
                    Err("logistic regression prior_std must be finite and positive")
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Dimension of the target.
    pub fn dim(&self) -> usize {
        match *self {
            TargetSpec::Gmm | TargetSpec::Gmm25 => 2,
            TargetSpec::Funnel { d, .. }
            | TargetSpec::ManyWell { d }
            | TargetSpec::MultiWell { d, .. }
            | TargetSpec::Mixture { d, .. }
            | TargetSpec::LogisticRegression { d, .. } => d as usize,
        }
    }

    /// Bytes of target parameters a weights file stores after the network's
    /// (0 but for [`TargetSpec::Mixture`]). Call after [`TargetSpec::validate`].
    pub fn data_len(&self) -> usize {
        match *self {
            TargetSpec::Mixture {
                d,
                components,
                full,
            } => StoredMixture::byte_len(d as usize, components as usize, full).unwrap_or(0),
            _ => 0,
        }
    }

    /// The target itself, reading a stored mixture's parameters from `data`
    /// ([`TargetSpec::data_len`] bytes; empty for the others). A logistic
    /// regression cannot be built from the file: its data set is not in it.
    pub fn build<'a>(&self, data: &'a [u8]) -> Result<Builtin<'a>, &'static str> {
        self.validate()?;
        if data.len() != self.data_len() {
            return Err("target parameter block has the wrong length");
        }
        Ok(match *self {
            TargetSpec::Gmm => {
                Builtin::Mixture(GaussianMixture::new(&gmm::WEIGHTS, &gmm::MEANS, &gmm::STDS))
            }
            TargetSpec::Funnel { d, sigma } => Builtin::Funnel(Funnel {
                d: d as usize,
                sigma,
            }),
            TargetSpec::MultiWell { d, w, delta } => Builtin::MultiWell(MultiWell {
                d: d as usize,
                w: w as usize,
                delta,
            }),
            TargetSpec::Mixture {
                d,
                components,
                full,
            } => Builtin::Stored(StoredMixture::new(
                d as usize,
                components as usize,
                full,
                data,
            )?),
            TargetSpec::LogisticRegression { .. } => {
                return Err("a logistic-regression target needs its data set (a target config)")
            }
            TargetSpec::Gmm25 => Builtin::Mixture(GaussianMixture::new(
                &gmm25::WEIGHTS,
                &gmm25::MEANS,
                &gmm25::STDS,
            )),
            TargetSpec::ManyWell { d } => Builtin::ManyWell(ManyWell {
                pairs: d as usize / 2,
            }),
        })
    }

    /// A preset or parametric target (no stored data). Panics for the kinds
    /// that need data; call [`TargetSpec::build`] for those.
    pub fn build_builtin(&self) -> Builtin<'static> {
        self.build(&[]).expect("a parametric built-in target")
    }
}

/// The names users type: `gmm`, `mw5 (d = 5, wells = 5, delta = 4)`.
impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.preset_name();
        match *self {
            TargetSpec::Gmm => f.write_str("gmm"),
            TargetSpec::Funnel { d, sigma } => {
                write!(f, "{} (d = {d}, sigma = {sigma})", name.unwrap_or("funnel"))
            }
            TargetSpec::MultiWell { d, w, delta } => write!(
                f,
                "{} (d = {d}, wells = {w}, delta = {delta})",
                name.unwrap_or("multi-well")
            ),
            TargetSpec::Mixture {
                d,
                components,
                full,
            } => write!(
                f,
                "mixture (d = {d}, {components} components, {} covariances)",
                if full { "full" } else { "diagonal" }
            ),
            TargetSpec::LogisticRegression { d, rows, .. } => {
                write!(f, "logistic-regression (d = {d}, {rows} data rows)")
            }
            TargetSpec::Gmm25 => f.write_str("gmm25"),
            TargetSpec::ManyWell { d } => {
                write!(f, "{} (d = {d})", name.unwrap_or("many-well"))
            }
        }
    }
}

/// A built-in target, as built from a [`TargetSpec`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Builtin<'a> {
    Mixture(GaussianMixture<'static>),
    Stored(StoredMixture<'a>),
    Funnel(Funnel),
    MultiWell(MultiWell),
    ManyWell(ManyWell),
}

impl Builtin<'_> {
    fn inner(&self) -> &dyn GroundTruth {
        match self {
            Builtin::Mixture(t) => t,
            Builtin::Stored(t) => t,
            Builtin::Funnel(t) => t,
            Builtin::MultiWell(t) => t,
            Builtin::ManyWell(t) => t,
        }
    }
}

impl Target for Builtin<'_> {
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn log_density(&self, x: &[f32]) -> f32 {
        self.inner().log_density(x)
    }
    fn score(&self, x: &[f32], out: &mut [f32]) {
        self.inner().score(x, out)
    }
    fn log_z(&self) -> Option<f64> {
        self.inner().log_z()
    }
    fn log_density_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.inner().log_density_batch(xs, out)
    }
    fn score_batch(&self, xs: &[f32], out: &mut [f32]) {
        self.inner().score_batch(xs, out)
    }
}

impl GroundTruth for Builtin<'_> {
    fn moments(&self) -> Option<(f64, f64)> {
        self.inner().moments()
    }
    fn mode_count(&self) -> usize {
        self.inner().mode_count()
    }
    fn mode_of(&self, x: &[f32]) -> usize {
        self.inner().mode_of(x)
    }
    fn mode_weight(&self, i: usize) -> f64 {
        self.inner().mode_weight(i)
    }
    fn write_mode_label(&self, i: usize, out: &mut dyn fmt::Write) -> fmt::Result {
        self.inner().write_mode_label(i, out)
    }
    fn sample_exact(&self, rng: &mut PathRng, x: &mut [f32]) -> bool {
        self.inner().sample_exact(rng, x)
    }
    fn marginal_density(&self, j: usize, x: f64) -> Option<f64> {
        self.inner().marginal_density(j, x)
    }
    fn marginal_range(&self, j: usize) -> Option<(f64, f64)> {
        self.inner().marginal_range(j)
    }
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    use super::TargetSpec;
    use alloc::string::ToString;

    #[test]
    fn names_are_the_ones_users_type() {
        let name = |s: &str| TargetSpec::preset(s).unwrap().to_string();
        assert_eq!(name("gmm"), "gmm");
        assert_eq!(name("mw5"), "mw5 (d = 5, wells = 5, delta = 4)");
        assert_eq!(name("funnel"), "funnel (d = 10, sigma = 3)");
        assert_eq!(name("gmm25"), "gmm25");
        assert_eq!(name("manywell32"), "manywell32 (d = 32)");
        assert_eq!(
            TargetSpec::ManyWell { d: 4 }.to_string(),
            "many-well (d = 4)"
        );
        let changed = TargetSpec::MultiWell {
            d: 3,
            w: 3,
            delta: 4.0,
        };
        assert_eq!(
            changed.to_string(),
            "multi-well (d = 3, wells = 3, delta = 4)"
        );
        let mixture = TargetSpec::Mixture {
            d: 2,
            components: 3,
            full: true,
        };
        assert_eq!(
            mixture.to_string(),
            "mixture (d = 2, 3 components, full covariances)"
        );
    }
}
