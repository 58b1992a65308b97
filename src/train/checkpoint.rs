//! Writing a trained checkpoint, atomically: everything goes into a temporary sibling
//! directory that is renamed into place at the end, so a crash never leaves a half-written
//! checkpoint under the output name.
//!
//! Layout (read back by `model::rematch::Matcher::load`):
//! - the fine-tuned input encoder in Hugging Face layout: `model.safetensors` (the source
//!   model's tensor names, so PyTorch's `BertModel.from_pretrained` loads it; tensors rmx
//!   does not train, e.g. the pooler, are carried over unchanged), plus every other file of
//!   the source model directory (config, tokenizer, sentence-transformers files);
//! - `heads.safetensors`: `context.*`, `distill.query`, `adversary.*`;
//! - `description_encoder/`: the description-side encoder: a copy of the frozen one, or,
//!   when the description side was trained (`DescriptionTower`), its trained weights in the
//!   same layout, with the frozen one copied to `zero_shot_encoder/` for the zero-training
//!   part;
//! - `rmx.json`: format, α, the description encoder's directory, and the training record.
use super::trainer::Trainer;
use crate::backend::{Backend, Tensor};
use crate::error::{Error, Result};
use crate::model::heads::{CheckpointSettings, HEADS_FILE, SETTINGS_FILE, SETTINGS_FORMAT};
use crate::model::params::ParamSet;
use crate::model::weights::map_read_only;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

pub const DESCRIPTION_DIR: &str = "description_encoder";
/// The frozen encoder of the zero-training part, when the description side was trained.
pub const ZERO_SHOT_DIR: &str = "zero_shot_encoder";
const WEIGHTS_FILE: &str = "model.safetensors";

/// Writes the checkpoint of `trainer` to `out`. `source`: the directory of the starting
/// encoder (its other files are copied); `description_encoder`: the frozen description-side
/// encoder's directory. An existing `out` is replaced only if it is an rmx checkpoint.
pub fn save_checkpoint<B: Backend>(out: &Path, trainer: &Trainer<B>, source: &Path, description_encoder: &Path, training: serde_json::Value) -> Result<()> {
    write_checkpoint_dir(out, |tmp| write_into(tmp, trainer, source, description_encoder, training))
}

/// Runs `write` on a temporary sibling of `out`, then moves it to `out`; an existing `out`
/// is replaced only if it is an rmx checkpoint (or empty), and a failed write leaves no
/// trace.
pub(crate) fn write_checkpoint_dir(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    check_output(out)?;
    let name = out.file_name().ok_or_else(|| Error::InvalidArgument(format!("{}: not a directory name", out.display())))?.to_string_lossy().into_owned();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write(&tmp).and_then(|()| replace_dir(&tmp, out));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Refuses an output directory that exists and is neither a checkpoint nor empty: writing
/// the checkpoint would replace it.
pub fn check_output(out: &Path) -> Result<()> {
    if out.exists() && !(out.join(SETTINGS_FILE).is_file() || is_empty_dir(out)) {
        return Err(Error::InvalidArgument(format!("{}: exists and is not an rmx checkpoint; refusing to overwrite it", out.display())));
    }
    Ok(())
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(false)
}

fn write_into<B: Backend>(dir: &Path, trainer: &Trainer<B>, source: &Path, description_encoder: &Path, training: serde_json::Value) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let skip: HashSet<&str> = [WEIGHTS_FILE, SETTINGS_FILE, HEADS_FILE, DESCRIPTION_DIR, ZERO_SHOT_DIR].into();
    copy_tree(source, dir, &skip)?;
    let heads: HashSet<usize> = HashSet::from_iter(trainer.heads.ids());
    write_encoder(&dir.join(WEIGHTS_FILE), &trainer.bert.params, &heads, &source.join(WEIGHTS_FILE))?;

    let p = &trainer.bert.params;
    let heads = trainer.heads.ids().into_iter().map(|id| Ok((p.name(id).to_string(), p.host(id)?))).collect::<Result<Vec<(String, Tensor)>>>()?;
    write_safetensors(&dir.join(HEADS_FILE), heads.iter().map(|(name, t)| (name.clone(), f32_view(t))).collect())?;

    // A trained description side: its weights, and the frozen encoder beside them for the
    // zero-training part.
    let zero_shot_encoder = match &trainer.description_tower {
        Some(tower) => {
            copy_tree(description_encoder, &dir.join(DESCRIPTION_DIR), &[WEIGHTS_FILE].into())?;
            write_encoder(&dir.join(DESCRIPTION_DIR).join(WEIGHTS_FILE), &tower.bert.params, &HashSet::new(), &description_encoder.join(WEIGHTS_FILE))?;
            copy_tree(description_encoder, &dir.join(ZERO_SHOT_DIR), &HashSet::new())?;
            Some(PathBuf::from(ZERO_SHOT_DIR))
        }
        None => {
            copy_tree(description_encoder, &dir.join(DESCRIPTION_DIR), &HashSet::new())?;
            None
        }
    };
    let format = match (&zero_shot_encoder, trainer.settings.zero_shot_weight > 0.0) {
        (Some(_), _) => SETTINGS_FORMAT,
        (None, true) => 2,
        (None, false) => 1,
    };
    let settings = CheckpointSettings {
        format,
        alpha: trainer.settings.objective.alpha,
        description_encoder: PathBuf::from(DESCRIPTION_DIR),
        description_style: trainer.settings.description_style,
        zero_shot_weight: trainer.settings.zero_shot_weight,
        zero_shot_encoder,
        training: Some(training),
    };
    let text = serde_json::to_string_pretty(&settings).expect("settings serialise");
    fs::write(dir.join(SETTINGS_FILE), text + "\n").map_err(|e| Error::io(dir.join(SETTINGS_FILE), e))
}

/// The encoder tensors of `p` (all but `skip`, brought to the host) under the source file's
/// naming (with or without `bert.`), plus the source's tensors that are not trained, unchanged.
fn write_encoder<B: Backend>(path: &Path, p: &ParamSet<B>, skip: &HashSet<usize>, source: &Path) -> Result<()> {
    let map = map_read_only(source)?;
    let st = SafeTensors::deserialize(&map).map_err(|e| Error::model(source, format!("invalid safetensors: {e}")))?;
    let prefix = if st.names().iter().any(|n| n.starts_with("bert.embeddings.")) { "bert." } else { "" };
    let host = (0..p.len()).filter(|id| !skip.contains(id)).map(|id| Ok((format!("{prefix}{}", p.name(id)), p.host(id)?))).collect::<Result<Vec<_>>>()?;
    let mut tensors: Vec<(String, TensorView)> = host.iter().map(|(name, t)| (name.clone(), f32_view(t))).collect();
    let trained: HashSet<String> = tensors.iter().map(|(n, _)| n.clone()).collect();
    for (name, view) in st.tensors() {
        let legacy = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias");
        if !trained.contains(&name) && !trained.contains(&legacy) {
            let view = TensorView::new(view.dtype(), view.shape().to_vec(), view.data()).expect("a valid view stays valid");
            tensors.push((name, view));
        }
    }
    write_safetensors(path, tensors)
}

fn f32_view(t: &Tensor) -> TensorView<'_> {
    // f32 → little-endian bytes: on a little-endian host (checked when models load) the
    // memory already is that.
    let bytes: &[u8] = bytemuck_f32(t.data());
    TensorView::new(Dtype::F32, t.shape().to_vec(), bytes).expect("shape matches the data")
}

fn bytemuck_f32(values: &[f32]) -> &[u8] {
    // SAFETY: any f32 slice is a valid, initialised byte slice of 4× the length, with the
    // same lifetime; u8 has alignment 1.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values)) }
}

pub(crate) fn write_safetensors(path: &Path, tensors: Vec<(String, TensorView)>) -> Result<()> {
    safetensors::serialize_to_file(tensors, None, path).map_err(|e| Error::model(path, format!("cannot write safetensors: {e}")))
}

/// Copies the regular files and subdirectories of `from` into `to`, except top-level names
/// in `skip`.
pub(crate) fn copy_tree(from: &Path, to: &Path, skip: &HashSet<&str>) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        if skip.contains(name.to_string_lossy().as_ref()) || name.to_string_lossy().starts_with(".git") {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst, &HashSet::new())?;
        } else if src.is_file() {
            fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        }
    }
    Ok(())
}

/// Moves `tmp` to `out`, replacing an existing `out` (renamed aside first, removed after).
fn replace_dir(tmp: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        let old = tmp.with_extension("old");
        fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
        fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
        fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))
    } else {
        fs::rename(tmp, out).map_err(|e| Error::io(out, e))
    }
}
