//! `E[exp(-R_disc)] = Z` holds at every step count, for any control: the
//! backward chain started at `pi` is a proper distribution (MATH.md §4).

mod common;

use common::{mean_std, run};
use diffctl_runtime::control::GaussianOptimalControl;
use diffctl_runtime::integrate::Sampler;
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::{DiagGaussian, Scaled};
use diffctl_runtime::Control;

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

/// A constant control `u = c` (any control is valid for unbiasedness).
#[derive(Clone, Copy, Debug)]
struct ConstantControl {
    c: f32,
    d: usize,
}

impl Control for ConstantControl {
    fn dim(&self) -> usize {
        self.d
    }
    fn u(&self, _t: f32, _cache: &[f32], _x: &[f32], out: &mut [f32], _scratch: &mut [f32]) {
        out.fill(self.c);
    }
}

/// PIS (MATH.md §6): with `u = 0` the path is Brownian motion from 0, whose
/// backward kernels are Brownian bridges, so for the target `3 N(0, sigma^2 T)`
/// every path has `exp(-R_disc) = 3` exactly; and with an imperfect control on
/// `3 N(1, 0.5^2)` at K = 5, `E[exp(-R_disc)] = 3`.
#[test]
fn pis_path_costs_are_exact_and_unbiased() {
    let sde = Sde::pis_reference();
    let terminal_std = [(0.2f32 * 5.0).sqrt()];
    let zero = [0.0f32];
    let brownian_target = Scaled {
        inner: DiagGaussian::new(&zero, &terminal_std),
        log_scale: 3f32.ln(),
    };
    let sampler = Sampler {
        sde,
        grid: TimeGrid::Uniform,
        steps: 7,
        integrator: Integrator::EulerMaruyama,
        prior: Prior::standard(1),
        control: ConstantControl { c: 0.0, d: 1 },
        target: Some(brownian_target),
    };
    let (_, costs) = run(&sampler, 9, 1000);
    let worst = costs
        .iter()
        .map(|c| (c.r_disc + 3f64.ln()).abs())
        .fold(0.0, f64::max);
    println!("PIS, u = 0, target 3 N(0, sigma^2 T): max |R_disc + log 3| = {worst:.2e}");
    assert!(worst < 1e-5, "max |R_disc + log 3| = {worst}");

    let (tm, ts) = ([1.0f32], [0.5f32]);
    let target = Scaled {
        inner: DiagGaussian::new(&tm, &ts),
        log_scale: 3f32.ln(),
    };
    let sampler = Sampler {
        control: ConstantControl { c: 0.3, d: 1 },
        steps: 5,
        target: Some(target),
        ..sampler_with(sde)
    };
    let n = 1_000_000;
    let (_, costs) = run(&sampler, 77, n);
    let w: Vec<f64> = costs.iter().map(|c| (-c.r_disc).exp()).collect();
    let (m, s) = mean_std(&w);
    let se = s / (n as f64).sqrt();
    let w_cont: Vec<f64> = costs.iter().map(|c| (-c.r).exp()).collect();
    let (m_cont, _) = mean_std(&w_cont);
    println!("PIS, u = 0.3, K=5: mean exp(-R_disc) = {m:.4} +- {se:.4}, mean exp(-R) = {m_cont:.4} (Z = 3)");
    assert!(
        (m - 3.0).abs() < 4.0 * se,
        "PIS R_disc estimate {m} vs Z = 3"
    );
}

fn sampler_with(sde: Sde) -> Sampler<'static, ConstantControl, Scaled<DiagGaussian<'static>>> {
    Sampler {
        sde,
        grid: TimeGrid::Uniform,
        steps: 5,
        integrator: Integrator::EulerMaruyama,
        prior: Prior::standard(1),
        control: ConstantControl { c: 0.0, d: 1 },
        target: None,
    }
}
