//! Parameters: tensors on the device (borrowed from a weight file or owned), addressed by
//! id, with names (Hugging Face names for the encoder) and shapes; one set serves
//! inference, training and checkpoints. [`Grads`] has the same layout.
use crate::backend::{Backend, Buf, Device as D, Tensor};

/// Index of a tensor in a [`ParamSet`] (and in its [`Grads`]).
pub type ParamId = usize;

/// Named tensors. A clone shares the tensors until either side changes one
/// ([`Tensor::data_mut`] copies a shared tensor first).
#[derive(Clone, Default)]
pub struct ParamSet {
    names: Vec<String>,
    /// One tensor per parameter, row-major.
    values: Vec<Tensor>,
}

impl ParamSet {
    pub fn push(&mut self, name: &str, shape: &[usize], value: Vec<f32>) -> ParamId {
        assert_eq!(value.len(), shape.iter().product::<usize>(), "{name}: value does not fill its shape");
        self.push_tensor(name, Tensor::from_vec(value, shape.to_vec()))
    }

    pub fn push_tensor(&mut self, name: &str, tensor: Tensor) -> ParamId {
        assert!(!self.names.iter().any(|n| n == name), "{name}: duplicate parameter");
        self.names.push(name.to_string());
        self.values.push(tensor);
        self.values.len() - 1
    }

    pub fn get(&self, id: ParamId) -> &[f32] {
        self.values[id].data()
    }

    /// The values of `id` to change in place.
    pub fn get_mut(&mut self, id: ParamId) -> &mut [f32] {
        self.values[id].data_mut()
    }

    pub fn tensor(&self, id: ParamId) -> &Tensor {
        &self.values[id]
    }

    /// Replaces parameter `id` by `tensor` (same shape).
    pub fn set(&mut self, id: ParamId, tensor: Tensor) {
        assert_eq!(tensor.shape(), self.values[id].shape(), "{}: shape", self.names[id]);
        self.values[id] = tensor;
    }

    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name)
    }

    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id]
    }

    pub fn shape(&self, id: ParamId) -> &[usize] {
        self.values[id].shape()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.values.iter().map(|v| v.data().len()).sum()
    }

    /// Zeroed gradient buffers, one per tensor.
    pub fn zero_grads(&self) -> Grads {
        Grads(self.values.iter().map(|v| D::zeros(v.data().len())).collect())
    }
}

/// Gradients, one buffer per parameter of a [`ParamSet`], accumulated (`+=`) by the
/// backward passes.
pub struct Grads(pub Vec<Buf>);

impl Grads {
    pub fn get(&self, id: ParamId) -> &[f32] {
        &self.0[id]
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut [f32] {
        &mut self.0[id]
    }

    /// Several distinct gradients at once (e.g. a weight's and a bias's).
    pub fn many<const N: usize>(&mut self, ids: [ParamId; N]) -> [&mut [f32]; N] {
        self.0.get_disjoint_mut(ids).expect("distinct parameter ids").map(Vec::as_mut_slice)
    }

    pub fn zero(&mut self) {
        self.0.iter_mut().for_each(|g| g.fill(0.0));
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
