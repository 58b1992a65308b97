//! A model soup: one checkpoint whose weights are the element-wise mean of several runs of
//! the same training that differ only in their seed (`rmx train --seed 42,43`).
//!
//! Runs fine-tuned from the same start with a small learning rate stay in one basin, so
//! their mean is a model of its own, usually better and steadier than each run (measured in
//! docs/large-label-sets.md), at no cost per query: it has the shape of one checkpoint.
use super::checkpoint::{copy_tree, write_checkpoint_dir, write_safetensors};
use crate::error::{Error, Result};
use crate::model::heads::SETTINGS_FILE;
use crate::model::weights::map_read_only;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Writes to `out` the checkpoint whose every f32 tensor (in every `.safetensors` file of
/// the tree) is the mean of that tensor in `runs`; the other files come from the first run,
/// and `note` is recorded in its `rmx.json` as `training.averaged`. The runs must hold the
/// same files and tensors and the same settings apart from their seed.
pub fn average_checkpoints(runs: &[PathBuf], out: &Path, note: serde_json::Value) -> Result<()> {
    let first = runs.first().ok_or_else(|| Error::InvalidArgument("no checkpoints to average".into()))?;
    let settings = runs.iter().map(|run| read_settings(run)).collect::<Result<Vec<_>>>()?;
    if let Some(i) = (1..runs.len()).find(|&i| the_training(&settings[i]) != the_training(&settings[0])) {
        return Err(Error::InvalidArgument(format!(
            "{} and {}: the checkpoints' settings differ; only runs of one training can be averaged",
            first.display(),
            runs[i].display()
        )));
    }
    let mut files = Vec::new();
    find_weight_files(first, Path::new(""), &mut files)?;
    write_checkpoint_dir(out, |tmp| {
        copy_tree(first, tmp, &HashSet::new())?;
        for file in &files {
            average_file(&runs.iter().map(|run| run.join(file)).collect::<Vec<_>>(), &tmp.join(file))?;
        }
        let mut merged = settings[0].clone();
        merged["training"]["averaged"] = note;
        let text = serde_json::to_string_pretty(&merged).expect("settings serialise");
        fs::write(tmp.join(SETTINGS_FILE), text + "\n").map_err(|e| Error::io(tmp.join(SETTINGS_FILE), e))
    })
}

fn read_settings(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join(SETTINGS_FILE);
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::model(&path, format!("invalid checkpoint settings: {e}")))
}

/// What makes two runs the same training: their settings and training record without the
/// seed and what the run measured (losses, speed, memory, validation scores).
fn the_training(settings: &serde_json::Value) -> serde_json::Value {
    let mut s = settings.clone();
    if let Some(training) = s.get_mut("training").and_then(|t| t.as_object_mut()) {
        for measured in ["mean_loss_per_epoch", "sentences_per_second", "peak_activation_bytes", "validation"] {
            training.remove(measured);
        }
        if let Some(run) = training.get_mut("settings").and_then(|t| t.as_object_mut()) {
            run.remove("seed");
        }
    }
    s
}

/// The `.safetensors` files under `dir`, as paths relative to it.
fn find_weight_files(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let mut entries = fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(&dir, e))?;
    entries.sort();
    for path in entries {
        let name = rel.join(path.file_name().expect("a directory entry has a name"));
        if path.is_dir() {
            find_weight_files(root, &name, out)?;
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            out.push(name);
        }
    }
    Ok(())
}

/// Writes to `out` the tensor-by-tensor mean of the safetensors files `inputs`: f32 tensors
/// averaged (summed in f64, so runs that agree give back their exact values), others (never
/// trained, e.g. position ids) copied, and required to be equal.
fn average_file(inputs: &[PathBuf], out: &Path) -> Result<()> {
    let maps = inputs.iter().map(|path| map_read_only(path)).collect::<Result<Vec<_>>>()?;
    let files = maps
        .iter()
        .zip(inputs)
        .map(|(map, path)| SafeTensors::deserialize(map).map_err(|e| Error::model(path, format!("invalid safetensors: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let mut names = files[0].names();
    names.sort();
    // (name, dtype, shape, little-endian bytes) of each output tensor.
    let mut out_tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    for name in names {
        let views = files
            .iter()
            .zip(inputs)
            .map(|(file, path)| file.tensor(name).map_err(|_| Error::model(path, format!("has no tensor {name}; only runs of one training can be averaged"))))
            .collect::<Result<Vec<_>>>()?;
        let first = &views[0];
        if let Some((_, path)) = views.iter().zip(inputs).find(|(v, _)| v.dtype() != first.dtype() || v.shape() != first.shape()) {
            return Err(Error::model(path, format!("tensor {name} differs in type or shape from the first run's; only runs of one training can be averaged")));
        }
        let bytes = if first.dtype() == Dtype::F32 {
            let mut sum = vec![0f64; first.data().len() / 4];
            for view in &views {
                sum.iter_mut().zip(view.data().chunks_exact(4)).for_each(|(s, b)| *s += f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64);
            }
            sum.iter().flat_map(|s| ((s / views.len() as f64) as f32).to_le_bytes()).collect()
        } else if let Some((_, path)) = views.iter().zip(inputs).find(|(v, _)| v.data() != first.data()) {
            // Not trained (e.g. position ids): the runs carry the source's values unchanged.
            return Err(Error::model(path, format!("tensor {name} ({:?}) differs from the first run's and cannot be averaged", first.dtype())));
        } else {
            first.data().to_vec()
        };
        out_tensors.push((name.to_string(), first.dtype(), first.shape().to_vec(), bytes));
    }
    if let Some((file, path)) = files.iter().zip(inputs).find(|(f, _)| f.len() != out_tensors.len()) {
        return Err(Error::model(
            path,
            format!("holds {} tensors, the first run {}; only runs of one training can be averaged", file.len(), out_tensors.len()),
        ));
    }
    let views = out_tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| (name.clone(), TensorView::new(*dtype, shape.clone(), bytes).expect("shape matches the data")))
        .collect();
    write_safetensors(out, views)
}
