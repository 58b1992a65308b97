//! Trainable parameters: owned f32 tensors addressed by id, with names (Hugging Face names
//! for the encoder) and shapes, and gradient buffers of the same layout.

/// Index of a tensor in a [`ParamSet`] (and in its [`Grads`]).
pub type ParamId = usize;

#[derive(Clone, Default)]
pub struct ParamSet {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    /// One buffer per tensor, row-major.
    pub values: Vec<Vec<f32>>,
}

impl ParamSet {
    pub fn push(&mut self, name: &str, shape: &[usize], value: Vec<f32>) -> ParamId {
        assert_eq!(value.len(), shape.iter().product::<usize>(), "{name}: value does not fill its shape");
        assert!(!self.names.iter().any(|n| n == name), "{name}: duplicate parameter");
        self.names.push(name.to_string());
        self.shapes.push(shape.to_vec());
        self.values.push(value);
        self.values.len() - 1
    }

    pub fn get(&self, id: ParamId) -> &[f32] {
        &self.values[id]
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

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.values.iter().map(Vec::len).sum()
    }

    /// Zeroed gradient buffers, one per tensor.
    pub fn zero_grads(&self) -> Grads {
        Grads(self.values.iter().map(|v| vec![0.0; v.len()]).collect())
    }
}

/// Gradients, one buffer per parameter of a [`ParamSet`], accumulated (`+=`) by the
/// backward passes.
pub struct Grads(pub Vec<Vec<f32>>);

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
