//! FewRel data: `{"P26": [{"tokens": [...], "h": [name, id, [[i, …]]], "t": …}, …], …}`,
//! and RE-Matching's `rel2id` split files `{"train": {PID: i}, "eval": {…}, "test": {…}}`.
use super::instance::instance_from_value;
use crate::error::{Error, Result};
use crate::text::markers::WordInstance;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One labelled sentence.
#[derive(Debug, Clone)]
pub struct Example {
    pub relation: String,
    pub instance: WordInstance,
}

/// Reads a FewRel file. Relations come in the file's order; a bad instance is a fatal error
/// naming the relation and position (the data sets are curated: a bad one means a wrong file).
pub fn read_fewrel(path: &Path) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: invalid JSON: {e}", path.display())))?;
    let map = value.as_object().ok_or_else(|| Error::Input(format!("{}: expected {{relation: [instances]}}", path.display())))?;
    let mut examples = Vec::new();
    for (relation, instances) in map {
        let list = instances.as_array().ok_or_else(|| Error::Input(format!("{}: {relation}: expected a list of instances", path.display())))?;
        for (i, v) in list.iter().enumerate() {
            let instance = instance_from_value(v).map_err(|e| Error::Input(format!("{}: {relation}[{i}]: {e}", path.display())))?;
            examples.push(Example { relation: relation.clone(), instance });
        }
    }
    Ok(examples)
}

/// The relations of one part (`"train"`, `"eval"` or `"test"`) of a rel2id split file, in
/// their index order.
pub fn read_split(path: &Path, part: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: invalid JSON: {e}", path.display())))?;
    let map: BTreeMap<String, u64> = value
        .get(part)
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .ok_or_else(|| Error::Input(format!("{}: no \"{part}\" map of relation → index", path.display())))?;
    let mut relations: Vec<(u64, String)> = map.into_iter().map(|(r, i)| (i, r)).collect();
    relations.sort();
    Ok(relations.into_iter().map(|(_, r)| r).collect())
}
