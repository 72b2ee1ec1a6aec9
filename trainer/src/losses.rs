//! Training losses of MATH.md §4 (DIS) and §6 (PIS, DDS): simulated rollouts
//! of the generative SDE whose path costs are differentiated with the tape.
//!
//! Both losses share one rollout, driven by the runtime's path simulator
//! ([`PathSimulator`]: start, step, advance, finish), so a training path and
//! a device path are the same arithmetic apart from the network evaluation
//! (batched here, on the tape) and the target (batched, [`TrainTarget`]).
//!
//! * **Log-variance** (default): the SDE is driven by the detached control
//!   `w_bar`, and `R(w)` is the cost of that fixed path under control `w`. Its
//!   value at `w = w_bar` is the ordinary cost; its derivative there is
//!   `dR/dw_k = c_k xi_k` with `c_k = sqrt(h)` for the continuous form
//!   (from `w.(w_bar - w/2) h + sqrt(h) w.xi`) and `c_k = gain / std` for the
//!   discrete form (from `log p_k(X_{k+1} | X_k; w)`). So `R` is
//!   `sum_k w_k . (c_k xi_k)` plus a constant offset carrying the exact
//!   value, and the loss is the batch variance of `R`: no backpropagation
//!   through states. Its gradient `sum_i dL/dR_i sum_k (c_k xi_k) dw_k/dθ`
//!   needs `dL/dR_i`, known only once every path has ended, so training
//!   runs twice over the steps: a forward pass without a tape
//!   ([`Rollout::log_variance`]: paths, costs, and per step the state, the
//!   target score and `c_k xi_k`), then the backward pass
//!   ([`Rollout::log_variance_backward`]) recomputes one step's network on
//!   a tape and backpropagates it at once, last step first. One step's
//!   activations fit in cache; a tape over all steps would not.
//!   *Exploration* (`explore > 1`, discrete form only): the fixed path is
//!   drawn with its noise scaled, `X_{k+1} = decay X_k + gain w_bar + std kappa xi`.
//!   `R_disc` is still `log p(path; w) - log q(path) - log rho`, evaluated at
//!   that path, with residual `kappa xi` and derivative `(gain / std) kappa xi`:
//!   the same code with `xi` replaced by `kappa xi`. Var(R) is zero exactly
//!   when the model's path density is proportional to the target's, as
//!   on-policy. What changes is where a finite batch looks: on-policy, a
//!   model that has dropped modes almost never draws a path into them, so
//!   the batch variance sees no cost for them; the wider paths do reach them.
//! * **KL**: states are reparametrised functions of the parameters and
//!   everything is on the tape: `mean R` without the Itô term (continuous) or
//!   the `q_k` terms and `-log rho(X_K)` (discrete; `log p_k` is then a
//!   constant). The target score inside the network is a constant
//!   (stop-gradient), `log rho(X_K)` enters with its score as Jacobian.
//!
//! `w` is the control `u`, or `v = u + sigma_bar x` for the exponential
//! integrator (MATH.md §4). Losses are divided by `d`.

use std::ops::Range;

use diffctl_runtime::integrate::{PathCost, PathSimulator, PathState, Step};
use diffctl_runtime::network::network_time;
use diffctl_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use crate::autodiff::{Eval, Grads, Graph, Mode, Params, Tape, Var};
use crate::eval::CostForm;
use crate::network::{BatchedNetwork, ScoreTerm};
use crate::target::TrainTarget;

/// Training objective.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Variance of the path cost over the batch (Richter & Berner, ICLR 2024).
    #[default]
    LogVariance,
    /// Mean path cost, differentiated through the trajectory (the DIS paper).
    Kl,
}

/// Everything a rollout needs besides the parameters.
#[derive(Clone)]
pub struct Rollout<'t> {
    pub net: BatchedNetwork,
    pub header: Header,
    pub target: &'t dyn TrainTarget,
    pub loss: Loss,
    pub cost: CostForm,
    /// Scale of the log-variance loss's path noise (1: on-policy). The paths
    /// then come from a wider process, but `R_disc` is still the model's
    /// density ratio at those paths, so the loss keeps its minimiser.
    pub explore: f32,
}

/// The KL rollout over one shard.
pub struct ShardOutput {
    /// `[n, 1]` on the tape: the differentiable part of the path cost.
    /// Paths whose `log rho(X_K)` is `-inf` or NaN hold 0 here and are
    /// flagged in `valid`.
    pub r: Var,
    /// Exact path costs (f64, runtime arithmetic) of the shard's paths.
    pub costs: Vec<PathCost>,
    /// Whether each path's `log rho(X_K)` was finite.
    pub valid: Vec<bool>,
    /// Paths whose `log rho(X_K)` was NaN (a target error).
    pub nan: usize,
}

/// The log-variance rollout's forward pass over one shard.
pub struct LogVariancePaths {
    /// The path costs `R_i` (the loss's cost form; paths that are not valid
    /// hold the mean of the valid ones).
    pub r: Vec<f32>,
    /// Exact path costs (f64, runtime arithmetic) of the shard's paths.
    pub costs: Vec<PathCost>,
    /// Whether each path's `log rho(X_K)` was finite.
    pub valid: Vec<bool>,
    /// Paths whose `log rho(X_K)` was NaN (a target error).
    pub nan: usize,
    replay: Replay,
}

/// Per step `k`, what recomputing the step's control needs: rows
/// `k n d .. (k + 1) n d` of each array.
struct Replay {
    /// The states `X_k`.
    x: Vec<f32>,
    /// The clamped target scores at `X_k` (empty without the score term).
    score: Vec<f32>,
    /// `dR/dw_k = c_k xi_k` (module docs).
    seed: Vec<f32>,
    /// 1 for valid paths, 0 for the others (`None`: all valid).
    mask: Option<Vec<f32>>,
}

/// The shard's paths between steps: states, random streams and costs.
struct Paths {
    x: Vec<f32>,
    states: Vec<PathState>,
}

impl Rollout<'_> {
    fn d(&self) -> usize {
        self.header.shape.d as usize
    }

    /// The runtime's path simulator for the header's SDE, grid and integrator.
    fn simulator(&self) -> PathSimulator<'static> {
        PathSimulator::new(
            self.header.sde,
            self.header.grid,
            self.header.steps as usize,
            self.header.integrator,
            self.header.prior(),
        )
        .expect("validated configuration")
    }

    /// The target score at every row of `x`, clamped to the header's clip,
    /// when the network has the score term (it enters as a constant).
    fn target_score(&self, x: &[f32]) -> Option<Vec<f32>> {
        self.header.shape.score_term.then(|| {
            let clip = self.header.score_clip;
            let mut s = vec![0.0f32; x.len()];
            self.target.score_batch(x, &mut s);
            s.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
            s
        })
    }

    /// `w(x, t)`: the network's control (plus the DDS offset) and the
    /// simulator's `w` offset (the exponential integrator's `+ sigma_bar x`),
    /// given the clamped target score at `x` ([`Self::target_score`]).
    fn control<M: Mode>(
        &self,
        g: &mut Graph<M>,
        bound: &crate::network::BoundNetwork,
        x: Var,
        target_score: Option<&[f32]>,
        sim: &PathSimulator,
        step: &Step,
    ) -> Var {
        let sde = self.header.sde;
        let t = step.t0;
        let te = self
            .net
            .time_embedding(g, bound, network_time(t, &self.header.sde));
        let score = target_score.map(|s| ScoreTerm {
            sigma_bar: sde.sigma_bar(t as f64) as f32,
            lambda: t / sde.t_end(),
            nu: prior_nu(&self.header),
            target_score: g.constant_from(x.rows(), x.cols(), s),
        });
        let mut w = self.net.control(g, bound, &te, x, score.as_ref());
        let mut offset = sim.w_offset(step);
        if self.header.sampler == SamplerKind::Dds {
            offset -= sde.sigma_bar(t as f64) as f32;
        }
        if offset != 0.0 {
            let sx = g.scale(x, offset);
            w = g.add(w, sx);
        }
        w
    }

    /// The log-variance loss's forward pass over the paths `range` of the
    /// batch drawn under `seed`, without a tape: the per-sample costs, and per
    /// step what [`Self::log_variance_backward`] needs to recompute it.
    pub fn log_variance(
        &self,
        g: &mut Eval,
        params: &Params,
        seed: u64,
        range: Range<usize>,
    ) -> LogVariancePaths {
        assert_eq!(self.loss, Loss::LogVariance);
        assert!(
            self.explore == 1.0 || self.cost == CostForm::Discrete,
            "exploration needs the discrete cost"
        );
        let (d, n) = (self.d(), range.len());
        let sim = self.simulator();
        let mut paths = self.start(&sim, seed, &range);
        g.clear();
        let bound = self.net.bind(g, params);
        let bound_len = g.len();
        let steps = sim.steps;
        let mut replay = Replay {
            x: Vec::with_capacity(steps * n * d),
            score: Vec::new(),
            seed: Vec::with_capacity(steps * n * d),
            mask: None,
        };
        let mut linear = vec![0.0f32; n];
        for k in 0..steps {
            g.truncate(bound_len);
            let step = sim.step(k);
            let score = self.target_score(&paths.x);
            replay.x.extend_from_slice(&paths.x);
            let xv = g.constant_from(n, d, &paths.x);
            let w = self.control(g, &bound, xv, score.as_deref(), &sim, &step);
            let xi = self.advance(&sim, &step, &mut paths, &g.value(w).data, self.explore);
            // dR/dw at w = w_bar (module docs).
            let c = match self.cost {
                CostForm::Continuous => step.h.sqrt() as f32,
                CostForm::Discrete => step.gain / step.std,
            };
            let seed_k: Vec<f32> = xi.iter().map(|v| c * v).collect();
            // The linear part's value, `sum_k w_k . seed_k`, in the tape's arithmetic.
            let sv = g.constant_from(n, d, &seed_k);
            let term = g.mul(w, sv);
            let term = g.sum_cols(term);
            for (l, t) in linear.iter_mut().zip(&g.value(term).data) {
                *l = if k == 0 { *t } else { *l + *t };
            }
            replay.seed.extend_from_slice(&seed_k);
            if let Some(s) = score {
                replay.score.extend_from_slice(&s);
            }
        }
        g.truncate(bound_len);
        let (_, costs, valid, nan) = self.finish(&sim, &paths.x, &paths.states);
        // The value is the exact cost: linear part plus a constant offset. A
        // path of weight zero (log rho = -inf) or NaN takes the mean cost of
        // the shard's valid paths, as a constant: it adds nothing to the
        // batch variance's gradient.
        let valid_costs: Vec<f64> = costs
            .iter()
            .zip(&valid)
            .filter(|(_, &ok)| ok)
            .map(|(c, _)| self.cost.of(c))
            .collect();
        let fill = if valid_costs.is_empty() {
            0.0
        } else {
            valid_costs.iter().sum::<f64>() / valid_costs.len() as f64
        };
        if !valid.iter().all(|&v| v) {
            let mask: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
            linear.iter_mut().zip(&mask).for_each(|(l, m)| *l *= m);
            replay.mask = Some(mask);
        }
        let r = costs
            .iter()
            .zip(&linear)
            .zip(&valid)
            .map(|((c, &l), &ok)| {
                let offset = if ok {
                    (self.cost.of(c) - l as f64) as f32
                } else {
                    fill as f32
                };
                l + offset
            })
            .collect();
        LogVariancePaths {
            r,
            costs,
            valid,
            nan,
            replay,
        }
    }

    /// Adds `sum_i dr_i dR_i / d params` to `grads` for the paths of
    /// `paths` (its forward pass), one time step at a time from the last:
    /// each step's network is recomputed on `g` (cleared first) at the
    /// stored state and score, and backpropagated from the seed
    /// `dr_i c_k xi_k` while its activations are in cache. The gradients
    /// accumulate in the same order as one tape over all steps would.
    pub fn log_variance_backward(
        &self,
        paths: &LogVariancePaths,
        dr: &[f32],
        g: &mut Tape,
        params: &Params,
        grads: &mut Grads,
    ) {
        let (d, n) = (self.d(), paths.r.len());
        assert_eq!(dr.len(), n);
        let sim = self.simulator();
        let replay = &paths.replay;
        let dr: Vec<f32> = match &replay.mask {
            Some(m) => dr.iter().zip(m).map(|(g, m)| g * m).collect(),
            None => dr.to_vec(),
        };
        g.clear();
        let bound = self.net.bind(g, params);
        let bound_len = g.len();
        let mut seed = vec![0.0f32; n * d];
        for k in (0..sim.steps).rev() {
            g.truncate(bound_len);
            let step = sim.step(k);
            let rows = k * n * d..(k + 1) * n * d;
            let score = (!replay.score.is_empty()).then(|| &replay.score[rows.clone()]);
            let xv = g.constant_from(n, d, &replay.x[rows.clone()]);
            let w = self.control(g, &bound, xv, score, &sim, &step);
            for ((out, s), dr) in seed
                .chunks_exact_mut(d)
                .zip(replay.seed[rows].chunks_exact(d))
                .zip(&dr)
            {
                out.iter_mut().zip(s).for_each(|(o, s)| *o = dr * s);
            }
            g.backward_seeded(w, &seed, grads);
        }
    }

    /// The simulator's start of every path of `range` (indices in the batch).
    fn start(&self, sim: &PathSimulator, seed: u64, range: &Range<usize>) -> Paths {
        let (d, n) = (self.d(), range.len());
        let mut x = vec![0.0f32; n * d];
        let mut states = vec![PathState::default(); n];
        for ((i, row), state) in range.clone().zip(x.chunks_exact_mut(d)).zip(&mut states) {
            sim.start(seed, i as u64, row, state, true);
        }
        Paths { x, states }
    }

    /// One step of every path with the controls `w` (`n x d`); returns the
    /// noises drawn (scaled by `kappa`).
    fn advance(
        &self,
        sim: &PathSimulator,
        step: &Step,
        p: &mut Paths,
        w: &[f32],
        kappa: f32,
    ) -> Vec<f32> {
        let d = self.d();
        let mut xi = vec![0.0f32; p.x.len()];
        for (((x, w), xi), state) in
            p.x.chunks_exact_mut(d)
                .zip(w.chunks_exact(d))
                .zip(xi.chunks_exact_mut(d))
                .zip(&mut p.states)
        {
            sim.advance(step, x, w, xi, state, true, kappa);
        }
        xi
    }

    /// `log rho(X_K)` of every path (batched), the simulator's `finish`
    /// into the exact costs, and which paths are valid (finite `log rho`).
    fn finish(
        &self,
        sim: &PathSimulator,
        x: &[f32],
        states: &[PathState],
    ) -> (Vec<f32>, Vec<PathCost>, Vec<bool>, usize) {
        let d = self.d();
        let mut log_rho = vec![0.0f32; states.len()];
        self.target.log_density_batch(x, &mut log_rho);
        let mut costs: Vec<PathCost> = states.iter().map(|s| s.cost).collect();
        for ((row, c), &lr) in x.chunks_exact(d).zip(costs.iter_mut()).zip(&log_rho) {
            sim.finish(row, lr as f64, c);
        }
        let valid: Vec<bool> = log_rho.iter().map(|v| v.is_finite()).collect();
        // NaN at a finite state is the target's fault; at a non-finite state
        // the model diverged (reported by the loop as such).
        let nan = x
            .chunks_exact(d)
            .zip(&log_rho)
            .filter(|(row, lr)| lr.is_nan() && row.iter().all(|v| v.is_finite()))
            .count();
        (log_rho, costs, valid, nan)
    }

    /// The KL loss's per-sample values over the paths `range` of the batch
    /// drawn under `seed`, on `g` (see the module docs).
    pub fn kl<M: Mode>(
        &self,
        g: &mut Graph<M>,
        params: &Params,
        seed: u64,
        range: Range<usize>,
    ) -> ShardOutput {
        assert_eq!(self.loss, Loss::Kl);
        assert_eq!(self.explore, 1.0, "exploration needs the log-variance loss");
        let (d, n) = (self.d(), range.len());
        let sim = self.simulator();
        let mut paths = self.start(&sim, seed, &range);
        let bound = self.net.bind(g, params);
        let mut x = g.constant_from(n, d, &paths.x);
        let mut terms: Vec<Var> = Vec::new();
        for k in 0..sim.steps {
            let step = sim.step(k);
            let score = self.target_score(&paths.x);
            let w = self.control(g, &bound, x, score.as_deref(), &sim, &step);
            let w_val = g.value(w).data.clone();
            let xi = self.advance(&sim, &step, &mut paths, &w_val, 1.0);
            // Reparametrised step on the tape.
            let a = g.scale(x, step.decay);
            let b = g.scale(w, step.gain);
            let noise: Vec<f32> = xi.iter().map(|v| step.std * v).collect();
            let noise = g.constant_from(n, d, &noise);
            let ab = g.add(a, b);
            let x_next = g.add(ab, noise);
            match self.cost {
                CostForm::Continuous => {
                    // 1/2 |w|^2 h (the Ito term has mean zero and is left out).
                    let sq = g.square(w);
                    let sq = g.sum_cols(sq);
                    terms.push(g.scale(sq, 0.5 * step.h as f32));
                }
                CostForm::Discrete if step.q_var > 0.0 => {
                    // -log q_k(X_k | X_{k+1}) up to a constant.
                    let back = g.scale(x_next, step.q_decay as f32);
                    let res = g.sub(x, back);
                    let sq = g.square(res);
                    let sq = g.sum_cols(sq);
                    terms.push(g.scale(sq, (0.5 / step.q_var) as f32));
                }
                CostForm::Discrete => {}
            }
            x = x_next;
        }
        // The tape's x and the simulator's agree to rounding; the exact
        // costs use the latter, the gradient the former.
        let (_, costs, valid, nan) = self.finish(&sim, &paths.x, &paths.states);
        let x_tape = g.value(x).data.clone();
        // -log rho(X_K), plus the continuous cost's terminal Gaussian term,
        // with their gradients in X_K as Jacobian (the terminal term is the
        // simulator's: `PathSimulator::terminal_term`).
        let mut value = vec![0.0f32; n];
        let mut jac = vec![0.0f32; n * d];
        self.target.log_density_batch(&x_tape, &mut value);
        self.target.score_batch(&x_tape, &mut jac);
        value.iter_mut().for_each(|v| *v = -*v);
        jac.iter_mut().for_each(|v| *v = -*v);
        let terminal = (self.cost == CostForm::Continuous)
            .then(|| sim.scheme.terminal_gaussian(&sim.sde, d))
            .flatten();
        if let Some(gauss) = terminal {
            let mut gj = vec![0.0f32; d];
            for ((row, v), jr) in x_tape
                .chunks_exact(d)
                .zip(&mut value)
                .zip(jac.chunks_exact_mut(d))
            {
                *v += diffctl_runtime::Target::log_density(&gauss, row);
                diffctl_runtime::Target::score(&gauss, row, &mut gj);
                jr.iter_mut().zip(&gj).for_each(|(j, s)| *j += s);
            }
        }
        for ((v, jr), &ok) in value.iter_mut().zip(jac.chunks_exact_mut(d)).zip(&valid) {
            if !ok {
                *v = 0.0;
                jr.fill(0.0);
            }
        }
        let mut r = g.rowwise_external(x, &value, &jac);
        for t in terms {
            r = g.add(r, t);
        }
        if !valid.iter().all(|&v| v) {
            let mask: Vec<f32> = valid.iter().map(|&v| f32::from(u8::from(v))).collect();
            let m = g.constant_from(n, 1, &mask);
            r = g.mul(r, m);
        }
        ShardOutput {
            r,
            costs,
            valid,
            nan,
        }
    }
}

/// The `nu` of the score term's prior end: the header's prior.
fn prior_nu(header: &Header) -> f32 {
    match header.prior() {
        Prior::Isotropic(g) => g.nu,
        Prior::Diag(_) => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::{Eval, Grads, Tape, Tensor};
    use crate::target::Known;
    use diffctl_runtime::integrate::Scheme;
    use diffctl_runtime::network::{NetworkRef, NetworkShape};
    use diffctl_runtime::normal::{fill_normals, stream};

    /// The `gmm` preset, for the life of the test binary.
    fn gmm() -> &'static Known {
        Box::leak(Box::new(Known::preset("gmm").unwrap()))
    }

    fn rollout(
        loss: Loss,
        cost: CostForm,
        integrator: Integrator,
        sampler: SamplerKind,
        sde: Sde,
        score_term: bool,
    ) -> (Rollout<'static>, Params) {
        let shape = NetworkShape {
            d: 2,
            channels: 8,
            layers: 3,
            score_term,
        };
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut stream(5, 5));
        // Nonzero output layer and score weights, so every parameter matters.
        let mut rng = stream(6, 6);
        for t in &mut params.values {
            for v in &mut t.data {
                let mut z = [0.0f32];
                fill_normals(&mut rng, &mut z);
                *v += 0.2 * z[0];
            }
        }
        let header = Header {
            sampler,
            shape,
            sde,
            grid: TimeGrid::Uniform,
            steps: 10,
            integrator,
            prior_nu: 1.0,
            score_clip: 100.0,
            target: Some(TargetSpec::Gmm),
            dtype: Dtype::F32,
        };
        let r = Rollout {
            net,
            header,
            target: gmm(),
            loss,
            cost,
            explore: 1.0,
        };
        (r, params)
    }

    /// Mean of the KL rollout's per-sample values: a deterministic function
    /// of the parameters (reparametrisation), so central differences apply.
    fn kl_value(r: &Rollout, params: &Params) -> f64 {
        let mut g = Eval::new();
        let out = r.kl(&mut g, params, 3, 0..16);
        g.value(out.r).data.iter().map(|&v| v as f64).sum::<f64>() / 16.0
    }

    /// The KL loss's tape gradient against central differences of
    /// [`kl_value`] at `per_tensor` entries of every parameter tensor.
    fn check_kl_gradient(r: &Rollout, params: &mut Params, per_tensor: usize, label: &str) {
        let mut tape = Tape::new();
        let out = r.kl(&mut tape, params, 3, 0..16);
        let s = tape.sum(out.r);
        let loss = tape.scale(s, 1.0 / 16.0);
        let mut grads = Grads::zeros_like(params);
        tape.backward(loss, &mut grads);
        for id in 0..params.values.len() {
            let n = params.values[id].data.len();
            for j in (0..n).step_by(n.div_ceil(per_tensor)) {
                let orig = params.values[id].data[j];
                let h = 1e-2f32;
                params.values[id].data[j] = orig + h;
                let up = kl_value(r, params);
                params.values[id].data[j] = orig - h;
                let down = kl_value(r, params);
                params.values[id].data[j] = orig;
                let fd = (up - down) / (2.0 * h as f64);
                let got = grads.tensors[id].data[j] as f64;
                let tol = 2e-2 * got.abs().max(fd.abs()) + 2e-3 * (1.0 + up.abs() / 10.0);
                assert!(
                    (fd - got).abs() < tol,
                    "{label}: param {} [{j}]: tape {got} vs fd {fd}",
                    params.names()[id]
                );
            }
        }
    }

    /// Tape gradient of the KL loss against central differences in every
    /// parameter tensor (a sample of entries each), for every cost form and
    /// scheme. Without the score term: with it, the loss's gradient treats the
    /// target score inside the network as a constant (MATH.md §4), which
    /// finite differences cannot.
    #[test]
    fn kl_gradient_matches_finite_differences() {
        let pis = Sde::pis_reference();
        let vp = Sde::default();
        for (cost, integrator, sampler, sde) in [
            (
                CostForm::Continuous,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                vp,
            ),
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                vp,
            ),
            (
                CostForm::Continuous,
                Integrator::Exponential,
                SamplerKind::Dds,
                vp,
            ),
            (
                CostForm::Discrete,
                Integrator::Exponential,
                SamplerKind::Dds,
                vp,
            ),
            (
                CostForm::Continuous,
                Integrator::EulerMaruyama,
                SamplerKind::Pis,
                pis,
            ),
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Pis,
                pis,
            ),
        ] {
            let (r, mut params) = rollout(Loss::Kl, cost, integrator, sampler, sde, false);
            let label = format!("{cost:?} {integrator:?} {sampler:?}");
            check_kl_gradient(&r, &mut params, 4, &label);
        }
    }

    /// Log-variance loss `Var(R(w'; path of w_bar)) / d` by direct evaluation:
    /// the path (states, noises) is simulated once with `params`, then its
    /// cost is re-evaluated with the control of `probe` in place of `w_bar`
    /// (MATH.md §4: continuous form `w.(w_bar - w/2) h + sqrt(h) w.xi`;
    /// discrete form `log p_k(X_{k+1} | X_k; w)`).
    fn frozen_path_loss(r: &Rollout, params: &Params, probe: &Params, seed: u64, n: usize) -> f64 {
        let d = r.d();
        let sim = r.simulator();
        let mut paths = r.start(&sim, seed, &(0..n));
        let mut extra = vec![0.0f64; n];
        let mut g = Eval::new();
        for k in 0..sim.steps {
            let step = sim.step(k);
            let mut eval_w = |p: &Params| {
                g.clear();
                let bound = r.net.bind(&mut g, p);
                let xv = g.constant_from(n, d, &paths.x);
                let score = r.target_score(&paths.x);
                let w = r.control(&mut g, &bound, xv, score.as_deref(), &sim, &step);
                g.value(w).data.clone()
            };
            let w_bar = eval_w(params);
            let w_new = eval_w(probe);
            let x_old = paths.x.clone();
            let xi = r.advance(&sim, &step, &mut paths, &w_bar, r.explore);
            let x = &paths.x;
            for (i, slot) in extra.iter_mut().enumerate() {
                let row = i * d..(i + 1) * d;
                let mut delta = 0.0f64;
                for j in row {
                    let (wb, wn, e) = (w_bar[j] as f64, w_new[j] as f64, xi[j] as f64);
                    delta += match r.cost {
                        CostForm::Continuous => {
                            let h = step.h;
                            (wn * (wb - 0.5 * wn) * h + h.sqrt() * wn * e)
                                - (0.5 * wb * wb * h + h.sqrt() * wb * e)
                        }
                        CostForm::Discrete => {
                            let var = step.std as f64 * step.std as f64;
                            let mean =
                                |w: f64| step.decay as f64 * x_old[j] as f64 + step.gain as f64 * w;
                            let res = |w: f64| x[j] as f64 - mean(w);
                            -0.5 * (res(wn) * res(wn) - res(wb) * res(wb)) / var
                        }
                    };
                }
                *slot += delta;
            }
        }
        let (_, costs, _, _) = r.finish(&sim, &paths.x, &paths.states);
        let rs: Vec<f64> = costs
            .iter()
            .zip(&extra)
            .map(|(c, e)| r.cost.of(c) + e)
            .collect();
        let mean = rs.iter().sum::<f64>() / n as f64;
        rs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n as f64 - 1.0) / d as f64
    }

    /// `Var(R) / d` over the paths `0..n` and its gradient, as training
    /// computes them: the forward pass, the loss's gradient in `R` on a
    /// small tape, then the step-by-step backward pass.
    fn log_variance_loss_and_gradient(
        r: &Rollout,
        params: &Params,
        seed: u64,
        n: usize,
    ) -> (f64, Grads) {
        let paths = r.log_variance(&mut Eval::new(), params, seed, 0..n);
        let mut holder = Params::new();
        let id = holder.add("r", Tensor::new(n, 1, paths.r.clone()));
        let mut small = Tape::new();
        let leaf = small.param(&holder, id);
        let v = small.var_rows(leaf, 1);
        let loss = small.scale(v, 1.0 / r.d() as f32);
        small.backward(loss, &mut holder.grads);
        let mut grads = Grads::zeros_like(params);
        r.log_variance_backward(
            &paths,
            &holder.grads.tensors[0].data,
            &mut Tape::new(),
            params,
            &mut grads,
        );
        (small.item(loss) as f64, grads)
    }

    /// The log-variance gradient (tape: linear seeds `c_k xi_k` at `w = w_bar`)
    /// against central differences of the frozen-path loss, both cost forms,
    /// with the score term on (it is a constant input either way), on-policy
    /// and with exploration (wider path noise, discrete cost), DIS and PIS.
    #[test]
    fn log_variance_gradient_matches_finite_differences() {
        for (cost, integrator, sampler, explore) in [
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                1.0,
            ),
            (
                CostForm::Continuous,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                1.0,
            ),
            (
                CostForm::Discrete,
                Integrator::Exponential,
                SamplerKind::Dis,
                1.0,
            ),
            (
                CostForm::Discrete,
                Integrator::Exponential,
                SamplerKind::Dis,
                1.7,
            ),
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Pis,
                2.5,
            ),
            (
                CostForm::Discrete,
                Integrator::Exponential,
                SamplerKind::Dds,
                1.0,
            ),
            (
                CostForm::Continuous,
                Integrator::Exponential,
                SamplerKind::Dis,
                1.0,
            ),
        ] {
            let sde = if sampler == SamplerKind::Pis {
                Sde::pis_reference()
            } else {
                Sde::default()
            };
            let (mut r, params) = rollout(Loss::LogVariance, cost, integrator, sampler, sde, true);
            r.explore = explore;
            let n = 16;
            let (loss, grads) = log_variance_loss_and_gradient(&r, &params, 3, n);
            let direct = frozen_path_loss(&r, &params, &params, 3, n);
            assert!((direct - loss).abs() < 1e-3 * (1.0 + direct.abs()));
            let mut probe = params.clone();
            for id in 0..params.values.len() {
                let len = params.values[id].data.len();
                for j in (0..len).step_by(len.div_ceil(3)) {
                    let orig = params.values[id].data[j];
                    let h = 1e-2f32;
                    probe.values[id].data[j] = orig + h;
                    let up = frozen_path_loss(&r, &params, &probe, 3, n);
                    probe.values[id].data[j] = orig - h;
                    let down = frozen_path_loss(&r, &params, &probe, 3, n);
                    probe.values[id].data[j] = orig;
                    let fd = (up - down) / (2.0 * h as f64);
                    let got = grads.tensors[id].data[j] as f64;
                    let tol = 2e-2 * got.abs().max(fd.abs()) + 1e-3 * (1.0 + direct.abs());
                    assert!(
                        (fd - got).abs() < tol,
                        "{cost:?} {integrator:?} {sampler:?} explore {explore}: param {} [{j}]: \
                         tape {got} vs fd {fd}",
                        params.names()[id]
                    );
                }
            }
        }
    }

    /// The runtime's path costs of the rollout's paths (`Sampler::sample`,
    /// an independent walk over the same streams and parameters).
    fn runtime_costs(r: &Rollout, params: &Params, seed: u64, n: usize) -> Vec<PathCost> {
        let flat = params.flatten();
        let net = NetworkRef::from_flat(r.header.shape, &flat).unwrap();
        let point = r.target.point();
        let runtime = r
            .header
            .sampler_for(net, Some(&*point), None, None)
            .unwrap();
        let mut xs = vec![0.0f32; n * r.d()];
        let mut paths = vec![diffctl_runtime::integrate::PathState::default(); n];
        let mut work = vec![0.0f32; runtime.work_len(n)];
        runtime
            .sample(seed, 0, &mut xs, &mut paths, &mut work)
            .unwrap();
        paths.iter().map(|p| p.cost).collect()
    }

    /// The log-variance rollout's value is the runtime's cost of the same
    /// path, computed independently by `Sampler::sample` (the offset makes
    /// the value the rollout's exact cost, so this checks the rollout's
    /// paths and costs; the linear seeds' coefficients, which only the
    /// gradient sees, are checked by the finite-difference test above).
    #[test]
    fn log_variance_value_is_the_runtime_cost() {
        for (cost, integrator) in [
            (CostForm::Discrete, Integrator::EulerMaruyama),
            (CostForm::Continuous, Integrator::EulerMaruyama),
            (CostForm::Discrete, Integrator::Exponential),
            (CostForm::Continuous, Integrator::Exponential),
        ] {
            let (r, params) = rollout(
                Loss::LogVariance,
                cost,
                integrator,
                SamplerKind::Dis,
                Sde::default(),
                true,
            );
            let n = 16;
            let paths = r.log_variance(&mut Eval::new(), &params, 3, 0..n);
            let runtime = runtime_costs(&r, &params, 3, n);
            for (v, c) in paths.r.iter().zip(&runtime) {
                let want = cost.of(c);
                assert!(
                    (*v as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{cost:?} {integrator:?}: rollout {v} vs runtime {want}"
                );
            }
        }
    }

    /// The network on a recording tape (GELU keeping its derivative) gives
    /// the bits of the tape-free evaluation: the backward pass recomputes
    /// the forward pass's controls exactly, so its gradient is taken at the
    /// `w` that drove the paths. (The KL rollout runs the network on either.)
    #[test]
    fn tape_and_eval_give_the_same_bits() {
        let (r, params) = rollout(
            Loss::Kl,
            CostForm::Discrete,
            Integrator::Exponential,
            SamplerKind::Dis,
            Sde::default(),
            true,
        );
        let mut tape = Tape::new();
        let taped = r.kl(&mut tape, &params, 3, 0..16);
        let mut eval = Eval::new();
        let evald = r.kl(&mut eval, &params, 3, 0..16);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&tape.value(taped.r).data),
            bits(&eval.value(evald.r).data)
        );
    }

    /// The step-by-step backward pass gives the bits of one tape over all
    /// steps (the parameters' gradients accumulate straight into the store,
    /// last step first, in both), with the score term and the DDS offset on.
    #[test]
    fn step_by_step_backward_is_one_tape_bit_for_bit() {
        for sampler in [SamplerKind::Dis, SamplerKind::Dds] {
            let (r, params) = rollout(
                Loss::LogVariance,
                CostForm::Discrete,
                Integrator::Exponential,
                sampler,
                Sde::default(),
                true,
            );
            let (n, d) = (16, r.d());
            let paths = r.log_variance(&mut Eval::new(), &params, 3, 0..n);
            let dr: Vec<f32> = (0..n).map(|i| (i as f32 - 7.3) * 0.11).collect();
            let mut stepwise = Grads::zeros_like(&params);
            r.log_variance_backward(&paths, &dr, &mut Tape::new(), &params, &mut stepwise);

            let mut one = Tape::new();
            let bound = r.net.bind(&mut one, &params);
            let sim = r.simulator();
            let replay = &paths.replay;
            let mut total = None;
            for k in 0..sim.steps {
                let step = sim.step(k);
                let rows = k * n * d..(k + 1) * n * d;
                let xv = one.constant_from(n, d, &replay.x[rows.clone()]);
                let w = r.control(
                    &mut one,
                    &bound,
                    xv,
                    Some(&replay.score[rows.clone()]),
                    &sim,
                    &step,
                );
                let seed: Vec<f32> = replay.seed[rows]
                    .iter()
                    .enumerate()
                    .map(|(e, s)| dr[e / d] * s)
                    .collect();
                let sv = one.constant_from(n, d, &seed);
                let t = one.mul(w, sv);
                let t = one.sum(t);
                total = Some(match total {
                    Some(acc) => one.add(acc, t),
                    None => t,
                });
            }
            let mut whole = Grads::zeros_like(&params);
            one.backward(total.unwrap(), &mut whole);
            let bits = |g: &Grads| {
                g.tensors
                    .iter()
                    .flat_map(|t| t.data.iter().map(|v| v.to_bits()))
                    .collect::<Vec<_>>()
            };
            assert!(whole.global_norm() > 1e-3);
            assert_eq!(bits(&stepwise), bits(&whole), "{sampler:?}");
        }
    }

    /// The KL objective is the path cost without its control-free and
    /// zero-mean parts: on the same paths, `R_disc - KL` (discrete) is
    /// `log p(X_0) + sum_k [log p_k - log_norm(q_k)]`, whose mean is known
    /// (`E log N(X_0) = -d/2 (log 2 pi nu^2 + 1)`, `E log p_k =
    /// log_norm(std_k^2) - d/2`); `R - KL` (continuous) is the boundary
    /// terms plus the Ito integral (mean 0). A KL objective that dropped the
    /// `-log q_k` terms, the boundary term or `-log rho` is off by many
    /// standard errors.
    #[test]
    fn kl_value_is_the_runtime_cost_minus_known_terms() {
        use diffctl_runtime::integrate::log_norm;
        for (cost, integrator, sampler, sde) in [
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                Sde::default(),
            ),
            (
                CostForm::Discrete,
                Integrator::Exponential,
                SamplerKind::Dds,
                Sde::default(),
            ),
            (
                CostForm::Discrete,
                Integrator::EulerMaruyama,
                SamplerKind::Pis,
                Sde::pis_reference(),
            ),
            (
                CostForm::Continuous,
                Integrator::EulerMaruyama,
                SamplerKind::Dis,
                Sde::default(),
            ),
            (
                CostForm::Continuous,
                Integrator::Exponential,
                SamplerKind::Dis,
                Sde::default(),
            ),
        ] {
            let (r, params) = rollout(Loss::Kl, cost, integrator, sampler, sde, true);
            let n = 2000;
            let mut g = Eval::new();
            let out = r.kl(&mut g, &params, 5, 0..n);
            let kl = g.value(out.r).data.clone();
            let diff: Vec<f64> = out
                .costs
                .iter()
                .zip(&kl)
                .map(|(c, &k)| cost.of(c) - k as f64)
                .collect();
            let mean = diff.iter().sum::<f64>() / n as f64;
            let var = diff.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
            let se = (var / n as f64).sqrt();
            let (d, sim) = (r.d() as f64, r.simulator());
            let nu = prior_nu(&r.header) as f64;
            let start = if sim.scheme.starts_from_prior() {
                -0.5 * d * ((std::f64::consts::TAU * nu * nu).ln() + 1.0)
            } else {
                0.0
            };
            let want = match cost {
                CostForm::Discrete => {
                    start
                        + (0..sim.steps)
                            .map(|k| {
                                let step = sim.step(k);
                                let std = step.std as f64;
                                let q = if step.q_var > 0.0 {
                                    log_norm(r.d(), step.q_var)
                                } else {
                                    0.0
                                };
                                log_norm(r.d(), std * std) - 0.5 * d - q
                            })
                            .sum::<f64>()
                }
                CostForm::Continuous => match sim.scheme {
                    // log N(X_0) at the start, -d/2 int beta_bar at the end.
                    Scheme::VpEuler => {
                        start - 0.5 * d * sde.integral_beta_bar(0.0, sde.t_end() as f64)
                    }
                    // log N(X_0; 0, nu^2) - log N(X_0; 0, 1): 0 for nu = 1.
                    _ => 0.0,
                },
            };
            assert!(
                (mean - want).abs() < 4.0 * se + 1e-3,
                "{cost:?} {integrator:?} {sampler:?}: mean(R - KL) {mean:.4} +- {se:.4}, expected {want:.4}"
            );
        }
    }

    /// A target whose score is constant (`log rho = c . x`): the score term's
    /// stop-gradient is then exact, so finite differences check the KL
    /// gradient with the score term on (the default DIS network).
    struct Tilted;
    impl Target for Tilted {
        fn dim(&self) -> usize {
            2
        }
        fn log_density(&self, x: &[f32]) -> f32 {
            0.7 * x[0] - 0.4 * x[1]
        }
        fn score(&self, _x: &[f32], out: &mut [f32]) {
            out[0] = 0.7;
            out[1] = -0.4;
        }
    }

    #[test]
    fn kl_gradient_with_the_score_term_matches_finite_differences() {
        for (cost, integrator) in [
            (CostForm::Discrete, Integrator::Exponential),
            (CostForm::Continuous, Integrator::EulerMaruyama),
        ] {
            let (mut r, mut params) = rollout(
                Loss::Kl,
                cost,
                integrator,
                SamplerKind::Dis,
                Sde::default(),
                true,
            );
            r.target = &Tilted;
            r.header.target = None;
            check_kl_gradient(&r, &mut params, 3, &format!("{cost:?} {integrator:?}"));
        }
    }

    /// A training rollout and the runtime sampling the same parameters walk
    /// the same paths: same normals, same network (time input `t / T`
    /// included), same costs, for every sampler and integrator. Catches any
    /// drift between what is trained and what is shipped.
    #[test]
    fn training_paths_are_the_runtime_paths() {
        for (sampler, sde, integrator) in [
            (SamplerKind::Dis, Sde::default(), Integrator::EulerMaruyama),
            (SamplerKind::Dis, Sde::default(), Integrator::Exponential),
            (SamplerKind::Dds, Sde::default(), Integrator::Exponential),
            (
                SamplerKind::Pis,
                Sde::pis_reference(),
                Integrator::EulerMaruyama,
            ),
        ] {
            let (r, params) = rollout(
                Loss::LogVariance,
                CostForm::Discrete,
                integrator,
                sampler,
                sde,
                true,
            );
            let n = 16;
            let mut g = Eval::new();
            let trained = r.log_variance(&mut g, &params, 11, 0..n).costs;
            let runtime = runtime_costs(&r, &params, 11, n);
            for (i, (a, b)) in trained.iter().zip(&runtime).enumerate() {
                let (a, b) = (a.r_disc, b.r_disc);
                assert!(
                    (a - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "{sampler:?} {integrator:?} path {i}: trainer {a} vs runtime {b}"
                );
            }
        }
    }
}
