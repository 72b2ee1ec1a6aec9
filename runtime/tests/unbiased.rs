//! `E[exp(-R_disc)] = Z` holds at every step count, for any control: the
//! backward chain started at `pi` is a proper distribution (MATH.md §4).

mod common;

use common::{mean_std, run};
use diffctl_runtime::control::GaussianOptimalControl;
use diffctl_runtime::integrate::Sampler;
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::{DiagGaussian, Scaled};

#[test]
fn r_disc_is_unbiased_at_five_steps_with_an_imperfect_control() {
    let sde = Sde::default();
    // The optimal control of N(0.8, 0.6^2) on the target 3 N(1, 0.5^2).
    let (cm, cs) = ([0.8f32], [0.6f32]);
    let (tm, ts) = ([1.0f32], [0.5f32]);
    let target = Scaled {
        inner: DiagGaussian::new(&tm, &ts),
        log_scale: 3f32.ln(),
    };
    let z = 3f32.ln().exp() as f64; // Z as the f32 log-scale represents it
    for integrator in [Integrator::EulerMaruyama, Integrator::Exponential] {
        let sampler = Sampler {
            sde,
            grid: TimeGrid::Uniform,
            steps: 5,
            integrator,
            prior: Prior::standard(1),
            control: GaussianOptimalControl {
                sde,
                mean: &cm,
                std: &cs,
            },
            target: Some(target),
        };
        let n = 1_000_000;
        let (_, costs) = run(&sampler, 2024, n);
        let w_disc: Vec<f64> = costs.iter().map(|c| (-c.r_disc).exp()).collect();
        let w_cont: Vec<f64> = costs.iter().map(|c| (-c.r).exp()).collect();
        let (m_disc, s_disc) = mean_std(&w_disc);
        let (m_cont, s_cont) = mean_std(&w_cont);
        let (se_disc, se_cont) = (s_disc / (n as f64).sqrt(), s_cont / (n as f64).sqrt());
        println!(
            "{integrator:?}, K=5: mean exp(-R_disc) = {m_disc:.4} +- {se_disc:.4}, \
             mean exp(-R) = {m_cont:.4} +- {se_cont:.4} (Z = 3)"
        );
        assert!(
            (m_disc - z).abs() < 4.0 * se_disc,
            "R_disc estimate {m_disc} vs Z = 3"
        );
        // The continuous form is visibly biased at K = 5.
        assert!(
            (m_cont - z).abs() > 4.0 * se_cont,
            "R estimate {m_cont} unexpectedly unbiased"
        );
    }
}
