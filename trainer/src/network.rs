//! The control network of MATH.md §5, batched, built from autodiff ops.
//!
//! ```text
//! feat = [sin(w_i tau + p_i)]_i ++ [cos(w_i tau + p_i)]_i [1, 2C], once per step (tau = t / T)
//! e_t  = W2 gelu(W1 feat + b1) + b2                         [1, C]
//! h    = (x Wx^T + bx) + e_t                                [N, C]  (e_t broadcast over the batch)
//! h    = gelu(h) Wk^T + bk                                  L - 2 hidden layers
//! NN   = gelu(h) Wo^T + bo                                  [N, d]
//! s(t) = Ws2 gelu(Ws1 feat + bs1) + bs2                     [1, 1]
//! u    = NN + sigma_bar(t) s(t) ((1 - t/T) prior_score(x) + (t/T) target_score(x))
//! ```
//!
//! The parameter layout (names, shapes, order) is the runtime's
//! [`NetworkShape::params`], which is also the weights-file order, so
//! `Params::flatten` of a freshly registered store is a valid flat weight
//! vector for `diffctl_runtime::network::NetworkRef::from_flat`.

pub use diffctl_runtime::network::NetworkShape;
use diffctl_runtime::network::{frequency, Param, ParamSpec};
use diffctl_runtime::normal::{fill_normals, uniform_f32, PathRng};

use crate::autodiff::{Graph, Mode, ParamId, Params, Tensor, Var};

/// The control network (MATH.md §5) for training: its place in a [`Params`]
/// store, evaluated batched on a tape ([`BatchedNetwork::bind`]). (The
/// runtime's `diffctl_runtime::network::Network` is the fixed-size one a
/// device holds.)
#[derive(Clone, Debug)]
pub struct BatchedNetwork {
    pub shape: NetworkShape,
    /// Parameter ids in [`NetworkShape::params`] order.
    ids: Vec<ParamId>,
}

/// The network's parameters bound as leaves of one graph. Bind once per tape
/// and reuse across time steps: the gradients of all steps then accumulate.
#[derive(Clone, Debug)]
pub struct BoundNetwork {
    pub phase: Var,
    pub time_w1: Var,
    pub time_b1: Var,
    pub time_w2: Var,
    pub time_b2: Var,
    pub state_w: Var,
    pub state_b: Var,
    pub hidden: Vec<(Var, Var)>,
    pub out_w: Var,
    pub out_b: Var,
    /// `[w1, b1, w2, b2]` of `s(t)`, when the score term is on.
    pub score: Option<[Var; 4]>,
}

/// The time-only part of the network at one time `t`: shared by the batch.
#[derive(Clone, Copy, Debug)]
pub struct TimeEmbedding {
    /// The normalised time `tau = t / T` it was computed at.
    pub tau: f32,
    /// `e_t`, `[1, C]`.
    pub e_t: Var,
    /// `s(t)`, `[1, 1]`, when the score term is on.
    pub s_t: Option<Var>,
}

/// The score-informed term's inputs at one time step.
#[derive(Clone, Copy, Debug)]
pub struct ScoreTerm {
    /// `sigma_bar(t)`.
    pub sigma_bar: f32,
    /// `t / T`.
    pub lambda: f32,
    /// Prior standard deviation: `prior_score(x) = -x / nu^2`.
    pub nu: f32,
    /// `grad log rho(x)` `[N, d]`, computed outside the tape; it must be a
    /// constant (detached): MATH.md §4 treats it as one.
    pub target_score: Var,
}

/// Uniform on `[-a, a)`.
fn uniform_sym(rng: &mut PathRng, a: f32) -> f32 {
    a * (2.0 * uniform_f32(rng) - 1.0)
}

/// Initial value of one parameter tensor (MATH.md §5): phases `N(0, 1)`;
/// linear layers PyTorch's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
/// weights and biases; the output layer and `score.w2` zero, `score.b2 = 1`.
/// The normals are the runtime's ([`fill_normals`]), the ones every sample
/// path draws.
fn init_tensor(spec: ParamSpec, rng: &mut PathRng) -> Tensor {
    let (rows, cols) = (spec.rows, spec.cols);
    match spec.param {
        Param::TimePhase => {
            let mut phases = vec![0.0; rows * cols];
            fill_normals(rng, &mut phases);
            Tensor::new(rows, cols, phases)
        }
        Param::OutW | Param::OutB | Param::ScoreW2 => Tensor::zeros(rows, cols),
        Param::ScoreB2 => Tensor::full(rows, cols, 1.0),
        _ => {
            let a = 1.0 / (spec.fan_in as f32).sqrt();
            Tensor::from_fn(rows, cols, |_, _| uniform_sym(rng, a))
        }
    }
}

impl BatchedNetwork {
    /// Appends the network's parameters to `params` (names `time.phase`,
    /// `time.w1`, ... in weights-file order) with their initial values, drawn
    /// from `rng` in that order.
    pub fn register(shape: NetworkShape, params: &mut Params, rng: &mut PathRng) -> Self {
        shape.validate().expect("invalid network shape");
        let ids = shape
            .params()
            .map(|spec| params.add(spec.param.to_string(), init_tensor(spec, rng)))
            .collect();
        Self { shape, ids }
    }

    /// Parameter ids in weights-file order.
    pub fn param_ids(&self) -> &[ParamId] {
        &self.ids
    }

    /// Binds every parameter as a leaf of `g` (in weights-file order), each
    /// found by its name in the runtime's parameter list.
    pub fn bind<M: Mode>(&self, g: &mut Graph<M>, params: &Params) -> BoundNetwork {
        let names: Vec<Param> = self.shape.params().map(|spec| spec.param).collect();
        let vars: Vec<Var> = self.ids.iter().map(|&id| g.param(params, id)).collect();
        let v = |p: Param| {
            let i = names.iter().position(|&q| q == p);
            vars[i.expect("the shape lists every parameter it uses")]
        };
        BoundNetwork {
            phase: v(Param::TimePhase),
            time_w1: v(Param::TimeW1),
            time_b1: v(Param::TimeB1),
            time_w2: v(Param::TimeW2),
            time_b2: v(Param::TimeB2),
            state_w: v(Param::StateW),
            state_b: v(Param::StateB),
            hidden: (0..self.shape.hidden())
                .map(|i| (v(Param::HiddenW(i)), v(Param::HiddenB(i))))
                .collect(),
            out_w: v(Param::OutW),
            out_b: v(Param::OutB),
            score: self.shape.score_term.then(|| {
                [
                    v(Param::ScoreW1),
                    v(Param::ScoreB1),
                    v(Param::ScoreW2),
                    v(Param::ScoreB2),
                ]
            }),
        }
    }

    /// Fourier features, `e_t` and `s(t)` at normalised time `tau = t / T`
    /// (`diffctl_runtime::network::network_time`), computed once as `[1, .]` rows.
    pub fn time_embedding<M: Mode>(
        &self,
        g: &mut Graph<M>,
        p: &BoundNetwork,
        tau: f32,
    ) -> TimeEmbedding {
        let c = self.shape.channels as usize;
        let wt: Vec<f32> = (0..c).map(|i| frequency(i, c) * tau).collect();
        let wt = g.constant_from(1, c, &wt);
        let arg = g.add(wt, p.phase);
        let (sin, cos) = (g.sin(arg), g.cos(arg));
        let feat = g.concat_cols(&[sin, cos]);
        let a = g.linear(feat, p.time_w1, Some(p.time_b1));
        let a = g.gelu(a);
        let e_t = g.linear(a, p.time_w2, Some(p.time_b2));
        let s_t = p.score.map(|[w1, b1, w2, b2]| {
            let a = g.linear(feat, w1, Some(b1));
            let a = g.gelu(a);
            g.linear(a, w2, Some(b2))
        });
        TimeEmbedding { tau, e_t, s_t }
    }

    /// `NN(t, x)` for a batch `x` `[N, d]`.
    pub fn nn<M: Mode>(
        &self,
        g: &mut Graph<M>,
        p: &BoundNetwork,
        te: &TimeEmbedding,
        x: Var,
    ) -> Var {
        assert_eq!(x.cols(), self.shape.d as usize, "state dimension");
        let e_x = g.linear(x, p.state_w, Some(p.state_b));
        let mut h = g.add(e_x, te.e_t);
        for &(w, b) in &p.hidden {
            let a = g.gelu(h);
            h = g.linear(a, w, Some(b));
        }
        let a = g.gelu(h);
        g.linear(a, p.out_w, Some(p.out_b))
    }

    /// The control `u(x, t)` `[N, d]`: `NN` plus, when the network has a score
    /// term, `sigma_bar s(t) ((1 - t/T) (-x / nu^2) + (t/T) target_score)`.
    pub fn control<M: Mode>(
        &self,
        g: &mut Graph<M>,
        p: &BoundNetwork,
        te: &TimeEmbedding,
        x: Var,
        score: Option<&ScoreTerm>,
    ) -> Var {
        let nn = self.nn(g, p, te, x);
        let Some(s_t) = te.s_t else {
            return nn;
        };
        let sc = score.expect("this network has a score term: pass its ScoreTerm");
        assert!(
            !g.requires_grad(sc.target_score),
            "target_score must be a constant (detach it)"
        );
        let prior = g.scale(x, -(1.0 - sc.lambda) / (sc.nu * sc.nu));
        let target = g.scale(sc.target_score, sc.lambda);
        let lerp = g.add(prior, target);
        let coef = g.scale(s_t, sc.sigma_bar);
        let term = g.mul(lerp, coef);
        g.add(nn, term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{rand_tensor, test_rng};
    use crate::autodiff::{Eval, Grads, Tape};
    use diffctl_runtime::network::NetworkRef;

    fn small_shape() -> NetworkShape {
        NetworkShape {
            d: 2,
            channels: 8,
            layers: 4,
            score_term: true,
        }
    }

    /// Replaces every parameter by `U(-0.5, 0.5)` noise, so that no gradient
    /// is zero by the special initialisation (zero output layer).
    fn randomise(params: &mut Params, seed: u64) {
        let mut rng = test_rng(seed);
        for t in &mut params.values {
            *t = rand_tensor(&mut rng, t.rows, t.cols);
            t.data.iter_mut().for_each(|v| *v *= 0.5);
        }
    }

    #[test]
    fn layout_and_init() {
        let shape = NetworkShape::reference(2);
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut test_rng(1));
        let names: Vec<&str> = params.names().iter().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "time.phase",
                "time.w1",
                "time.b1",
                "time.w2",
                "time.b2",
                "state.w",
                "state.b",
                "hidden.0.w",
                "hidden.0.b",
                "hidden.1.w",
                "hidden.1.b",
                "out.w",
                "out.b",
                "score.w1",
                "score.b1",
                "score.w2",
                "score.b2",
            ]
        );
        assert_eq!(params.get(net.param_ids()[1]).shape(), (64, 128));
        assert_eq!(params.get(net.param_ids()[5]).shape(), (64, 2));
        assert_eq!(params.num_scalars(), shape.param_count());
        let get = |n: &str| params.get(params.id(n).unwrap());
        assert!(get("out.w").data.iter().all(|&v| v == 0.0));
        assert!(get("score.w2").data.iter().all(|&v| v == 0.0));
        assert_eq!(get("score.b2").data, vec![1.0]);
        let w1 = get("time.w1");
        let bound = 1.0 / (128f32).sqrt();
        assert!(w1.data.iter().all(|v| v.abs() <= bound));
        assert!(w1.data.iter().any(|v| v.abs() > 0.9 * bound));
        let phase = get("time.phase");
        let mean = phase.data.iter().sum::<f32>() / 64.0;
        let var = phase
            .data
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f32>()
            / 63.0;
        assert!(
            mean.abs() < 0.5 && (0.5..1.6).contains(&var),
            "phases N(0,1)? {mean} {var}"
        );
    }

    #[test]
    fn matches_runtime_network() {
        // The batched network and the runtime's per-sample kernels agree on NN
        // and s(t) (up to summation order and the GELU erf approximation).
        let shape = NetworkShape::reference(3);
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut test_rng(2));
        randomise(&mut params, 3);
        let flat = params.flatten();
        let rt = NetworkRef::from_flat(shape, &flat).unwrap();
        let x = rand_tensor(&mut test_rng(4), 5, 3);
        for t in [0.0f32, 0.37, 1.0] {
            let mut g = Eval::new();
            let p = net.bind(&mut g, &params);
            let te = net.time_embedding(&mut g, &p, t);
            let xv = g.constant(x.clone());
            let nn = net.nn(&mut g, &p, &te, xv);
            let mut cache = vec![0.0; shape.time_cache_len()];
            let mut scratch = vec![0.0; shape.scratch_len()];
            rt.prepare(t, &mut cache, &mut scratch);
            let s_t = g.item(te.s_t.unwrap());
            assert!(
                (s_t - cache[64]).abs() < 1e-5 * (1.0 + s_t.abs()),
                "s(t) {s_t} vs {}",
                cache[64]
            );
            for i in 0..5 {
                let mut out = vec![0.0; 3];
                rt.eval_nn(&cache, x.row_slice(i), &mut out, &mut scratch);
                for (a, b) in g.value(nn).row_slice(i).iter().zip(&out) {
                    assert!(
                        (a - b).abs() < 1e-5 * (1.0 + b.abs()),
                        "NN {a} vs runtime {b}"
                    );
                }
            }
        }
    }

    /// A 20-step Euler–Maruyama rollout with the control network ending in a
    /// Gaussian-mixture log density; returns `mean_i log p(X_K^i)`.
    /// `x_{k+1} = x_k + (b/2 x_k + s u(x_k, t_k)) h + s sqrt(h) xi_k`.
    ///
    /// `target_scores[k]` is the constant given for `grad log rho(x_k)`. In
    /// training it is `grad log rho` at the detached state, which makes the
    /// tape's gradient differ from the total derivative on purpose (MATH.md
    /// §4); a finite-difference check needs inputs that do not depend on the
    /// parameters, so the test passes fixed tensors.
    pub(crate) fn rollout<M: Mode>(
        g: &mut Graph<M>,
        net: &BatchedNetwork,
        params: &Params,
        x0: &Tensor,
        noise: &[Tensor],
        target_scores: &[Tensor],
    ) -> Var {
        let steps = noise.len();
        let h = 1.0 / steps as f32;
        let p = net.bind(g, params);
        let mut x = g.constant(x0.clone());
        for (k, (xi, ts)) in noise.iter().zip(target_scores).enumerate() {
            let t = k as f32 * h;
            // a linear schedule reversed, beta in [0.1, 2]: mild enough that the
            // f32 finite differences of the whole rollout stay accurate
            let beta_bar = 0.1 + 1.9 * (1.0 - t);
            let sigma_bar = beta_bar.sqrt();
            let te = net.time_embedding(g, &p, t);
            let ts = g.constant(ts.clone());
            let score = ScoreTerm {
                sigma_bar,
                lambda: t,
                nu: 1.0,
                target_score: ts,
            };
            let u = net.control(g, &p, &te, x, Some(&score));
            let drift_x = g.scale(x, 0.5 * beta_bar * h);
            let drift_u = g.scale(u, sigma_bar * h);
            let xi = g.constant(xi.clone());
            let noise = g.scale(xi, sigma_bar * h.sqrt());
            let dx = g.add(drift_x, drift_u);
            let dx = g.add(dx, noise);
            x = g.add(x, dx);
        }
        // log of an equal mixture of N(m_c, I), m in {(-1, 0), (1, 0.5)}, up to a constant:
        // logsumexp_c (-|x - m_c|^2 / 2)
        let means = [[-1.0f32, 0.0], [1.0, 0.5]];
        let mut comps = Vec::new();
        for m in means {
            let mv = g.constant(Tensor::row(m.to_vec()));
            let dxm = g.sub(x, mv);
            let sq = g.square(dxm);
            let ss = g.sum_cols(sq);
            comps.push(g.scale(ss, -0.5));
        }
        let all = g.concat_cols(&comps);
        let lp = g.logsumexp_cols(all);
        g.mean(lp)
    }

    #[test]
    fn eval_and_tape_give_identical_values() {
        let shape = small_shape();
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut test_rng(5));
        randomise(&mut params, 6);
        let mut rng = test_rng(7);
        let x0 = rand_tensor(&mut rng, 4, 2);
        let noise: Vec<Tensor> = (0..20).map(|_| rand_tensor(&mut rng, 4, 2)).collect();
        let scores: Vec<Tensor> = (0..20).map(|_| rand_tensor(&mut rng, 4, 2)).collect();
        let mut tape = Tape::new();
        let a = rollout(&mut tape, &net, &params, &x0, &noise, &scores);
        let mut eval = Eval::new();
        let b = rollout(&mut eval, &net, &params, &x0, &noise, &scores);
        assert_eq!(tape.item(a).to_bits(), eval.item(b).to_bits());
    }

    #[test]
    fn rollout_gradient_matches_finite_differences() {
        // Gradient w.r.t. every parameter through a 20-step trajectory,
        // checked by central differences in f32 (tolerance reasoning in
        // `autodiff::check`; h = 1e-2 on O(0.5) parameters).
        let shape = small_shape();
        let mut params = Params::new();
        let net = BatchedNetwork::register(shape, &mut params, &mut test_rng(8));
        randomise(&mut params, 9);
        let mut rng = test_rng(10);
        let x0 = rand_tensor(&mut rng, 3, 2);
        let noise: Vec<Tensor> = (0..20).map(|_| rand_tensor(&mut rng, 3, 2)).collect();
        let scores: Vec<Tensor> = (0..20).map(|_| rand_tensor(&mut rng, 3, 2)).collect();
        let loss = |params: &Params| {
            let mut g = Eval::new();
            let l = rollout(&mut g, &net, params, &x0, &noise, &scores);
            g.item(l)
        };
        let mut g = Tape::new();
        let l = rollout(&mut g, &net, &params, &x0, &noise, &scores);
        let l0 = g.item(l);
        let mut grads = Grads::zeros_like(&params);
        g.backward(l, &mut grads);
        let h = 1e-2f32;
        let (mut worst, mut max_g, mut checked) = (0f32, 0f32, 0usize);
        for p in 0..params.len() {
            for k in 0..params.values[p].len() {
                let x = params.values[p].data[k];
                params.values[p].data[k] = x + h;
                let lp = loss(&params);
                params.values[p].data[k] = x - h;
                let lm = loss(&params);
                params.values[p].data[k] = x;
                let fd = ((f64::from(lp) - f64::from(lm)) / (2.0 * f64::from(h))) as f32;
                let an = grads.tensors[p].data[k];
                let tol = 2e-3 * an.abs().max(fd.abs()) + 5e-4 * (1.0 + l0.abs() / 10.0);
                assert!(
                    (an - fd).abs() <= tol,
                    "{} [{k}]: analytic {an} vs finite difference {fd}",
                    params.names()[p]
                );
                worst = worst.max((an - fd).abs() / tol);
                max_g = max_g.max(an.abs());
                checked += 1;
            }
            assert!(
                grads.tensors[p].data.iter().any(|v| v.abs() > 1e-4),
                "{}: gradient is zero",
                params.names()[p]
            );
        }
        assert_eq!(checked, params.num_scalars());
        assert!(max_g > 1e-2);
        eprintln!("rollout gradcheck: {checked} scalars, worst error/tolerance {worst:.3}");
    }
}
