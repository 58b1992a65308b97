//! RE-Matching's training objective on top of the encoder's last hidden layer `H: [T × d]`:
//! the input-side heads, the fine-grained matching loss against frozen description vectors,
//! and the adversarial distillation loss (DESIGN.md §1, tests/oracle/TRAINING.md).
//!
//! ```text
//! e_h, e_t = max-pool H over the entity spans          m = [H[#]; H[@]]          (entity_pool)
//! x   = context(m)                                      [B × d]
//! x*  = softmax_j(q · sg(H_j)) sg(H_j)                  [B × d]  (distill; no gradient to H)
//! adv = CE(adversary.1(tanh(adversary.0(GRL(x*)))), train label)
//! c, h, t = tanh(x − (x·x*/‖x*‖²) x*), tanh(e_h), tanh(e_t)
//! s(i, r) = (1−2α) cos(c_i, D_r.ctx) + α cos(h_i, D_r.head) + α cos(t_i, D_r.tail)
//! matching = mean_i max(0, γ − s(i, r_i) + max(0, max_{r ∈ N_i} s(i, r)))   (or the contrastive loss)
//! loss = matching + adv
//! ```
use crate::backend::{Activation, Backend, EntityRows};
use crate::model::heads::{Heads, Linear};
use crate::model::params::{Grads, LinearIds, ParamId, ParamSet};
use crate::rng::Rng;

/// RE-Matching's margin γ.
pub const MATCHING_MARGIN: f32 = 0.06;

/// The method's constants.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ObjectiveSettings {
    /// Weight of each entity part; the context part gets `1 − 2α`.
    pub alpha: f32,
    /// Margin γ of the matching loss.
    pub gamma: f32,
    /// Gradient reversal factor λ.
    pub grl_lambda: f32,
    /// The matching loss on the scores (older checkpoints: the margin loss).
    #[serde(default)]
    pub matching: MatchingLoss,
}

/// Which loss turns a sample's scores against its positive and candidate negatives into
/// the matching loss.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchingLoss {
    /// RE-Matching's hinge against the hardest negative, margin `γ` (`ObjectiveSettings::gamma`).
    #[default]
    Margin,
    /// Softmax cross-entropy over the positive and the negatives at this temperature.
    Contrastive { temperature: f32 },
}

impl Default for ObjectiveSettings {
    fn default() -> Self {
        ObjectiveSettings { alpha: crate::model::rematch::DEFAULT_ALPHA, gamma: MATCHING_MARGIN, grl_lambda: 0.5, matching: MatchingLoss::Margin }
    }
}

/// Parameter ids of the heads. Names: `context.{weight,bias}` (`[d × 2d]`, `[d]`),
/// `distill.query` (`[d]`), `adversary.0.{weight,bias}` (`[d × d]`, `[d]`),
/// `adversary.1.{weight,bias}` (`[n_train × d]`, `[n_train]`).
#[derive(Debug, Clone)]
pub struct HeadIds {
    pub context: LinearIds,
    pub distill_query: ParamId,
    pub adversary_hidden: LinearIds,
    pub adversary_out: LinearIds,
    pub d: usize,
    pub n_train: usize,
}

impl HeadIds {
    /// Adds freshly initialised heads (BERT's initialisation: weights `N(0, 0.02²)`, biases 0,
    /// the query `N(0, 0.02²)`) for hidden size `d` and `n_train` training relations.
    pub fn init<B: Backend>(params: &mut ParamSet<B>, d: usize, n_train: usize, rng: &mut Rng) -> HeadIds {
        let mut linear = |params: &mut ParamSet<B>, name: &str, out: usize, inp: usize| LinearIds {
            weight: params.push(&format!("{name}.weight"), &[out, inp], rng.normals(out * inp, 0.02)),
            bias: params.push(&format!("{name}.bias"), &[out], vec![0.0; out]),
        };
        let context = linear(params, "context", d, 2 * d);
        let adversary_hidden = linear(params, "adversary.0", d, d);
        let adversary_out = linear(params, "adversary.1", n_train, d);
        let distill_query = params.push("distill.query", &[d], rng.normals(d, 0.02));
        HeadIds { context, distill_query, adversary_hidden, adversary_out, d, n_train }
    }

    /// The ids of heads already in `params` (e.g. loaded from a fixture).
    pub fn find<B: Backend>(params: &ParamSet<B>) -> Option<HeadIds> {
        let linear = |name: &str| Some(LinearIds { weight: params.id(&format!("{name}.weight"))?, bias: params.id(&format!("{name}.bias"))? });
        let adversary_out = linear("adversary.1")?;
        let shape = params.shape(adversary_out.weight);
        Some(HeadIds {
            context: linear("context")?,
            distill_query: params.id("distill.query")?,
            adversary_hidden: linear("adversary.0")?,
            d: shape[1],
            n_train: shape[0],
            adversary_out,
        })
    }

    /// Every head parameter.
    pub fn ids(&self) -> [ParamId; 7] {
        let (c, h, o) = (self.context, self.adversary_hidden, self.adversary_out);
        [c.weight, c.bias, self.distill_query, h.weight, h.bias, o.weight, o.bias]
    }

    /// The inference heads with the current values (the tensors are shared until either
    /// side changes one; the adversary only serves training).
    pub fn to_heads<B: Backend>(&self, p: &ParamSet<B>) -> Heads<B> {
        let t = |id: ParamId| p.param(id).clone();
        Heads { context: Linear { weight: t(self.context.weight), bias: t(self.context.bias) }, distill_query: t(self.distill_query) }
    }
}

/// What one batch is matched against, and where its samples sit in the packed batch.
pub struct Targets<'a, B: Backend> {
    /// The packed batch's sequence offsets, `[B + 1]`.
    pub starts: &'a [usize],
    /// Rows of each sample's entities and markers in the packed batch, `[B]`.
    pub rows: &'a [EntityRows],
    /// Frozen description vectors of the batch's `R` relations, `[R × 3d]` (context, head,
    /// tail parts; any positive scale per part).
    pub descriptions: &'a B::Mem,
    /// Each sample's relation (row of `descriptions`), `[B]`.
    pub relation: &'a [u32],
    /// `[B × R]`: relation `r` is a candidate negative of sample `i`.
    pub negatives: &'a [bool],
    /// Each sample's training-relation index (the adversary's class), `[B]`.
    pub train_label: &'a [u32],
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Losses {
    pub matching: f32,
    pub adversarial: f32,
}

impl Losses {
    pub fn total(&self) -> f32 {
        self.matching + self.adversarial
    }
}

/// Forward values the backward pass needs. `[B × d]` unless noted.
pub struct ObjectiveCache<B: Backend> {
    /// `[B × 2d]` marker states and `[B × 2d]` arg-max rows of the entity pools
    markers: B::Buf,
    argmax: Vec<u32>,
    x: B::Buf,
    x_star: B::Buf,
    /// `[T]` distillation attention
    attn: B::Buf,
    /// `tanh(adversary.0(x*))`
    adversary_hidden: B::Buf,
    /// `[B × n_train]`
    logits: B::Buf,
    /// `[B × 3d]`: `c | h | t` per row (after tanh): the query parts inference scores
    pub parts: B::Buf,
    /// `[B × R]`
    pub scores: B::Buf,
}

impl HeadIds {
    fn part_weights(settings: &ObjectiveSettings) -> [f32; 3] {
        [1.0 - 2.0 * settings.alpha, settings.alpha, settings.alpha]
    }

    pub fn forward<B: Backend>(&self, p: &ParamSet<B>, hidden: &B::Mem, targets: &Targets<B>, settings: &ObjectiveSettings) -> (Losses, ObjectiveCache<B>) {
        let (d, b) = (self.d, targets.rows.len());
        let r = B::len(targets.descriptions) / (3 * d);
        let zeros = |n: usize| B::zeros(n);
        let (mut eh, mut et, mut markers, mut argmax) = (zeros(b * d), zeros(b * d), zeros(b * 2 * d), vec![0u32; b * 2 * d]);
        B::entity_pool_forward(hidden, d, targets.rows, &mut eh, &mut et, &mut markers, &mut argmax);
        let mut x = zeros(b * d);
        B::linear_forward(&markers, b, p.get(self.context.weight), p.get(self.context.bias), &mut x, Activation::Bias);
        let (mut x_star, mut attn) = (zeros(b * d), zeros(B::len(hidden) / d));
        B::query_attention_forward(hidden, targets.starts, p.get(self.distill_query), &mut x_star, &mut attn);

        let mut adversary_hidden = zeros(b * d);
        B::linear_forward(&x_star, b, p.get(self.adversary_hidden.weight), p.get(self.adversary_hidden.bias), &mut adversary_hidden, Activation::Bias);
        B::tanh_forward(&mut adversary_hidden);
        let mut logits = zeros(b * self.n_train);
        B::linear_forward(&adversary_hidden, b, p.get(self.adversary_out.weight), p.get(self.adversary_out.bias), &mut logits, Activation::Bias);
        let adversarial = B::cross_entropy_forward(&logits, self.n_train, targets.train_label);

        let mut projected = zeros(b * d);
        B::project_out_forward(&x, &x_star, d, &mut projected);
        let mut parts = zeros(b * 3 * d);
        B::concat_parts(&[&projected, &eh, &et], d, &mut parts);
        B::tanh_forward(&mut parts);
        let mut scores = zeros(b * r);
        B::cosine_scores_forward(&parts, targets.descriptions, d, &Self::part_weights(settings), &mut scores);
        let matching = match settings.matching {
            MatchingLoss::Margin => B::matching_loss_forward(&scores, r, targets.relation, targets.negatives, settings.gamma),
            MatchingLoss::Contrastive { temperature } => B::contrastive_loss_forward(&scores, r, targets.relation, targets.negatives, temperature),
        };
        let cache = ObjectiveCache { markers, argmax, x, x_star, attn, adversary_hidden, logits, parts, scores };
        (Losses { matching, adversarial }, cache)
    }

    /// Gradients of `matching + adversarial`: the heads' into `grads`, the hidden layer's
    /// added to `d_hidden: [T × d]` (none along the distillation path: stop gradient), and,
    /// when the description side is trained, the description rows' added to
    /// `d_descriptions: [R × 3d]`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        p: &ParamSet<B>,
        hidden: &B::Mem,
        targets: &Targets<B>,
        settings: &ObjectiveSettings,
        cache: &ObjectiveCache<B>,
        grads: &mut Grads<B>,
        d_hidden: &mut B::Mem,
        d_descriptions: Option<&mut B::Mem>,
    ) {
        let (d, b) = (self.d, targets.rows.len());
        let r = B::len(targets.descriptions) / (3 * d);
        let zeros = |n: usize| B::zeros(n);

        // matching loss → scores → parts (c | h | t) → their tanh inputs
        let mut d_scores = zeros(b * r);
        match settings.matching {
            MatchingLoss::Margin => B::matching_loss_backward(&cache.scores, r, targets.relation, targets.negatives, settings.gamma, 1.0, &mut d_scores),
            MatchingLoss::Contrastive { temperature } => {
                B::contrastive_loss_backward(&cache.scores, r, targets.relation, targets.negatives, temperature, 1.0, &mut d_scores)
            }
        }
        let mut d_parts = zeros(b * 3 * d);
        B::cosine_scores_backward(&cache.parts, targets.descriptions, d, &Self::part_weights(settings), &d_scores, &mut d_parts, d_descriptions);
        let mut d_pre = zeros(b * 3 * d);
        B::tanh_backward(&cache.parts, &d_parts, &mut d_pre);
        let (mut d_projected, mut d_eh, mut d_et) = (zeros(b * d), zeros(b * d), zeros(b * d));
        B::split_parts(&d_pre, d, &mut [&mut d_projected, &mut d_eh, &mut d_et]);

        // projection-subtraction → x and x*
        let (mut dx, mut d_x_star) = (zeros(b * d), zeros(b * d));
        B::project_out_backward(&cache.x, &cache.x_star, d, &d_projected, &mut dx, &mut d_x_star);

        // adversary, through the gradient reversal into x*
        let mut d_logits = zeros(b * self.n_train);
        B::cross_entropy_backward(&cache.logits, self.n_train, targets.train_label, 1.0, &mut d_logits);
        let mut d_hidden_adv = zeros(b * d);
        let [dw, db] = grads.many([self.adversary_out.weight, self.adversary_out.bias]);
        B::linear_backward(&cache.adversary_hidden, b, p.get(self.adversary_out.weight), &d_logits, Some(&mut d_hidden_adv), dw, db);
        let mut d_pre_adv = zeros(b * d);
        B::tanh_backward(&cache.adversary_hidden, &d_hidden_adv, &mut d_pre_adv);
        let mut d_x_star_adv = zeros(b * d);
        let [dw, db] = grads.many([self.adversary_hidden.weight, self.adversary_hidden.bias]);
        B::linear_backward(&cache.x_star, b, p.get(self.adversary_hidden.weight), &d_pre_adv, Some(&mut d_x_star_adv), dw, db);
        B::grl_backward(&d_x_star_adv, settings.grl_lambda, &mut d_x_star);

        // distillation attention: gradient to the query only (H is detached here)
        B::query_attention_backward(hidden, targets.starts, p.get(self.distill_query), &cache.attn, &d_x_star, grads.get_mut(self.distill_query), None);

        // context projection → markers; entity pools and markers → H
        let mut d_markers = zeros(b * 2 * d);
        let [dw, db] = grads.many([self.context.weight, self.context.bias]);
        B::linear_backward(&cache.markers, b, p.get(self.context.weight), &dx, Some(&mut d_markers), dw, db);
        B::entity_pool_backward(d, targets.rows, &cache.argmax, &d_eh, &d_et, &d_markers, d_hidden);
    }
}
