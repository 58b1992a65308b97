//! The trained RE-Matching heads of the input side and the checkpoint settings beside them.
//!
//! A trained checkpoint directory holds the fine-tuned input encoder (Hugging Face layout:
//! `config.json`, `tokenizer.json`, `model.safetensors`), `heads.safetensors` and `rmx.json`:
//! `{"format": 1, "alpha": 0.33, "description_encoder": "description_encoder", ...}` (a
//! directory, relative to the checkpoint, holding the frozen description-side sentence
//! encoder; the other fields are documented on [`CheckpointSettings`]).
use super::description::DescriptionStyle;
use super::weights::WeightFile;
use crate::backend::Backend;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SETTINGS_FILE: &str = "rmx.json";
pub const HEADS_FILE: &str = "heads.safetensors";
/// The newest settings format this rmx reads. Format 2 adds `zero_shot_weight`, format 3
/// `zero_shot_encoder`; a checkpoint is written in the oldest format that holds what it uses,
/// so older rmx versions read it when they can score it and refuse it otherwise (instead of
/// silently scoring without the ensemble or with the wrong encoder).
pub const SETTINGS_FORMAT: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointSettings {
    pub format: u32,
    pub alpha: f32,
    pub description_encoder: PathBuf,
    /// How entity-type keywords become text on the description side (the checkpoint was
    /// trained against it); absent in format-1 files written before it existed: the template.
    #[serde(default)]
    pub description_style: DescriptionStyle,
    /// Weight β of the zero-training default in an ensemble with the trained model (score
    /// `(1−β)·s_trained + β·s_zero_shot`); 0 (absent in older files): the trained model alone.
    #[serde(default)]
    pub zero_shot_weight: f32,
    /// The pretrained encoder of the zero-training part, a directory relative to the
    /// checkpoint, when the description encoder was trained (`rmx train
    /// --train-descriptions`); absent: the description encoder is the pretrained one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot_encoder: Option<PathBuf>,
    /// How the checkpoint was trained (recipe, data, losses); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
}

impl CheckpointSettings {
    /// `Some(settings)` when `dir` is a trained checkpoint, `None` for a plain encoder.
    pub fn load(dir: &Path) -> Result<Option<CheckpointSettings>> {
        let path = dir.join(SETTINGS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let settings: CheckpointSettings = serde_json::from_str(&text).map_err(|e| Error::model(&path, format!("invalid settings: {e}")))?;
        if settings.format > SETTINGS_FORMAT {
            return Err(Error::model(&path, format!("format {} is newer than this rmx understands ({SETTINGS_FORMAT})", settings.format)));
        }
        if !(0.0..=0.5).contains(&settings.alpha) {
            return Err(Error::model(&path, format!("alpha {} is outside [0, 0.5]", settings.alpha)));
        }
        super::rematch::check_zero_shot_weight(settings.zero_shot_weight).map_err(|reason| Error::model(&path, reason))?;
        Ok(Some(settings))
    }
}

/// A linear layer's parameters on the device, PyTorch layout.
pub struct Linear<B: Backend> {
    /// `[out × in]`
    pub weight: B::Param,
    /// `[out]`
    pub bias: B::Param,
}

/// Input-side heads, on the device.
pub struct Heads<B: Backend> {
    /// Context projection φ: weight `[d × 2d]`, bias `[d]`.
    pub context: Linear<B>,
    /// Distillation query `q: [d]`.
    pub distill_query: B::Param,
}

impl<B: Backend> Heads<B> {
    /// Reads the heads on the host (mapped) and uploads them.
    pub fn load(path: &Path, d: usize) -> Result<Heads<B>> {
        let w = WeightFile::open(path)?;
        let get = |name: &str, shape: &[usize]| w.get(name, shape).map(|t| B::upload(&t));
        Ok(Heads {
            context: Linear { weight: get("context.weight", &[d, 2 * d])?, bias: get("context.bias", &[d])? },
            distill_query: get("distill.query", &[d])?,
        })
    }
}
