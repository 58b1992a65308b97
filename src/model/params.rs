//! Parameters: tensors on the device (borrowed from a weight file or owned), addressed by
//! id, with names (Hugging Face names for the encoder) and shapes; one set serves
//! inference, training and checkpoints. [`Grads`] has the same layout.
use crate::backend::{Backend, Tensor};
use crate::error::Result;

/// Index of a tensor in a [`ParamSet`] (and in its [`Grads`]).
pub type ParamId = usize;

/// Named tensors resident on the device `B`, each uploaded once from the host. A clone
/// shares the tensors until either side changes one ([`Backend::param_mut`] copies a shared
/// tensor first).
pub struct ParamSet<B: Backend> {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    /// One tensor per parameter, row-major.
    values: Vec<B::Param>,
}

impl<B: Backend> Default for ParamSet<B> {
    fn default() -> Self {
        ParamSet { names: Vec::new(), shapes: Vec::new(), values: Vec::new() }
    }
}

impl<B: Backend> Clone for ParamSet<B> {
    fn clone(&self) -> Self {
        ParamSet { names: self.names.clone(), shapes: self.shapes.clone(), values: self.values.clone() }
    }
}

impl<B: Backend> ParamSet<B> {
    pub fn push(&mut self, name: &str, shape: &[usize], value: Vec<f32>) -> ParamId {
        assert_eq!(value.len(), shape.iter().product::<usize>(), "{name}: value does not fill its shape");
        self.push_tensor(name, &Tensor::from_vec(value, shape.to_vec()))
    }

    /// Uploads the host tensor `tensor` as parameter `name`.
    pub fn push_tensor(&mut self, name: &str, tensor: &Tensor) -> ParamId {
        assert!(!self.names.iter().any(|n| n == name), "{name}: duplicate parameter");
        self.names.push(name.to_string());
        self.shapes.push(tensor.shape().to_vec());
        self.values.push(B::upload(tensor));
        self.values.len() - 1
    }

    pub fn get(&self, id: ParamId) -> &B::Mem {
        B::param(&self.values[id])
    }

    /// The values of `id` to change in place.
    pub fn get_mut(&mut self, id: ParamId) -> &mut B::Mem {
        B::param_mut(&mut self.values[id])
    }

    pub fn param(&self, id: ParamId) -> &B::Param {
        &self.values[id]
    }

    /// Replaces parameter `id` by the host tensor `tensor` (same shape), uploaded.
    pub fn set(&mut self, id: ParamId, tensor: &Tensor) {
        assert_eq!(tensor.shape(), self.shapes[id], "{}: shape", self.names[id]);
        self.values[id] = B::upload(tensor);
    }

    /// A host copy of parameter `id` (the CPU: the tensor itself, shared).
    pub fn host(&self, id: ParamId) -> Result<Tensor> {
        B::download(&self.values[id], &self.shapes[id])
    }

    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name)
    }

    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id]
    }

    pub fn shape(&self, id: ParamId) -> &[usize] {
        &self.shapes[id]
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The number of scalars of parameter `id`.
    pub fn numel_of(&self, id: ParamId) -> usize {
        self.shapes[id].iter().product()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        (0..self.len()).map(|id| self.numel_of(id)).sum()
    }

    /// Zeroed gradient buffers, one per tensor.
    pub fn zero_grads(&self) -> Grads<B> {
        Grads((0..self.len()).map(|id| B::zeros(self.numel_of(id))).collect())
    }
}

/// Gradients, one device buffer per parameter of a [`ParamSet`], accumulated (`+=`) by the
/// backward passes.
pub struct Grads<B: Backend>(pub Vec<B::Buf>);

impl<B: Backend> Grads<B> {
    pub fn get(&self, id: ParamId) -> &B::Mem {
        &self.0[id]
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut B::Mem {
        &mut self.0[id]
    }

    /// Several distinct gradients at once (e.g. a weight's and a bias's).
    pub fn many<const N: usize>(&mut self, ids: [ParamId; N]) -> [&mut B::Mem; N] {
        self.0.get_disjoint_mut(ids).expect("distinct parameter ids").map(|g| &mut **g)
    }

    pub fn zero(&mut self) {
        self.0.iter_mut().for_each(|g| B::fill_zero(g));
    }
}

/// Ids of a linear layer `y = x·Wᵀ + b`: `weight: [out × in]`, `bias: [out]`.
#[derive(Debug, Clone, Copy)]
pub struct LinearIds {
    pub weight: ParamId,
    pub bias: ParamId,
}

/// Ids of a LayerNorm: `gamma, beta: [d]`.
#[derive(Debug, Clone, Copy)]
pub struct NormIds {
    pub gamma: ParamId,
    pub beta: ParamId,
}
