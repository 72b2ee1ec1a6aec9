//! Parameters live outside the tape and persist across iterations.

use super::tensor::Tensor;

/// Index of a parameter in a [`Params`] store (its position in the weights file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Gradients of the parameters, one tensor per parameter, same shapes and
/// order as the [`Params`] they belong to. `Graph::backward` accumulates into it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grads {
    pub tensors: Vec<Tensor>,
}

impl Grads {
    /// Zero gradients shaped like `params`.
    pub fn zeros_like(params: &Params) -> Self {
        Self {
            tensors: params
                .values
                .iter()
                .map(|t| Tensor::zeros(t.rows, t.cols))
                .collect(),
        }
    }

    pub fn zero(&mut self) {
        for t in &mut self.tensors {
            t.data.fill(0.0);
        }
    }

    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.tensors[id.0]
    }

    /// `self += other`, parameter by parameter, element by element (a fixed order).
    pub fn add_assign(&mut self, other: &Grads) {
        assert_eq!(self.tensors.len(), other.tensors.len());
        for (a, b) in self.tensors.iter_mut().zip(&other.tensors) {
            assert_eq!(a.shape(), b.shape());
            for (x, y) in a.data.iter_mut().zip(&b.data) {
                *x += *y;
            }
        }
    }

    /// Euclidean norm of all gradients together (accumulated in f64).
    pub fn global_norm(&self) -> f64 {
        self.tensors
            .iter()
            .flat_map(|t| t.data.iter())
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt()
    }

    pub fn scale(&mut self, c: f32) {
        for t in &mut self.tensors {
            for g in &mut t.data {
                *g *= c;
            }
        }
    }
}

/// A store of named parameter tensors with a parallel gradient store.
///
/// The order of insertion is the order of the weights file.
#[derive(Clone, Debug, Default)]
pub struct Params {
    names: Vec<String>,
    pub values: Vec<Tensor>,
    pub grads: Grads,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a parameter; names must be unique.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor) -> ParamId {
        let name = name.into();
        assert!(self.id(&name).is_none(), "duplicate parameter name {name}");
        self.grads
            .tensors
            .push(Tensor::zeros(value.rows, value.cols));
        self.names.push(name);
        self.values.push(value);
        ParamId(self.values.len() - 1)
    }

    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(ParamId)
    }

    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn get(&self, id: ParamId) -> &Tensor {
        &self.values[id.0]
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut Tensor {
        &mut self.values[id.0]
    }

    pub fn grad(&self, id: ParamId) -> &Tensor {
        &self.grads.tensors[id.0]
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn zero_grad(&mut self) {
        self.grads.zero();
    }

    /// Total number of scalars.
    pub fn num_scalars(&self) -> usize {
        self.values.iter().map(Tensor::len).sum()
    }

    /// All parameters concatenated in weights-file order (row-major each).
    pub fn flatten(&self) -> Vec<f32> {
        self.values
            .iter()
            .flat_map(|t| t.data.iter().copied())
            .collect()
    }

    /// Inverse of [`Params::flatten`].
    pub fn load_flat(&mut self, flat: &[f32]) {
        assert_eq!(flat.len(), self.num_scalars(), "wrong number of scalars");
        let mut at = 0;
        for t in &mut self.values {
            let n = t.len();
            t.data.copy_from_slice(&flat[at..at + n]);
            at += n;
        }
    }
}
