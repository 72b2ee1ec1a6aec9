//! Shared by the benchmark harnesses: a column's summary over seeds.

/// Median, smallest and largest of a column's values.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    /// "median [min, max]" with `digits` decimals, with a `+` on positive
    /// values when `signed`.
    pub fn text(&self, digits: usize, signed: bool) -> String {
        let f = |x: f64| {
            if signed {
                format!("{x:+.digits$}")
            } else {
                format!("{x:.digits$}")
            }
        };
        format!("{} [{}, {}]", f(self.median), f(self.min), f(self.max))
    }

    /// "median,min,max" with 5 decimals.
    pub fn csv(&self) -> String {
        format!("{:.5},{:.5},{:.5}", self.median, self.min, self.max)
    }
}

/// The runs already in a harness's runs file (one CSV line each), or none
/// when it is missing or its header is not `header` (another format).
pub fn load_runs(path: &std::path::Path, header: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .ok()
        .filter(|text| text.lines().next() == Some(header))
        .map(|text| text.lines().skip(1).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Writes the runs file atomically (a temporary file renamed over it), so
/// that an interrupted benchmark never loses the runs it had.
pub fn save_runs(path: &std::path::Path, header: &str, runs: &[String]) {
    let text = std::iter::once(header.to_string())
        .chain(runs.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    let tmp = path.with_extension("csv.tmp");
    std::fs::write(&tmp, text).expect("write runs");
    std::fs::rename(&tmp, path).expect("replace runs file");
}
