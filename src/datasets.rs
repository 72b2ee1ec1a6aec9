//! `--data`: a sample file (CSV or `.npy`, `n x d`) or a built-in generator
//! `toy:NAME` (`toy:moons`, `toy:checkerboard`, `toy:8gaussians`,
//! `toy:swissroll`, or exact samples of a target preset such as `toy:gmm`).

use std::path::Path;

use diffctl_trainer::data::{self, Dataset, Toy};

use crate::args::MAX_FLOATS;
use crate::error::{Error, Result};
use crate::output::note;

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

/// `data::load` with the path in every message. A CSV header is read
/// first: the `log_w` column that `diffctl sample` writes (log importance
/// weights, not coordinates) is dropped with a note, and coordinate names
/// `x0, x1, ...` must be in order.
fn load_file(path: &Path) -> Result<Dataset> {
    let shown = path.display().to_string();
    let with_path = |e: String| {
        if e.contains(&shown) {
            Error::new(e)
        } else {
            Error::new(format!("{shown}: {e}"))
        }
    };
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    if !is_npy {
        if let Ok(bytes) = std::fs::read(path) {
            // (A .npy file under another name is not UTF-8: its magic byte 0x93.)
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let (text, dropped) = recognise_header(text).map_err(with_path)?;
                if dropped {
                    note!(
                        "{shown}: dropping column log_w (the log importance weights `diffctl sample` \
                         writes, not a coordinate); the rows are used unweighted"
                    );
                }
                return data::parse_csv(&text).map_err(with_path);
            }
        }
    }
    data::load(path, None).map_err(with_path)
}

/// Fields of a CSV line as `data::parse_csv` splits them.
fn fields(line: &str) -> Vec<&str> {
    line.split([',', ';', '\t', ' '])
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect()
}

/// The CSV text with a `log_w` column removed (and whether there was one),
/// after checking that a header's coordinate names are `x0 .. x{d-1}` in
/// order. Line numbers are kept, so later errors still point at the file's lines.
fn recognise_header(text: &str) -> Result<(std::borrow::Cow<'_, str>, bool), String> {
    let Some((k, header)) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
    else {
        return Ok((text.into(), false));
    };
    let names = fields(header);
    if names.iter().any(|f| f.parse::<f64>().is_ok()) {
        return Ok((text.into(), false)); // no header
    }
    let log_w = names.iter().position(|n| *n == "log_w");
    let coords: Vec<&str> = names.iter().copied().filter(|n| *n != "log_w").collect();
    let is_x = |n: &str| {
        n.strip_prefix('x')
            .is_some_and(|r| r.parse::<usize>().is_ok())
    };
    if coords.iter().any(|n| is_x(n)) {
        for (j, n) in coords.iter().enumerate() {
            if *n != format!("x{j}") {
                return Err(format!(
                    "line {}: the header names {n:?} where x{j} belongs (expected x0..x{}{})",
                    k + 1,
                    coords.len() - 1,
                    if log_w.is_some() { " and log_w" } else { "" }
                ));
            }
        }
    }
    let Some(drop) = log_w else {
        return Ok((text.into(), false));
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            out.push_str(line);
        } else {
            let mut f = fields(line);
            if f.len() > drop {
                f.remove(drop);
            }
            out.push_str(&f.join(","));
        }
        out.push('\n');
    }
    Ok((out.into(), true))
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
    fn sample_csv_headers_are_recognised() {
        let (t, dropped) = recognise_header("x0,x1,log_w\n1,2,-3\n\n4,5,-6\n").unwrap();
        assert!(dropped);
        let data = data::parse_csv(&t).unwrap();
        assert_eq!((data.d, data.xs.clone()), (2, vec![1.0, 2.0, 4.0, 5.0]));
        let (t, dropped) = recognise_header("x0,x1\n1,2\n").unwrap();
        assert!(!dropped && t == "x0,x1\n1,2\n");
        assert!(recognise_header("x1,x0\n1,2\n").is_err());
        assert!(recognise_header("x0,x2,log_w\n1,2,3\n").is_err());
        let (_, dropped) = recognise_header("1,2\n3,4\n").unwrap();
        assert!(!dropped);
        let (_, dropped) = recognise_header("a,b\n3,4\n").unwrap();
        assert!(!dropped);
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
