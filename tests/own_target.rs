//! Targets defined in Rust by a user (`examples/own_target.rs`: a banana and
//! an 8-d correlated Gaussian, both with closed-form `log Z` and mean),
//! trained through the public API on a small budget, exported, re-loaded and
//! sampled by the runtime. The estimates must agree with the closed forms
//! within 4 of their standard errors.

#[allow(dead_code)]
#[path = "../examples/own_target.rs"]
mod own_target;

use own_target::{config, run, Banana, CorrelatedGaussian, Outcome};

/// `log Z_is` within 4 standard errors of the truth (plus the estimator's
/// Jensen bias, about `SE^2 / 2`), every weighted mean within 4 of its
/// standard errors, and weights whose tail the estimates can trust.
fn check(name: &str, out: &Outcome, log_z: f64, mean: &[f64]) {
    let e = &out.estimates;
    let err = e.log_z_is - log_z;
    assert!(
        e.pareto_k < 0.7 && e.ess > 0.2,
        "{name}: k-hat {:.2}, ESS {:.3}: training did not reach a usable sampler",
        e.pareto_k,
        e.ess
    );
    assert!(
        err.abs() < 4.0 * e.log_z_is_se + 0.5 * e.log_z_is_se.powi(2),
        "{name}: log Z_is {:.4} +- {:.4} vs exact {log_z:.4}",
        e.log_z_is,
        e.log_z_is_se
    );
    for (j, ((m, se), t)) in out.mean.iter().zip(&out.mean_se).zip(mean).enumerate() {
        assert!(
            (m - t).abs() < 4.0 * se,
            "{name}: E x{j} {m:.4} +- {se:.4} vs exact {t:.4}"
        );
    }
}

#[test]
fn banana_trains_and_its_estimates_match_the_closed_form() {
    let t = Banana::DEFAULT;
    let out = run(&t, &config(600), 20_000).unwrap();
    println!("{:?}", out.estimates);
    check("banana", &out, t.exact_log_z(), &t.exact_mean());
}

#[test]
fn correlated_gaussian_trains_and_its_estimates_match_the_closed_form() {
    let t = CorrelatedGaussian;
    let out = run(&t, &config(600), 20_000).unwrap();
    println!("{:?}", out.estimates);
    check("gaussian8", &out, t.exact_log_z(), &t.exact_mean());
}
