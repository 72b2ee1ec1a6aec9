//! The [`Control`] trait `u(x, t)` and analytic controls.
//!
//! Integrators accept any `Control`, so the trained network and closed-form
//! controls (used by the tests) are interchangeable. A control may cache
//! quantities that depend on time only (the network's time embedding): the
//! integrator calls [`Control::prepare`] once per step and then
//! [`Control::u`] for every path of a batch at that step.

use crate::sde::Sde;

/// A control `u(x, t)` of the generative SDE (MATH.md §3).
pub trait Control {
    /// State dimension `d`.
    fn dim(&self) -> usize;
    /// Length of the per-time cache filled by [`Control::prepare`].
    fn time_cache_len(&self) -> usize {
        0
    }
    /// Length of the scratch buffer [`Control::prepare`] and [`Control::u`] need.
    fn scratch_len(&self) -> usize {
        0
    }
    /// Fills `cache` with whatever depends on `t` only.
    fn prepare(&self, _t: f32, _cache: &mut [f32], _scratch: &mut [f32]) {}
    /// Writes `u(x, t)` into `out`; `cache` is what `prepare(t)` wrote.
    fn u(&self, t: f32, cache: &[f32], x: &[f32], out: &mut [f32], scratch: &mut [f32]);
    /// Whether `u` reads the target's score `grad log rho(x)` (the network's
    /// score term). A [`crate::integrate::Sampler`] with a target then
    /// evaluates the scores of a whole block of paths at once
    /// ([`crate::Target::score_batch`]) and calls [`Control::u_scored`].
    fn uses_target_score(&self) -> bool {
        false
    }
    /// [`Control::u`] given the target's score at `x` (`target_score`,
    /// length `d`): the same value, without evaluating the score itself.
    fn u_scored(
        &self,
        t: f32,
        cache: &[f32],
        x: &[f32],
        _target_score: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        self.u(t, cache, x, out, scratch)
    }
}

impl<C: Control + ?Sized> Control for &C {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn time_cache_len(&self) -> usize {
        (**self).time_cache_len()
    }
    fn scratch_len(&self) -> usize {
        (**self).scratch_len()
    }
    fn prepare(&self, t: f32, cache: &mut [f32], scratch: &mut [f32]) {
        (**self).prepare(t, cache, scratch)
    }
    fn u(&self, t: f32, cache: &[f32], x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        (**self).u(t, cache, x, out, scratch)
    }
    fn uses_target_score(&self) -> bool {
        (**self).uses_target_score()
    }
    fn u_scored(
        &self,
        t: f32,
        cache: &[f32],
        x: &[f32],
        target_score: &[f32],
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        (**self).u_scored(t, cache, x, target_score, out, scratch)
    }
}

/// Mean and standard deviation of the VP reference marginal `Y_s` when
/// `Y_0 ~ N(m, std^2)` (one coordinate): `N(e^{-A} m, e^{-2A} std^2 + 1 - e^{-2A})`.
pub fn vp_gaussian_marginal(sde: &Sde, s: f64, m: f64, std: f64) -> (f64, f64) {
    let decay = libm::exp(-sde.a(s));
    let var = decay * decay * std * std + 1.0 - decay * decay;
    (decay * m, libm::sqrt(var))
}

/// The optimal control for a Gaussian target `N(mean, diag(std^2))` under a VP
/// SDE: `u*(x, t) = sigma_bar(t) grad log p_{Y_{T-t}}(x)`, all reference
/// marginals being Gaussian (computed in `f64`).
#[derive(Clone, Copy, Debug)]
pub struct GaussianOptimalControl<'a> {
    pub sde: Sde,
    pub mean: &'a [f32],
    pub std: &'a [f32],
}

impl Control for GaussianOptimalControl<'_> {
    fn dim(&self) -> usize {
        self.mean.len()
    }
    fn u(&self, t: f32, _cache: &[f32], x: &[f32], out: &mut [f32], _scratch: &mut [f32]) {
        let t = t as f64;
        let s = self.sde.t_end() as f64 - t;
        let sigma_bar = self.sde.sigma_bar(t);
        for (((o, &xi), &m), &sd) in out.iter_mut().zip(x).zip(self.mean).zip(self.std) {
            let (mu, st) = vp_gaussian_marginal(&self.sde, s, m as f64, sd as f64);
            *o = (sigma_bar * -(xi as f64 - mu) / (st * st)) as f32;
        }
    }
}

/// `u(x, t) = -sigma_bar(t) x`: the optimal control for the target `N(0, I)`
/// (whose reference marginals are all `N(0, I)`), evaluated in `f32`.
#[derive(Clone, Copy, Debug)]
pub struct StationaryControl {
    pub sde: Sde,
    pub d: usize,
}

impl Control for StationaryControl {
    fn dim(&self) -> usize {
        self.d
    }
    fn u(&self, t: f32, _cache: &[f32], x: &[f32], out: &mut [f32], _scratch: &mut [f32]) {
        let sigma_bar = self.sde.sigma_bar(t as f64) as f32;
        for (o, &xi) in out.iter_mut().zip(x) {
            *o = -sigma_bar * xi;
        }
    }
}
