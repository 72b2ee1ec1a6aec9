//! `--data`: a sample file (CSV or `.npy`, `n x d`) or a built-in generator
//! `toy:NAME` (`toy:moons`, `toy:checkerboard`, `toy:8gaussians`,
//! `toy:swissroll`, or exact samples of a target preset such as `toy:gmm`).

use std::path::Path;

use diffctl_trainer::data::{self, Dataset, Toy};

use crate::args::MAX_FLOATS;
use crate::error::{Error, Result};

/// Prefix of a built-in generator's name in `--data`.
pub const TOY_PREFIX: &str = "toy:";

/// What a `--data` argument draws from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source<'a> {
    Toy { name: &'a str, toy: Toy },
    File(&'a Path),
}

/// Why the data are drawn: a fit's training set, or fresh points to compare
/// a model with. The two never share a draw under the same seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Fit,
    HeldOut,
}

impl<'a> Source<'a> {
    /// Parses `--data`: `toy:NAME` or a path.
    pub fn parse(arg: &'a str) -> Result<Self> {
        let Some(name) = arg.strip_prefix(TOY_PREFIX) else {
            if arg.is_empty() {
                return Err("--data needs a file name or toy:NAME".into());
            }
            return Ok(Source::File(Path::new(arg)));
        };
        let toy = Toy::by_name(name).ok_or_else(|| {
            Error::new(format!(
                "unknown toy data set '{name}' (known: {}, {})",
                Toy::NAMES.join(", "),
                diffctl_runtime::target::TargetSpec::PRESETS.join(", ")
            ))
        })?;
        Ok(Source::Toy { name, toy })
    }

    /// A short name for file names and titles: the toy's name or the file's stem.
    pub fn name(&self) -> String {
        match self {
            Source::Toy { name, .. } => (*name).to_string(),
            Source::File(p) => p
                .file_stem()
                .map_or_else(|| "data".into(), |s| s.to_string_lossy().into_owned()),
        }
    }

    /// How the summary describes the data.
    pub fn describe(&self, data: &Dataset) -> String {
        match self {
            Source::Toy { name, .. } => format!(
                "toy:{name} ({} generated samples, d = {})",
                data.len(),
                data.d
            ),
            Source::File(p) => format!("{} ({} samples, d = {})", p.display(), data.len(), data.d),
        }
    }

    /// Reads the file, or draws `n` toy samples under `seed` (a different
    /// draw for each [`Purpose`]). Errors are one line naming the file.
    pub fn load(&self, n: usize, seed: u64, purpose: Purpose) -> Result<Dataset> {
        match self {
            Source::File(path) => load_file(path),
            Source::Toy { name, toy } => {
                let d = toy.dim();
                if n == 0 {
                    return Err("the number of samples must be at least 1".into());
                }
                if n.checked_mul(d).is_none_or(|f| f > MAX_FLOATS) {
                    return Err(Error::new(format!(
                        "{n} samples of toy:{name} (d = {d}) is more than {MAX_FLOATS} floats"
                    )));
                }
                // Distinct seeds of the generator's streams for the two purposes.
                let data_seed = match purpose {
                    Purpose::Fit => seed ^ 0x9e37_79b9_7f4a_7c15,
                    Purpose::HeldOut => seed ^ 0xd1b5_4a32_d192_ed03,
                };
                toy.generate(n, data_seed)
                    .map_err(|e| Error::new(format!("toy:{name}: {e}")))
            }
        }
    }
}

/// `data::load` with the path in every message.
fn load_file(path: &Path) -> Result<Dataset> {
    data::load(path, None).map_err(|e| {
        let shown = path.display().to_string();
        if e.contains(&shown) {
            Error::new(e)
        } else {
            Error::new(format!("{shown}: {e}"))
        }
    })
}

/// Fails unless the data's dimension is the model's, naming both.
pub fn check_dim(data: &Dataset, source: &Source, d_model: usize, model: &Path) -> Result<()> {
    if data.d == d_model {
        return Ok(());
    }
    let what = match source {
        Source::Toy { name, .. } => format!("toy:{name}"),
        Source::File(p) => p.display().to_string(),
    };
    Err(Error::new(format!(
        "{what}: the data have d = {}, the model {} has d = {d_model}",
        data.d,
        model.display()
    )))
}

/// A random subset of `n` points under `seed` (all of them when `n >= len`).
pub fn subset(data: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    let len = data.len();
    if n == 0 {
        return Err("the number of points must be at least 1".into());
    }
    if n >= len {
        return Ok(data.clone());
    }
    let (_, chosen) = data
        .split(n as f64 / len as f64, seed)
        .map_err(Error::new)?;
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert!(matches!(
            Source::parse("toy:moons").unwrap(),
            Source::Toy {
                toy: Toy::TwoMoons,
                ..
            }
        ));
        assert!(matches!(
            Source::parse("toy:gmm").unwrap(),
            Source::Toy {
                toy: Toy::Target(_),
                ..
            }
        ));
        assert!(Source::parse("toy:nope").is_err());
        assert!(Source::parse("").is_err());
        assert_eq!(Source::parse("a/b.csv").unwrap().name(), "b");
    }

    #[test]
    fn purposes_draw_different_points_and_subsets_have_n() {
        let s = Source::parse("toy:moons").unwrap();
        let a = s.load(100, 0, Purpose::Fit).unwrap();
        let b = s.load(100, 0, Purpose::HeldOut).unwrap();
        assert_eq!(a, s.load(100, 0, Purpose::Fit).unwrap());
        assert_ne!(a, b);
        assert_eq!(subset(&a, 30, 1).unwrap().len(), 30);
        assert_eq!(subset(&a, 300, 1).unwrap().len(), 100);
        assert!(s.load(0, 0, Purpose::Fit).is_err());
    }
}
