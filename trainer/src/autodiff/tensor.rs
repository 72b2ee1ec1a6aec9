//! Dense row-major `[rows, cols]` f32 matrices: the values on the tape.

/// A dense, row-major `[rows, cols]` matrix of f32.
///
/// Element `(i, j)` is `data[i * cols + j]`. A batch of `N` vectors of length
/// `d` is a `[N, d]` tensor; a row vector `[1, c]` broadcasts over rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A `[rows, cols]` tensor from row-major data.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "tensor data length does not match [{rows}, {cols}]"
        );
        Self { rows, cols, data }
    }

    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self::new(rows, cols, vec![0.0; rows * cols])
    }

    pub fn full(rows: usize, cols: usize, value: f32) -> Self {
        Self::new(rows, cols, vec![value; rows * cols])
    }

    /// A `[1, 1]` tensor.
    pub fn scalar(value: f32) -> Self {
        Self::new(1, 1, vec![value])
    }

    /// A `[1, n]` row vector.
    pub fn row(data: Vec<f32>) -> Self {
        let n = data.len();
        Self::new(1, n, data)
    }

    /// A `[n, 1]` column vector.
    pub fn col(data: Vec<f32>) -> Self {
        let n = data.len();
        Self::new(n, 1, data)
    }

    /// A tensor whose element `(i, j)` is `f(i, j)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> f32) -> Self {
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Self::new(rows, cols, data)
    }

    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }

    pub fn row_slice(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The single element of a `[1, 1]` tensor.
    pub fn item(&self) -> f32 {
        assert_eq!(self.shape(), (1, 1), "item() needs a [1, 1] tensor");
        self.data[0]
    }

    /// Rows `range` as a new tensor.
    pub fn rows_range(&self, range: core::ops::Range<usize>) -> Tensor {
        Tensor::new(
            range.len(),
            self.cols,
            self.data[range.start * self.cols..range.end * self.cols].to_vec(),
        )
    }

    /// Stacks tensors with equal column counts on top of each other.
    pub fn vstack(parts: &[Tensor]) -> Tensor {
        let cols = parts.first().map_or(0, |p| p.cols);
        let mut data = Vec::with_capacity(parts.iter().map(Tensor::len).sum());
        for p in parts {
            assert_eq!(p.cols, cols, "vstack: column counts differ");
            data.extend_from_slice(&p.data);
        }
        Tensor::new(data.len() / cols.max(1), cols, data)
    }
}
