//! The control network of MATH.md §5.
//!
//! ```text
//! feat = [sin(w_i tau + p_i)]_i ++ [cos(w_i tau + p_i)]_i    w = linspace(0.1, 100, C)
//! e_t  = W2 gelu(W1 feat + b1) + b2                            time branch
//! h    = (Wx x + bx) + e_t                                     state branch
//! h    = Wk gelu(h) + bk                                       L - 2 hidden layers
//! NN   = Wo gelu(h) + bo                                       output (initialised to zero)
//! s(t) = Ws2 gelu(Ws1 feat + bs1) + bs2                        score scale (optional)
//! u    = NN + sigma_bar(t) s(t) lerp(prior score, target score, t / T)
//! ```
//!
//! The network sees the *normalised* time `tau = t / T` in `[0, 1]` (MATH.md
//! §5 writes `t`, with `T = 1`). With PIS's `T = 5` and raw `t`, the highest
//! frequency would turn by 5 radians per step of a K = 100 grid, leaving the
//! network arbitrary between the grid's points (what that cost:
//! `benches/README.md`, "Measurements behind design choices").
//! [`NetworkControl`] and the trainer divide by `T`; [`NetworkRef::prepare`]
//! takes `tau`.
//!
//! Parameters are stored in three ways that evaluate through the *same* code:
//! [`Network`] owns fixed-size arrays (dimensions are const generics),
//! [`NetworkRef::from_flat`] borrows one flat `&[f32]` whose length is known
//! only at run time, and [`NetworkRef::from_weights`] borrows the parameter
//! bytes of a weights file in place (`f32`, `f16` or `bf16`: no parameter
//! buffer, see [`crate::weights::Model::network`]). All three hand out a
//! [`NetworkRef`] of [`Weights`], whose methods do all the arithmetic with the
//! kernels of [`crate::kernels`]; so they give identical bits.
//!
//! The flat order of the parameters is [`NetworkShape::params`]; it is the
//! order of the weights file and of the trainer's parameter store.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::control::Control;
use crate::kernels::{gelu_in_place, Weights};
use crate::sde::{Sde, TimeGrid};
use crate::target::{Prior, Target};

/// Most layers `L` a network may have (so at most `MAX_LAYERS - 2` hidden ones).
pub const MAX_LAYERS: usize = 18;
/// Largest state dimension and channel count a network may declare.
pub const MAX_WIDTH: u32 = 1 << 16;

/// Architecture of the control network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkShape {
    /// State dimension `d`.
    pub d: u32,
    /// Channels `C`.
    pub channels: u32,
    /// Layers `L` of the state path (state, `L - 2` hidden, output).
    pub layers: u32,
    /// Whether the score-informed term (and its time network `s(t)`) is present.
    pub score_term: bool,
}

/// One parameter tensor of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    TimePhase,
    TimeW1,
    TimeB1,
    TimeW2,
    TimeB2,
    StateW,
    StateB,
    HiddenW(usize),
    HiddenB(usize),
    OutW,
    OutB,
    ScoreW1,
    ScoreB1,
    ScoreW2,
    ScoreB2,
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Param::TimePhase => f.write_str("time.phase"),
            Param::TimeW1 => f.write_str("time.w1"),
            Param::TimeB1 => f.write_str("time.b1"),
            Param::TimeW2 => f.write_str("time.w2"),
            Param::TimeB2 => f.write_str("time.b2"),
            Param::StateW => f.write_str("state.w"),
            Param::StateB => f.write_str("state.b"),
            Param::HiddenW(i) => write!(f, "hidden.{i}.w"),
            Param::HiddenB(i) => write!(f, "hidden.{i}.b"),
            Param::OutW => f.write_str("out.w"),
            Param::OutB => f.write_str("out.b"),
            Param::ScoreW1 => f.write_str("score.w1"),
            Param::ScoreB1 => f.write_str("score.b1"),
            Param::ScoreW2 => f.write_str("score.w2"),
            Param::ScoreB2 => f.write_str("score.b2"),
        }
    }
}

/// A parameter tensor's name and shape `[rows, cols]` (row-major; a linear
/// layer's weight is `[out, in]`), and the fan-in of the linear layer it
/// belongs to (its weight's `cols`; 0 for the phases, which belong to none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub param: Param,
    pub rows: usize,
    pub cols: usize,
    pub fan_in: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frequency `w_i = 0.1 + (100 - 0.1) i / (C - 1)` of Fourier feature `i`.
pub fn frequency(i: usize, channels: usize) -> f32 {
    0.1 + (100.0 - 0.1) * i as f32 / (channels - 1) as f32
}

impl NetworkShape {
    /// The reference architecture (`C = 64`, `L = 4`, score term on).
    pub const fn reference(d: u32) -> Self {
        Self {
            d,
            channels: 64,
            layers: 4,
            score_term: true,
        }
    }

    /// Number of hidden `C x C` layers, `L - 2`.
    pub fn hidden(&self) -> usize {
        self.layers as usize - 2
    }

    /// Checks that the dimensions are in range (so no size computation overflows).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.d == 0 || self.d > MAX_WIDTH {
            return Err("state dimension must be in 1..=65536");
        }
        if self.channels < 2 || self.channels > MAX_WIDTH {
            return Err("channels must be in 2..=65536");
        }
        if self.layers < 2 || self.layers as usize > MAX_LAYERS {
            return Err("layers must be in 2..=18");
        }
        Ok(())
    }

    /// The parameter tensors in their flat (file) order.
    pub fn params(&self) -> impl Iterator<Item = ParamSpec> + Clone {
        let (d, c) = (self.d as usize, self.channels as usize);
        // A layer `[out, in]`: its weight, then its bias.
        let layer = |w, b, out, fan_in| {
            [
                ParamSpec {
                    param: w,
                    rows: out,
                    cols: fan_in,
                    fan_in,
                },
                ParamSpec {
                    param: b,
                    rows: 1,
                    cols: out,
                    fan_in,
                },
            ]
        };
        let phase = ParamSpec {
            param: Param::TimePhase,
            rows: 1,
            cols: c,
            fan_in: 0,
        };
        let head = core::iter::once(phase)
            .chain(layer(Param::TimeW1, Param::TimeB1, c, 2 * c))
            .chain(layer(Param::TimeW2, Param::TimeB2, c, c))
            .chain(layer(Param::StateW, Param::StateB, c, d));
        let hidden =
            (0..self.hidden()).flat_map(move |i| layer(Param::HiddenW(i), Param::HiddenB(i), c, c));
        let out = layer(Param::OutW, Param::OutB, d, c);
        let score = layer(Param::ScoreW1, Param::ScoreB1, c, 2 * c)
            .into_iter()
            .chain(layer(Param::ScoreW2, Param::ScoreB2, 1, c));
        let score_len = if self.score_term { 4 } else { 0 };
        head.chain(hidden).chain(out).chain(score.take(score_len))
    }

    /// Total number of parameters, the sum of [`NetworkShape::params`]'
    /// sizes (call [`NetworkShape::validate`] first). `const`, so devices can
    /// size their buffers at compile time.
    pub const fn param_count(&self) -> usize {
        let (d, c, h) = (
            self.d as usize,
            self.channels as usize,
            self.layers as usize - 2,
        );
        let time = c + (2 * c * c + c) + (c * c + c);
        let state = c * d + c;
        let hidden = h * (c * c + c);
        let out = d * c + d;
        let score = if self.score_term {
            (2 * c * c + c) + c + 1
        } else {
            0
        };
        time + state + hidden + out + score
    }

    /// Floats of per-time cache: `e_t` and `s(t)`.
    pub const fn time_cache_len(&self) -> usize {
        self.channels as usize + 1
    }

    /// Floats of scratch for one evaluation: `2C` features and two `C` buffers,
    /// plus two `d` buffers for the prior and target scores.
    pub const fn scratch_len(&self) -> usize {
        4 * self.channels as usize + 2 * self.d as usize
    }

    /// Floats of a time table for a grid of `steps` steps
    /// ([`NetworkControl::tabulate`]): per grid time, the time and its
    /// per-time cache, plus the scratch to compute them.
    pub const fn time_table_len(&self, steps: usize) -> usize {
        steps * (1 + self.time_cache_len()) + self.scratch_len()
    }

    /// Floats of work buffer a [`crate::integrate::Sampler`] driving this
    /// network with a target needs for a block of `paths` paths (its `work_len`).
    pub const fn sampler_work_len(&self, paths: usize) -> usize {
        self.time_cache_len() + self.scratch_len() + (2 + paths) * self.d as usize
    }
}

/// Error from building a [`NetworkRef`] over a flat parameter slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShapeError {
    Invalid(&'static str),
    /// The slice holds `got` floats where the shape needs `expected`.
    Length {
        expected: usize,
        got: usize,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeError::Invalid(why) => write!(f, "invalid network shape: {why}"),
            ShapeError::Length { expected, got } => {
                write!(
                    f,
                    "parameter buffer has {got} floats, the network needs {expected}"
                )
            }
        }
    }
}

/// The score network `s(t)`'s parameters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScoreNet<'a> {
    pub w1: Weights<'a>,
    pub b1: Weights<'a>,
    pub w2: Weights<'a>,
    pub b2: Weights<'a>,
}

/// A network's parameters as borrowed [`Weights`]: what every evaluation runs on.
#[derive(Clone, Copy, Debug)]
pub struct NetworkRef<'a> {
    pub shape: NetworkShape,
    pub phase: Weights<'a>,
    pub time_w1: Weights<'a>,
    pub time_b1: Weights<'a>,
    pub time_w2: Weights<'a>,
    pub time_b2: Weights<'a>,
    pub state_w: Weights<'a>,
    pub state_b: Weights<'a>,
    /// Hidden layer `i`'s weight starts at element `i * hidden_stride[0]`
    /// of `hidden_w`, its bias at `i * hidden_stride[1]` of `hidden_b`
    /// (interleaved in a file, separate arrays in [`Network`]); see
    /// [`NetworkRef::hidden`]. Strides instead of a table of slices keep the
    /// view small (it is copied into every sampler).
    pub hidden_w: Weights<'a>,
    pub hidden_b: Weights<'a>,
    pub hidden_stride: [usize; 2],
    pub out_w: Weights<'a>,
    pub out_b: Weights<'a>,
    pub score: Option<ScoreNet<'a>>,
}

impl<'a> NetworkRef<'a> {
    /// Splits a flat parameter slice (in [`NetworkShape::params`] order).
    pub fn from_flat(shape: NetworkShape, flat: &'a [f32]) -> Result<Self, ShapeError> {
        Self::from_weights(shape, Weights::F32(flat))
    }

    /// Splits flat parameters in any storage (in [`NetworkShape::params`]
    /// order) without copying them: `f32` values, or the parameter bytes of
    /// a weights file. Does not check that they are finite
    /// ([`crate::weights::Model::network`] does).
    pub fn from_weights(shape: NetworkShape, flat: Weights<'a>) -> Result<Self, ShapeError> {
        shape.validate().map_err(ShapeError::Invalid)?;
        let expected = shape.param_count();
        if flat.len() != expected {
            return Err(ShapeError::Length {
                expected,
                got: flat.len(),
            });
        }
        let mut net = NetworkRef {
            shape,
            phase: Weights::default(),
            time_w1: Weights::default(),
            time_b1: Weights::default(),
            time_w2: Weights::default(),
            time_b2: Weights::default(),
            state_w: Weights::default(),
            state_b: Weights::default(),
            hidden_w: Weights::default(),
            hidden_b: Weights::default(),
            hidden_stride: [shape.channels as usize * (shape.channels as usize + 1); 2],
            out_w: Weights::default(),
            out_b: Weights::default(),
            score: None,
        };
        let mut score = ScoreNet::default();
        let mut rest = flat;
        for spec in shape.params() {
            let here = rest;
            let (t, tail) = rest.split_at(spec.len()).ok_or(ShapeError::Length {
                expected,
                got: flat.len(),
            })?;
            rest = tail;
            match spec.param {
                Param::TimePhase => net.phase = t,
                Param::TimeW1 => net.time_w1 = t,
                Param::TimeB1 => net.time_b1 = t,
                Param::TimeW2 => net.time_w2 = t,
                Param::TimeB2 => net.time_b2 = t,
                Param::StateW => net.state_w = t,
                Param::StateB => net.state_b = t,
                // The hidden layers from the first one's weight (bias) on.
                Param::HiddenW(0) => net.hidden_w = here,
                Param::HiddenB(0) => net.hidden_b = here,
                Param::HiddenW(_) | Param::HiddenB(_) => {}
                Param::OutW => net.out_w = t,
                Param::OutB => net.out_b = t,
                Param::ScoreW1 => score.w1 = t,
                Param::ScoreB1 => score.b1 = t,
                Param::ScoreW2 => score.w2 = t,
                Param::ScoreB2 => score.b2 = t,
            }
        }
        net.score = shape.score_term.then_some(score);
        Ok(net)
    }

    /// `(weight, bias)` of hidden layer `i` (`i < shape.hidden()`).
    pub fn hidden(&self, i: usize) -> (Weights<'a>, Weights<'a>) {
        let c = self.shape.channels as usize;
        (
            self.hidden_w.slice(i * self.hidden_stride[0], c * c),
            self.hidden_b.slice(i * self.hidden_stride[1], c),
        )
    }

    /// Fourier features `[sin(w_i tau + p_i)] ++ [cos(w_i tau + p_i)]` of the
    /// normalised time `tau = t / T` into `feat` (length `2C`).
    pub fn time_features(&self, tau: f32, feat: &mut [f32]) {
        let c = self.shape.channels as usize;
        let (sin, cos) = feat.split_at_mut(c);
        for i in 0..c {
            let (s, co) = libm::sincosf(frequency(i, c) * tau + self.phase.at(i));
            sin[i] = s;
            cos[i] = co;
        }
    }

    /// Per-time cache at normalised time `tau = t / T`: `cache[..C] = e_t`,
    /// `cache[C] = s(t)` (0 without score term).
    pub fn prepare(&self, tau: f32, cache: &mut [f32], scratch: &mut [f32]) {
        let c = self.shape.channels as usize;
        let (feat, rest) = scratch.split_at_mut(2 * c);
        let hidden = &mut rest[..c];
        self.time_features(tau, feat);
        self.time_w1.dense(self.time_b1, feat, hidden);
        gelu_in_place(hidden);
        self.time_w2.dense(self.time_b2, hidden, &mut cache[..c]);
        cache[c] = match &self.score {
            Some(s) => {
                s.w1.dense(s.b1, feat, hidden);
                gelu_in_place(hidden);
                s.w2.dot(hidden) + s.b2.at(0)
            }
            None => 0.0,
        };
    }

    /// `NN(t, x)` (without the score term) into `out`, from `prepare(t)`'s cache.
    pub fn eval_nn(&self, cache: &[f32], x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        let c = self.shape.channels as usize;
        let (h, rest) = scratch.split_at_mut(c);
        let g = &mut rest[..c];
        self.state_w.dense(self.state_b, x, h);
        for (hi, et) in h.iter_mut().zip(&cache[..c]) {
            *hi += et;
        }
        for i in 0..self.shape.hidden() {
            let (w, b) = self.hidden(i);
            g.copy_from_slice(h);
            gelu_in_place(g);
            w.dense(b, g, h);
        }
        g.copy_from_slice(h);
        gelu_in_place(g);
        self.out_w.dense(self.out_b, g, out);
    }
}

/// A network with fixed dimensions: state `D`, channels `C`, `H = L - 2`
/// hidden layers. The score network is always stored; `score_term` says
/// whether it is used. `[[[f32; C]; 2]; C]` is a `[C, 2C]` matrix (stable Rust
/// cannot write `2 * C` in a type).
#[derive(Clone, Debug, PartialEq)]
pub struct Network<const D: usize, const C: usize, const H: usize> {
    pub score_term: bool,
    pub phase: [f32; C],
    pub time_w1: [[[f32; C]; 2]; C],
    pub time_b1: [f32; C],
    pub time_w2: [[f32; C]; C],
    pub time_b2: [f32; C],
    pub state_w: [[f32; D]; C],
    pub state_b: [f32; C],
    pub hidden_w: [[[f32; C]; C]; H],
    pub hidden_b: [[f32; C]; H],
    pub out_w: [[f32; C]; D],
    pub out_b: [f32; D],
    pub score_w1: [[[f32; C]; 2]; C],
    pub score_b1: [f32; C],
    pub score_w2: [f32; C],
    pub score_b2: [f32; 1],
}

impl<const D: usize, const C: usize, const H: usize> Network<D, C, H> {
    /// All parameters zero.
    pub const fn zeroed(score_term: bool) -> Self {
        Self {
            score_term,
            phase: [0.0; C],
            time_w1: [[[0.0; C]; 2]; C],
            time_b1: [0.0; C],
            time_w2: [[0.0; C]; C],
            time_b2: [0.0; C],
            state_w: [[0.0; D]; C],
            state_b: [0.0; C],
            hidden_w: [[[0.0; C]; C]; H],
            hidden_b: [[0.0; C]; H],
            out_w: [[0.0; C]; D],
            out_b: [0.0; D],
            score_w1: [[[0.0; C]; 2]; C],
            score_b1: [0.0; C],
            score_w2: [0.0; C],
            score_b2: [0.0],
        }
    }

    /// The shape these const generics describe.
    pub const fn shape(&self) -> NetworkShape {
        NetworkShape {
            d: D as u32,
            channels: C as u32,
            layers: H as u32 + 2,
            score_term: self.score_term,
        }
    }

    /// Mutable view of one parameter tensor, in flat row-major order.
    pub fn tensor_mut(&mut self, p: Param) -> &mut [f32] {
        match p {
            Param::TimePhase => &mut self.phase,
            Param::TimeW1 => self.time_w1.as_flattened_mut().as_flattened_mut(),
            Param::TimeB1 => &mut self.time_b1,
            Param::TimeW2 => self.time_w2.as_flattened_mut(),
            Param::TimeB2 => &mut self.time_b2,
            Param::StateW => self.state_w.as_flattened_mut(),
            Param::StateB => &mut self.state_b,
            Param::HiddenW(i) => self.hidden_w[i].as_flattened_mut(),
            Param::HiddenB(i) => &mut self.hidden_b[i],
            Param::OutW => self.out_w.as_flattened_mut(),
            Param::OutB => &mut self.out_b,
            Param::ScoreW1 => self.score_w1.as_flattened_mut().as_flattened_mut(),
            Param::ScoreB1 => &mut self.score_b1,
            Param::ScoreW2 => &mut self.score_w2,
            Param::ScoreB2 => &mut self.score_b2,
        }
    }

    /// The borrowed view every evaluation runs on.
    pub fn as_ref(&self) -> NetworkRef<'_> {
        NetworkRef {
            shape: self.shape(),
            phase: Weights::F32(&self.phase),
            time_w1: Weights::F32(self.time_w1.as_flattened().as_flattened()),
            time_b1: Weights::F32(&self.time_b1),
            time_w2: Weights::F32(self.time_w2.as_flattened()),
            time_b2: Weights::F32(&self.time_b2),
            state_w: Weights::F32(self.state_w.as_flattened()),
            state_b: Weights::F32(&self.state_b),
            hidden_w: Weights::F32(self.hidden_w.as_flattened().as_flattened()),
            hidden_b: Weights::F32(self.hidden_b.as_flattened()),
            hidden_stride: [C * C, C],
            out_w: Weights::F32(self.out_w.as_flattened()),
            out_b: Weights::F32(&self.out_b),
            score: self.score_term.then_some(ScoreNet {
                w1: Weights::F32(self.score_w1.as_flattened().as_flattened()),
                b1: Weights::F32(&self.score_b1),
                w2: Weights::F32(&self.score_w2),
                b2: Weights::F32(&self.score_b2),
            }),
        }
    }

    /// Copies a flat parameter slice (in [`NetworkShape::params`] order) in.
    pub fn load_flat(&mut self, flat: &[f32]) -> Result<(), ShapeError> {
        let shape = self.shape();
        let expected = shape.param_count();
        if flat.len() != expected {
            return Err(ShapeError::Length {
                expected,
                got: flat.len(),
            });
        }
        let mut rest = flat;
        for spec in shape.params() {
            let (t, tail) = rest.split_at(spec.len());
            rest = tail;
            self.tensor_mut(spec.param).copy_from_slice(t);
        }
        Ok(())
    }
}

/// The network's time input at SDE time `t`: `tau = t / T` (module docs).
pub fn network_time(t: f32, sde: &Sde) -> f32 {
    t / sde.t_end()
}

/// The network as a [`Control`]: `NN(t, x)` plus, when the score term is on,
/// `sigma_bar(t) s(t) ((1 - t/T) prior_score(x) + (t/T) target_score(x))`.
#[derive(Clone, Copy, Debug)]
pub struct NetworkControl<'a, T> {
    pub net: NetworkRef<'a>,
    pub sde: Sde,
    /// Supplies the "prior score" end of the interpolation.
    pub prior: Prior<'a>,
    /// Supplies `grad log rho`; required when the score term is on.
    pub target: Option<T>,
    /// DDS form (MATH.md §6): the network gives `u_dds` and `u = u_dds - sigma_bar x`.
    pub relative_to_ou: bool,
    /// Clamp of each coordinate of the target score in the score term
    /// (`f32::INFINITY`: none); see [`crate::weights::Header::score_clip`].
    pub score_clip: f32,
    /// The time branch at every time of the sampler's grid, computed once
    /// ([`NetworkControl::tabulate`]). `prepare` copies the cache of a time
    /// found here and computes any other; the bits are the same either way.
    pub time_table: Option<&'a [f32]>,
}

impl<'a, T: Target> NetworkControl<'a, T> {
    /// Fails when the score term is on but no target is given, or dimensions differ.
    pub fn new(
        net: NetworkRef<'a>,
        sde: Sde,
        prior: Prior<'a>,
        target: Option<T>,
    ) -> Result<Self, &'static str> {
        let d = net.shape.d as usize;
        if net.shape.score_term && target.is_none() {
            return Err("this network has a score-informed term: it needs its target");
        }
        if target.as_ref().is_some_and(|t| t.dim() != d) || prior.dim() != d {
            return Err("target or prior dimension differs from the network's");
        }
        Ok(Self {
            net,
            sde,
            prior,
            target,
            relative_to_ou: false,
            score_clip: f32::INFINITY,
            time_table: None,
        })
    }

    /// Computes the time branch ([`NetworkRef::prepare`]: the time
    /// features, two dense layers and the score scale `s(t)`) once for each
    /// start time `t_k` of a `steps`-step `grid` into `table`
    /// ([`NetworkShape::time_table_len`]`(steps)` floats), and returns the
    /// table to store in [`NetworkControl::time_table`]:
    ///
    /// ```text
    /// sampler.control.time_table = Some(sampler.control.tabulate(sampler.grid, sampler.steps, &mut table)?);
    /// ```
    ///
    /// A sampler then does the time branch's work once per grid time instead
    /// of once per step of every batch: at batch 1 it is most of the work.
    pub fn tabulate<'t>(
        &self,
        grid: TimeGrid,
        steps: usize,
        table: &'t mut [f32],
    ) -> Result<&'t [f32], &'static str> {
        let shape = self.net.shape;
        let row = 1 + shape.time_cache_len();
        if table.len() < shape.time_table_len(steps) {
            return Err("time table buffer shorter than NetworkShape::time_table_len(steps)");
        }
        let (rows, scratch) = table.split_at_mut(steps * row);
        let t_end = self.sde.t_end();
        for (k, entry) in rows.chunks_exact_mut(row).enumerate() {
            // The start time of step k as the path simulator computes it.
            let t = grid.time(k, steps, t_end) as f32;
            entry[0] = t;
            self.net
                .prepare(network_time(t, &self.sde), &mut entry[1..], scratch);
        }
        Ok(&table[..steps * row])
    }

    /// The cached time branch at `t`, if `t` is a time of the table.
    fn tabulated(&self, t: f32) -> Option<&'a [f32]> {
        let table = self.time_table?;
        let row = 1 + self.net.shape.time_cache_len();
        // Binary search: grid times increase with the step.
        let (mut lo, mut hi) = (0, table.len() / row);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let entry = &table[mid * row..(mid + 1) * row];
            if entry[0] < t {
                lo = mid + 1;
            } else if entry[0] > t {
                hi = mid;
            } else {
                return (entry[0].to_bits() == t.to_bits()).then(|| &entry[1..]);
            }
        }
        None
    }
}

impl<T: Target> Control for NetworkControl<'_, T> {
    fn dim(&self) -> usize {
        self.net.shape.d as usize
    }
    fn time_cache_len(&self) -> usize {
        self.net.shape.time_cache_len()
    }
    fn scratch_len(&self) -> usize {
        self.net.shape.scratch_len()
    }
    fn prepare(&self, t: f32, cache: &mut [f32], scratch: &mut [f32]) {
        match self.tabulated(t) {
            Some(cached) => cache.copy_from_slice(cached),
            None => self.net.prepare(network_time(t, &self.sde), cache, scratch),
        }
    }
    fn u(&self, t: f32, cache: &[f32], x: &[f32], out: &mut [f32], scratch: &mut [f32]) {
        let d = self.dim();
        let (score_scratch, rest) = scratch.split_at_mut(scratch.len() - d);
        let target_score = &mut rest[..d];
        match (&self.target, self.net.shape.score_term) {
            (Some(target), true) => {
                target.score(x, target_score);
                self.u_with(t, cache, x, Some(target_score), out, score_scratch);
            }
            _ => self.u_with(t, cache, x, None, out, score_scratch),
        }
    }
    fn uses_target_score(&self) -> bool {
        self.net.shape.score_term
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
        let score = self.net.shape.score_term.then_some(target_score);
        self.u_with(t, cache, x, score, out, scratch);
    }
}

impl<T> NetworkControl<'_, T> {
    /// `u` from the target's score at `x` (`None` without the score term);
    /// `scratch` holds at least `2C + d` floats.
    fn u_with(
        &self,
        t: f32,
        cache: &[f32],
        x: &[f32],
        target_score: Option<&[f32]>,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (c, d) = (self.net.shape.channels as usize, self.net.shape.d as usize);
        let (net_scratch, rest) = scratch.split_at_mut(2 * c);
        self.net.eval_nn(cache, x, out, net_scratch);
        if self.relative_to_ou {
            let sigma_bar = self.sde.sigma_bar(t as f64) as f32;
            for (o, &xj) in out.iter_mut().zip(x) {
                *o -= sigma_bar * xj;
            }
        }
        let Some(target_score) = target_score else {
            return;
        };
        let prior_score = &mut rest[..d];
        self.prior.score(x, prior_score);
        let coef = self.sde.sigma_bar(t as f64) as f32 * cache[c];
        let lambda = t / self.sde.t_end();
        for ((o, p), &q) in out
            .iter_mut()
            .zip(prior_score.iter())
            .zip(target_score.iter())
        {
            let q = q.clamp(-self.score_clip, self.score_clip);
            *o += coef * ((1.0 - lambda) * p + lambda * q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Control;
    use crate::integrate::Sampler;
    use crate::target::{IsotropicGaussian, Prior};

    /// The score term with the clamp active: a target `N(0, 0.1^2 I)` has
    /// score `-x / 0.01`, so at `x = (1, -0.02, -0.5)` the scores
    /// `(-100, 2, 50)` are clamped to `(-5, 2, 5)`: both ends of the clamp act
    /// and a coordinate inside it is untouched. With every network weight
    /// zero and `s(t) = score.b2 = 1`, `u = sigma_bar(t) ((1 - t/T) (-x) +
    /// (t/T) clamp(-x / 0.01))`, computed here by hand.
    #[test]
    fn score_clip_clamps_only_the_coordinates_beyond_it() {
        let mut net = Network::<3, 4, 1>::zeroed(true);
        net.score_b2 = [1.0];
        let sde = Sde::default();
        let prior = Prior::standard(3);
        let target = IsotropicGaussian { d: 3, nu: 0.1 };
        let x = [1.0f32, -0.02, -0.5];
        let t = 0.7f32;
        let lambda = t / sde.t_end();
        let sigma_bar = sde.sigma_bar(t as f64) as f32;
        let u_at = |clip: f32| {
            let mut control = NetworkControl::new(net.as_ref(), sde, prior, Some(target)).unwrap();
            control.score_clip = clip;
            let (mut cache, mut scratch) = ([0.0f32; 64], [0.0f32; 64]);
            let cache = &mut cache[..control.time_cache_len()];
            let scratch = &mut scratch[..control.scratch_len()];
            control.prepare(t, cache, scratch);
            let mut u = [0.0f32; 3];
            control.u(t, cache, &x, &mut u, scratch);
            u
        };
        let by_hand =
            |q: [f32; 3]| [0, 1, 2].map(|j| sigma_bar * ((1.0 - lambda) * -x[j] + lambda * q[j]));
        let close = |a: [f32; 3], b: [f32; 3]| {
            a.iter()
                .zip(&b)
                .all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()))
        };
        let clipped = u_at(5.0);
        assert!(close(clipped, by_hand([-5.0, 2.0, 5.0])), "{clipped:?}");
        let free = u_at(f32::INFINITY);
        assert!(close(free, by_hand([-100.0, 2.0, 50.0])), "{free:?}");
        assert!(clipped[0] != free[0] && clipped[1] == free[1] && clipped[2] != free[2]);
    }

    #[test]
    fn const_sizes_match_the_parameter_list_and_the_sampler() {
        for (d, c, layers, score_term) in [
            (2, 64, 4, true),
            (50, 64, 4, false),
            (1, 2, 2, true),
            (7, 5, 9, true),
        ] {
            let shape = NetworkShape {
                d,
                channels: c,
                layers,
                score_term,
            };
            assert_eq!(
                shape.param_count(),
                shape.params().map(|p| p.len()).sum::<usize>()
            );
            let flat = [0.0f32; 4096];
            if shape.param_count() <= flat.len() {
                let net = NetworkRef::from_flat(shape, &flat[..shape.param_count()]).unwrap();
                let prior = Prior::Isotropic(IsotropicGaussian {
                    d: d as usize,
                    nu: 1.0,
                });
                let target = Some(IsotropicGaussian {
                    d: d as usize,
                    nu: 1.0,
                });
                let control = NetworkControl::new(net, Sde::default(), prior, target).unwrap();
                let sampler = Sampler {
                    sde: Sde::default(),
                    grid: crate::sde::TimeGrid::Uniform,
                    steps: 1,
                    integrator: crate::integrate::Integrator::EulerMaruyama,
                    prior,
                    control,
                    target,
                };
                for paths in [1, 3, 64] {
                    assert_eq!(sampler.work_len(paths), shape.sampler_work_len(paths));
                }
            }
        }
    }
}
