//! The Bayesian logistic regression on the shipped breast-cancer data
//! (`data/`) is the density the independent reference was computed for:
//! `log rho` at two points against the values the reference script
//! (NumPy, float64) wrote into `data/breast_cancer_reference.json`.

use std::path::Path;

use diffctl_trainer::target::logistic::{LogisticSettings, LogisticTarget};
use diffctl_trainer::target::TrainTarget;

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"))
}

/// A number after `"key":` in the JSON text (the file is flat enough).
fn json_number(text: &str, key: &str) -> f64 {
    let at = text.find(&format!("\"{key}\"")).expect("key present") + key.len() + 2;
    let rest = text[at..].trim_start_matches([':', ' ']);
    let end = rest.find([',', '\n', '}']).expect("a number");
    rest[..end].trim().parse().expect("a number")
}

/// The array after `"key":`.
fn json_array(text: &str, key: &str) -> Vec<f64> {
    let at = text.find(&format!("\"{key}\"")).expect("key present");
    let open = at + text[at..].find('[').unwrap() + 1;
    let close = open + text[open..].find(']').unwrap();
    text[open..close]
        .split(',')
        .map(|v| v.trim().parse().unwrap())
        .collect()
}

#[test]
fn breast_cancer_density_matches_the_reference_script() {
    let t = LogisticTarget::from_csv(
        &data_dir().join("breast_cancer.csv"),
        &LogisticSettings::default(),
    )
    .unwrap();
    assert_eq!((t.dim(), t.rows()), (31, 569));
    let json = std::fs::read_to_string(data_dir().join("breast_cancer_reference.json")).unwrap();
    let at_zero = json_number(&json, "log_rho_at_zero");
    let mean = json_array(&json, "posterior_mean");
    let at_mean = json_number(&json, "log_rho_at_posterior_mean");
    let point = t.point();
    for (beta, want) in [
        (vec![0.0f32; 31], at_zero),
        (mean.iter().map(|&v| v as f32).collect(), at_mean),
    ] {
        // Per point (runtime, f64 sums) and batched (f32 matrix products):
        // the coefficients are rounded to f32, so agreement to ~1e-5 relative.
        let got = point.log_density(&beta) as f64;
        let mut batch = [0.0f32];
        t.log_density_batch(&beta, &mut batch);
        for v in [got, batch[0] as f64] {
            assert!(
                (v - want).abs() < 2e-5 * want.abs(),
                "{v} vs reference {want}"
            );
        }
    }
}
