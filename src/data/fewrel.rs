//! Labelled sentences: FewRel's `{"P26": [{"tokens": [...], "h": [name, id, [[i, …]]],
//! "t": …}, …], …}` and RE-Matching's processed data, a JSON list (or JSON Lines) of
//! `{"token": [...], "h": {"pos": [s, e]}, "t": {"pos": [s, e]}, "relation": "P26"}`; and
//! RE-Matching's `rel2id` split files `{"train": {PID: i}, "eval": {…}, "test": {…}}`.
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
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::InvalidData(format!("{}: invalid JSON: {e}", path.display())))?;
    let map = value.as_object().ok_or_else(|| Error::InvalidData(format!("{}: expected {{relation: [instances]}}", path.display())))?;
    let mut examples = Vec::new();
    for (relation, instances) in map {
        let list = instances.as_array().ok_or_else(|| Error::InvalidData(format!("{}: {relation}: expected a list of instances", path.display())))?;
        for (i, v) in list.iter().enumerate() {
            let instance = instance_from_value(v).map_err(|e| Error::InvalidData(format!("{}: {relation}[{i}]: {e}", path.display())))?;
            examples.push(Example { relation: relation.clone(), instance });
        }
    }
    Ok(examples)
}

/// The examples at positions `range` within each relation (in file order), e.g. `0..50`
/// for the first 50 sentences of every relation: a sample, or a split of the same
/// relations' sentences into calibration and test parts.
pub fn per_relation(examples: &[Example], range: &std::ops::Range<usize>) -> Vec<Example> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    examples
        .iter()
        .filter(|e| {
            let n = seen.entry(&e.relation).or_insert(0);
            *n += 1;
            range.contains(&(*n - 1))
        })
        .cloned()
        .collect()
}

/// Labelled sentences read leniently (for training): what was read, and one
/// `file:place: reason` line per rejected record.
pub struct Labelled {
    pub examples: Vec<Example>,
    pub rejected: Vec<String>,
}

/// Reads FewRel's format or RE-Matching's processed format (a JSON list, or JSON Lines with
/// one record per line), detected from the content. A bad record is rejected with its place
/// (`file:REL[i]`, `file:record i` or `file:line`) and the reason; reading goes on.
pub fn read_labelled(path: &Path) -> Result<Labelled> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let name = path.display();
    let mut out = Labelled { examples: Vec::new(), rejected: Vec::new() };
    let take = |place: String, relation: Option<&str>, value: &Value, out: &mut Labelled| {
        let relation = relation.or_else(|| value.get("relation").and_then(Value::as_str));
        match (relation, instance_from_value(value)) {
            (Some(r), Ok(instance)) => out.examples.push(Example { relation: r.to_string(), instance }),
            (None, _) => out.rejected.push(format!("{name}:{place}: missing \"relation\"")),
            (_, Err(e)) => out.rejected.push(format!("{name}:{place}: {e}")),
        }
    };
    match serde_json::from_str::<Value>(&text) {
        // (A one-line JSON Lines file parses as one object: a record has "relation".)
        Ok(Value::Object(map)) if !map.contains_key("relation") => {
            for (relation, instances) in &map {
                let list = instances.as_array().ok_or_else(|| Error::InvalidData(format!("{name}: {relation}: expected a list of instances")))?;
                for (i, v) in list.iter().enumerate() {
                    take(format!("{relation}[{i}]"), Some(relation), v, &mut out);
                }
            }
        }
        Ok(Value::Array(list)) => {
            for (i, v) in list.iter().enumerate() {
                take(format!("record {i}"), None, v, &mut out);
            }
        }
        Ok(v) if !v.is_object() => return Err(Error::InvalidData(format!("{name}: expected FewRel's {{relation: [instances]}} or a list of records"))),
        _ => {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match serde_json::from_str::<Value>(line) {
                    Ok(v) => take(format!("{}", i + 1), None, &v, &mut out),
                    Err(e) => out.rejected.push(format!("{name}:{}: invalid JSON: {e}", i + 1)),
                }
            }
        }
    }
    Ok(out)
}

/// The relations of one part (`"train"`, `"eval"` or `"test"`) of a rel2id split file, in
/// their index order.
pub fn read_split(path: &Path, part: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| Error::InvalidData(format!("{}: invalid JSON: {e}", path.display())))?;
    let map: BTreeMap<String, u64> = value
        .get(part)
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .ok_or_else(|| Error::InvalidData(format!("{}: no \"{part}\" map of relation → index", path.display())))?;
    let mut relations: Vec<(u64, String)> = map.into_iter().map(|(r, i)| (i, r)).collect();
    relations.sort();
    Ok(relations.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn every_format_reads_the_same_examples() {
        let dir = TempDir::new("labelled");
        let write = |name: &str, text: &str| dir.write(name, text);
        let fewrel = write("fewrel.json", r#"{"P26": [{"tokens": ["Ann", "wed", "Bob"], "h": ["ann", "Q1", [[0]]], "t": ["bob", "Q2", [[2]]]}]}"#);
        let list = write("list.json", r#"[{"token": ["Ann", "wed", "Bob"], "h": {"pos": [0, 1]}, "t": {"pos": [2, 3]}, "relation": "P26"}]"#);
        let lines =
            write("lines.jsonl", "{\"token\": [\"Ann\", \"wed\", \"Bob\"], \"h\": {\"pos\": [0, 1]}, \"t\": {\"pos\": [2, 3]}, \"relation\": \"P26\"}\n\n");
        let read: Vec<Labelled> = [&fewrel, &list, &lines].iter().map(|p| read_labelled(p).unwrap()).collect();
        for l in &read {
            assert!(l.rejected.is_empty(), "{:?}", l.rejected);
            assert_eq!(l.examples.len(), 1);
            assert_eq!(l.examples[0].relation, "P26");
            assert_eq!(l.examples[0].instance, read[0].examples[0].instance);
        }
    }

    #[test]
    fn bad_records_are_rejected_with_their_place() {
        let dir = TempDir::new("labelled");
        let write = |name: &str, text: &str| dir.write(name, text);
        let list = write(
            "bad.json",
            r#"[{"token": ["a", "b"], "h": {"pos": [0, 1]}, "t": {"pos": [1, 2]}}, {"token": ["a"], "h": {"pos": [0, 1]}, "t": {"pos": [0, 1]}, "relation": "P1"}, {"token": ["a", "b"], "h": {"pos": [0, 1]}, "t": {"pos": [1, 2]}, "relation": "P1"}]"#,
        );
        let l = read_labelled(&list).unwrap();
        assert_eq!(l.examples.len(), 1);
        assert_eq!(l.rejected.len(), 2);
        assert!(l.rejected[0].contains("record 0: missing \"relation\""), "{}", l.rejected[0]);
        assert!(l.rejected[1].contains("record 1:") && l.rejected[1].contains("overlap"), "{}", l.rejected[1]);
        let lines = write("bad.jsonl", "{\"token\": [\"a\", \"b\"], \"h\": {\"pos\": [0, 1]}, \"t\": {\"pos\": [1, 2]}, \"relation\": \"P1\"}\n{oops\n");
        let l = read_labelled(&lines).unwrap();
        assert_eq!((l.examples.len(), l.rejected.len()), (1, 1));
        assert!(l.rejected[0].contains(":2: invalid JSON"), "{}", l.rejected[0]);
    }
}
