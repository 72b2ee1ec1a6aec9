//! The tape: values of a computation, and (in [`Grad`] mode) how to differentiate it.
//!
//! A [`Graph`] is an arena of values. Every op appends its result and returns
//! a [`Var`] (an index plus the shape). Whether the graph records the backward
//! information is part of its type, as in dfdx: `Graph<Grad>` (alias [`Tape`])
//! records, `Graph<NoGrad>` (alias [`Eval`]) does not. The op methods are
//! written once for both; `M::RECORD` is a constant, so on the no-gradient
//! path the recording code is compiled out.
//!
//! Reverse mode: `backward` walks the nodes from the loss to the first one. A
//! node's gradient buffer is created (zeroed) the first time one of its
//! consumers writes into it, so a value used several times sums its
//! contributions; a node needing no gradient (constants, detached values and
//! everything computed only from them) is skipped.

use std::collections::HashMap;
use std::marker::PhantomData;

use super::ops::elementwise::{BinaryOp, UnaryOp};
use super::ops::matmul::{LinearOp, MatMulOp};
use super::ops::reduce::ReduceOp;
use super::ops::shape::ShapeOp;
use super::params::{Grads, ParamId, Params};
use super::tensor::Tensor;

/// Whether a graph records what backward needs.
pub trait Mode: Send + Sync + 'static {
    const RECORD: bool;
}

/// Records the operations: `backward` is available.
#[derive(Debug)]
pub struct Grad;
/// Records nothing: evaluation only.
#[derive(Debug)]
pub struct NoGrad;

impl Mode for Grad {
    const RECORD: bool = true;
}
impl Mode for NoGrad {
    const RECORD: bool = false;
}

/// A graph that records operations for reverse mode.
pub type Tape = Graph<Grad>;
/// A graph that only evaluates.
pub type Eval = Graph<NoGrad>;

/// Handle to a value in a [`Graph`]: cheap to copy, valid until `clear`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var {
    pub(crate) id: usize,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
}

impl Var {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a node was computed, with what its backward rule needs. Each op
/// family's backward lives beside its forward in `ops/`.
pub(crate) enum Op {
    /// A constant or detached value: no gradient flows into it.
    Leaf,
    /// A parameter: its gradient goes to the parameter gradient store.
    Param(ParamId),
    MatMul(MatMulOp),
    Linear(LinearOp),
    Binary(BinaryOp),
    Unary(UnaryOp),
    Reduce(ReduceOp),
    Shape(ShapeOp),
}

pub(crate) struct Node {
    pub(crate) op: Op,
    pub(crate) requires_grad: bool,
}

/// Free f32 buffers, keyed by length. Shapes repeat exactly from one iteration
/// to the next, so after the first iteration allocation stops.
#[derive(Default)]
pub(crate) struct Pool {
    free: HashMap<usize, Vec<Vec<f32>>>,
}

impl Pool {
    /// A buffer of length `len` with unspecified (finite) contents: the caller
    /// overwrites every element.
    pub(crate) fn take(&mut self, len: usize) -> Vec<f32> {
        match self.free.get_mut(&len).and_then(Vec::pop) {
            Some(v) => v,
            None => vec![0.0; len],
        }
    }

    pub(crate) fn take_zeroed(&mut self, len: usize) -> Vec<f32> {
        match self.free.get_mut(&len).and_then(Vec::pop) {
            Some(mut v) => {
                v.fill(0.0);
                v
            }
            None => vec![0.0; len],
        }
    }

    pub(crate) fn give(&mut self, v: Vec<f32>) {
        if !v.is_empty() {
            self.free.entry(v.len()).or_default().push(v);
        }
    }
}

/// An arena of values, recording the backward rules when `M = Grad`.
pub struct Graph<M: Mode = Grad> {
    pub(crate) values: Vec<Tensor>,
    /// One per value in `Grad` mode; empty in `NoGrad` mode.
    pub(crate) nodes: Vec<Node>,
    pub(crate) pool: Pool,
    /// Per-node gradient slots, kept between backward passes for their capacity.
    grad_slots: Vec<Option<Vec<f32>>>,
    /// Row-major transposes of the values used as a dense layer's weight,
    /// by value id: a weight bound once serves every step of a rollout,
    /// transposed once ([`Graph::linear`]). Values never change, so an
    /// entry is valid until its value is truncated away.
    pub(crate) transposes: Vec<(usize, Vec<f32>)>,
    _mode: PhantomData<M>,
}

impl<M: Mode> Default for Graph<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Mode> Graph<M> {
    pub fn new() -> Self {
        Self {
            values: Vec::new(),
            nodes: Vec::new(),
            pool: Pool::default(),
            grad_slots: Vec::new(),
            transposes: Vec::new(),
            _mode: PhantomData,
        }
    }

    /// Forgets every value, keeping the buffers for the next iteration.
    /// All `Var`s of this graph become invalid.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Forgets the values from the `len`-th on (their `Var`s become
    /// invalid), keeping the buffers. With `len` the graph's length after
    /// binding the parameters, one graph serves step after step of a
    /// rollout with the parameters bound once.
    pub fn truncate(&mut self, len: usize) {
        // Partitioning into a new vector measured 15 % faster on dw20 than
        // `retain_mut` in place, for reasons not yet understood
        // (benches/README.md, "Measurements behind design choices").
        let (keep, drop): (Vec<_>, Vec<_>) = std::mem::take(&mut self.transposes)
            .into_iter()
            .partition(|(id, _)| *id < len);
        self.transposes = keep;
        for (_, t) in drop {
            self.pool.give(t);
        }
        for t in self.values.drain(len.min(self.values.len())..) {
            self.pool.give(t.data);
        }
        for n in self.nodes.drain(len.min(self.nodes.len())..) {
            match n.op {
                Op::Shape(ShapeOp::External { jac, .. }) => self.pool.give(jac),
                Op::Unary(UnaryOp { saved_grad, .. }) => self.pool.give(saved_grad),
                _ => {}
            }
        }
    }

    /// Forgets every value and frees all memory, including the buffer pool.
    pub fn release(&mut self) {
        self.clear();
        self.pool = Pool::default();
        self.values = Vec::new();
        self.nodes = Vec::new();
        self.grad_slots = Vec::new();
        self.transposes = Vec::new();
    }

    /// Number of values on the graph.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Bytes held by live values (not counting the pool).
    pub fn value_bytes(&self) -> usize {
        self.values.iter().map(|t| t.data.capacity() * 4).sum()
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.values[v.id]
    }

    /// The single element of a `[1, 1]` value.
    pub fn item(&self, v: Var) -> f32 {
        self.values[v.id].item()
    }

    /// Whether gradients flow into `v` (always false without recording).
    pub fn requires_grad(&self, v: Var) -> bool {
        M::RECORD && self.nodes[v.id].requires_grad
    }

    pub(crate) fn alloc(&mut self, len: usize) -> Vec<f32> {
        self.pool.take(len)
    }

    /// Appends a computed value. `inputs` decide whether it needs a gradient;
    /// `op` is only called (and the node only stored) when recording.
    pub(crate) fn push(
        &mut self,
        rows: usize,
        cols: usize,
        data: Vec<f32>,
        inputs: &[Var],
        op: impl FnOnce() -> Op,
    ) -> Var {
        debug_assert_eq!(data.len(), rows * cols);
        let id = self.values.len();
        self.values.push(Tensor { rows, cols, data });
        if M::RECORD {
            let requires_grad = inputs.iter().any(|&v| self.nodes[v.id].requires_grad);
            let op = if requires_grad { op() } else { Op::Leaf };
            self.nodes.push(Node { op, requires_grad });
        }
        Var { id, rows, cols }
    }

    fn push_leaf(&mut self, t: Tensor, op: Op, requires_grad: bool) -> Var {
        let (rows, cols) = t.shape();
        let id = self.values.len();
        self.values.push(t);
        if M::RECORD {
            self.nodes.push(Node { op, requires_grad });
        }
        Var { id, rows, cols }
    }

    /// A constant: no gradient flows into it.
    pub fn constant(&mut self, t: Tensor) -> Var {
        self.push_leaf(t, Op::Leaf, false)
    }

    /// A constant copied from a slice, reusing a pooled buffer.
    pub fn constant_from(&mut self, rows: usize, cols: usize, data: &[f32]) -> Var {
        assert_eq!(data.len(), rows * cols);
        let mut buf = self.alloc(rows * cols);
        buf.copy_from_slice(data);
        self.constant(Tensor::new(rows, cols, buf))
    }

    /// A `[1, 1]` constant.
    pub fn scalar(&mut self, value: f32) -> Var {
        self.constant_from(1, 1, &[value])
    }

    /// A leaf holding the current value of parameter `id`. Its gradient is
    /// accumulated into the gradient store passed to `backward`. Bind each
    /// parameter once per tape and reuse the `Var` (e.g. across time steps).
    pub fn param(&mut self, params: &Params, id: ParamId) -> Var {
        let src = params.get(id);
        let mut buf = self.alloc(src.len());
        buf.copy_from_slice(&src.data);
        self.push_leaf(Tensor::new(src.rows, src.cols, buf), Op::Param(id), true)
    }

    /// Stop-gradient: the same value, as a constant.
    pub fn detach(&mut self, v: Var) -> Var {
        let mut buf = self.alloc(v.len());
        buf.copy_from_slice(&self.values[v.id].data);
        self.constant(Tensor::new(v.rows, v.cols, buf))
    }
}

/// What an op's backward rule sees: all values, and the gradient accumulators.
pub(crate) struct Back<'a> {
    pub(crate) values: &'a [Tensor],
    nodes: &'a [Node],
    grads: &'a mut [Option<Vec<f32>>],
    pool: &'a mut Pool,
}

impl Back<'_> {
    /// Accumulator for the gradient of `v` (zero on first use), or `None`
    /// when no gradient flows into `v`.
    pub(crate) fn grad(&mut self, v: Var) -> Option<&mut [f32]> {
        if !self.nodes[v.id].requires_grad {
            return None;
        }
        let slot = &mut self.grads[v.id];
        if slot.is_none() {
            *slot = Some(self.pool.take_zeroed(v.len()));
        }
        slot.as_deref_mut()
    }
}

impl Graph<Grad> {
    /// Reverse mode from a `[1, 1]` loss: adds `d loss / d p` to `grads` for
    /// every parameter `p` bound on this tape. Intermediate gradients are
    /// freed (returned to the pool) as soon as they have been propagated.
    pub fn backward(&mut self, loss: Var, grads: &mut Grads) {
        assert_eq!(loss.shape(), (1, 1), "backward needs a [1, 1] loss");
        self.backward_seeded(loss, &[1.0], grads);
    }

    /// Reverse mode with a given output gradient `seed` (shape of `v`):
    /// adds `sum_ij seed_ij d v_ij / d p` to `grads`.
    pub fn backward_seeded(&mut self, v: Var, seed: &[f32], grads: &mut Grads) {
        assert_eq!(seed.len(), v.len(), "seed shape does not match");
        let mut slots = std::mem::take(&mut self.grad_slots);
        slots.clear();
        slots.resize_with(v.id + 1, || None);
        let Graph {
            values,
            nodes,
            pool,
            ..
        } = self;
        // A parameter's gradient slot is its buffer in `grads`: every
        // contribution is added straight onto it, in the order the nodes are
        // visited. So backward passes over several tapes (one per time step)
        // accumulate exactly as one pass over a tape holding all the steps.
        for ((slot, node), value) in slots.iter_mut().zip(nodes.iter()).zip(values.iter()) {
            if let Op::Param(p) = node.op {
                let buf = std::mem::take(&mut grads.tensors[p.0].data);
                assert_eq!(
                    buf.len(),
                    value.len(),
                    "grad store does not match params (or parameter {} is bound twice on one tape)",
                    p.0
                );
                *slot = Some(buf);
            }
        }
        if nodes[v.id].requires_grad {
            match &mut slots[v.id] {
                Some(g) => g.iter_mut().zip(seed).for_each(|(g, s)| *g += s),
                None => {
                    let mut g = pool.take(v.len());
                    g.copy_from_slice(seed);
                    slots[v.id] = Some(g);
                }
            }
        }
        for i in (0..=v.id).rev() {
            let Some(gy) = slots[i].take() else {
                continue;
            };
            let node = &nodes[i];
            let out = Var {
                id: i,
                rows: values[i].rows,
                cols: values[i].cols,
            };
            let mut ctx = Back {
                values,
                nodes,
                grads: &mut slots,
                pool,
            };
            match &node.op {
                Op::Leaf => {}
                Op::Param(p) => {
                    // The accumulated gradient goes back to its store.
                    grads.tensors[p.0].data = gy;
                    continue;
                }
                Op::MatMul(op) => op.backward(out, &gy, &mut ctx),
                Op::Linear(op) => op.backward(out, &gy, &mut ctx),
                Op::Binary(op) => op.backward(out, &gy, &mut ctx),
                Op::Unary(op) => op.backward(out, &gy, &mut ctx),
                Op::Reduce(op) => op.backward(out, &gy, &mut ctx),
                Op::Shape(op) => op.backward(out, &gy, &mut ctx),
            }
            pool.give(gy);
        }
        self.grad_slots = slots;
    }
}
