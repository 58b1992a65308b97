//! Relation descriptions: rmx's `descriptions.jsonl` and RE-Matching's description files.
//!
//! descriptions.jsonl, one relation per line (unknown fields are ignored):
//! `{"id":"P26","name":"spouse","description":"...","head":["person"],"tail":["person","spouse"]}`
//! `name` defaults to `id`; `head`/`tail` keyword lists are optional (see `Relation`).
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;

/// One relation as the description side needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Entity-type keywords; empty when the source gave none.
    pub head: Vec<String>,
    pub tail: Vec<String>,
}

#[derive(Deserialize)]
struct JsonlRelation {
    id: String,
    name: Option<String>,
    description: String,
    #[serde(default)]
    head: Option<Vec<String>>,
    #[serde(default)]
    tail: Option<Vec<String>>,
}

/// RE-Matching's format: a JSON list of `{"relation", "description": [tokens], "h", "t"}`.
#[derive(Deserialize)]
struct RematchingRelation {
    relation: String,
    description: Vec<String>,
    #[serde(default)]
    h: Vec<String>,
    #[serde(default)]
    t: Vec<String>,
}

/// A parsed file: the good relations, and `file:line: reason` for each rejected line.
#[derive(Debug, Default)]
pub struct Parsed {
    pub relations: Vec<Relation>,
    pub rejected: Vec<String>,
}

/// Reads descriptions in either format: a file whose first non-blank character is `[` is
/// RE-Matching's JSON list, anything else is JSON Lines. `name` labels messages
/// (`<stdin>` or the path).
pub fn parse_descriptions(text: &str, name: &str) -> Result<Parsed> {
    let parsed = if text.trim_start().starts_with('[') { parse_rematching(text, name)? } else { parse_jsonl(text, name) };
    if parsed.relations.is_empty() && parsed.rejected.is_empty() {
        return Err(Error::Input(format!("{name}: no relations (the file is empty)")));
    }
    Ok(parsed)
}

pub fn read_descriptions(path: &Path) -> Result<Parsed> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_descriptions(&text, &path.display().to_string())
}

fn parse_jsonl(text: &str, name: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str::<JsonlRelation>(line)
            .map_err(|e| format!("invalid relation: {e}"))
            .and_then(|r| {
                let relation = Relation {
                    name: r.name.unwrap_or_else(|| r.id.clone()),
                    id: r.id,
                    description: r.description,
                    head: clean_keywords(r.head.unwrap_or_default()),
                    tail: clean_keywords(r.tail.unwrap_or_default()),
                };
                validate(&relation, &mut seen)?;
                Ok(relation)
            });
        match result {
            Ok(r) => out.relations.push(r),
            Err(reason) => out.rejected.push(format!("{name}:{}: {reason}", i + 1)),
        }
    }
    out
}

fn parse_rematching(text: &str, name: &str) -> Result<Parsed> {
    let list: Vec<RematchingRelation> =
        serde_json::from_str(text).map_err(|e| Error::Input(format!("{name}:{}: invalid RE-Matching description file: {e}", e.line())))?;
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (i, r) in list.into_iter().enumerate() {
        let relation = Relation {
            name: r.relation.clone(),
            id: r.relation,
            description: r.description.join(" "),
            head: clean_keywords(r.h),
            tail: clean_keywords(r.t),
        };
        match validate(&relation, &mut seen) {
            Ok(()) => out.relations.push(relation),
            Err(reason) => out.rejected.push(format!("{name}: entry {}: {reason}", i + 1)),
        }
    }
    Ok(out)
}

fn clean_keywords(words: Vec<String>) -> Vec<String> {
    words.into_iter().map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect()
}

fn validate(r: &Relation, seen: &mut HashSet<String>) -> std::result::Result<(), String> {
    if r.id.trim().is_empty() {
        return Err("empty relation id".into());
    }
    if r.description.trim().is_empty() {
        return Err(format!("relation {}: empty description", r.id));
    }
    if !seen.insert(r.id.clone()) {
        return Err(format!("duplicate relation id {:?}", r.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_with_defaults_errors_and_duplicates() {
        let text = "{\"id\":\"P26\",\"name\":\"spouse\",\"description\":\"married to\",\"head\":[\"person\"],\"tail\":[\" wife \",\"\"],\"x\":1}\n\
                    \n\
                    {\"id\":\"P1\",\"description\":\"d\"}\n\
                    not json\n\
                    {\"id\":\"P26\",\"description\":\"again\"}\n\
                    {\"id\":\"P2\"}\n";
        let p = parse_descriptions(text, "f.jsonl").unwrap();
        assert_eq!(p.relations.len(), 2);
        assert_eq!(p.relations[0].tail, ["wife"]);
        assert_eq!(p.relations[1].name, "P1");
        assert!(p.relations[1].head.is_empty());
        assert_eq!(p.rejected.len(), 3);
        assert!(p.rejected[0].starts_with("f.jsonl:4: invalid relation"));
        assert!(p.rejected[1].starts_with("f.jsonl:5: duplicate relation id \"P26\""));
        assert!(p.rejected[2].starts_with("f.jsonl:6: invalid relation: missing field `description`"));
    }

    #[test]
    fn rematching_format_and_empty_file() {
        let text = r#"[{"relation":"P6","description":["head","of","government"],"h":["town"],"t":["minister"],"head_pos":[0]}]"#;
        let p = parse_descriptions(text, "r.json").unwrap();
        assert_eq!(p.relations[0].description, "head of government");
        assert_eq!(p.relations[0].head, ["town"]);
        assert!(parse_descriptions("  \n", "e.jsonl").is_err());
    }
}
