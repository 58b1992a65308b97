//! Relation descriptions: rmx's `descriptions.jsonl`, RE-Matching's description files
//! (with keywords, or `{"P26": "description", …}`), and FewRel's `pid2name.json`
//! (`{"P26": ["spouse", "the subject has the object as their spouse …"], …}`), and
//! Wikidata's property list as its query service exports it (`[{"property":
//! "http://www.wikidata.org/entity/P26", "propertyLabel": "spouse", "propertyDescription":
//! "…"}, …]`; a property without a description is described by its label). The last three
//! have no entity-type keywords.
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

/// Wikidata's export: the id is the last segment of the entity URL.
#[derive(Deserialize)]
struct WikidataProperty {
    property: String,
    #[serde(rename = "propertyLabel")]
    label: Option<String>,
    #[serde(rename = "propertyDescription")]
    description: Option<String>,
}

/// Reads descriptions in any of the formats: a file whose first non-blank character is `[`
/// is Wikidata's export when its first entry has `"property"`, else RE-Matching's JSON list, one JSON object mapping ids to `[name, description]` is
/// pid2name (mapping ids to description strings: RE-Matching's plain description file),
/// anything else is JSON Lines. `name` labels messages (`<stdin>` or the path).
pub fn parse_descriptions(text: &str, name: &str) -> Result<Parsed> {
    let parsed = if text.trim_start().starts_with('[') {
        if is_wikidata(text) {
            parse_wikidata(text, name)?
        } else {
            parse_rematching(text, name)?
        }
    } else if let Ok(map) = serde_json::from_str::<std::collections::BTreeMap<String, (String, String)>>(text) {
        parse_pid2name(map, name)
    } else if let Some(map) = serde_json::from_str::<std::collections::BTreeMap<String, String>>(text).ok().filter(|m| !m.contains_key("id")) {
        // (a one-line JSON Lines file also parses as a map of strings: it has "id")
        parse_pid2name(map.into_iter().map(|(id, d)| (id.clone(), (id, d))).collect(), name)
    } else {
        parse_jsonl(text, name)
    };
    if parsed.relations.is_empty() && parsed.rejected.is_empty() {
        return Err(Error::InvalidData(format!("{name}: no relations (the file is empty)")));
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
        let result = serde_json::from_str::<JsonlRelation>(line).map_err(|e| format!("invalid relation: {e}")).and_then(|r| {
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
        serde_json::from_str(text).map_err(|e| Error::InvalidData(format!("{name}:{}: invalid RE-Matching description file: {e}", e.line())))?;
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (i, r) in list.into_iter().enumerate() {
        let relation =
            Relation { name: r.relation.clone(), id: r.relation, description: r.description.join(" "), head: clean_keywords(r.h), tail: clean_keywords(r.t) };
        match validate(&relation, &mut seen) {
            Ok(()) => out.relations.push(relation),
            Err(reason) => out.rejected.push(format!("{name}: entry {}: {reason}", i + 1)),
        }
    }
    Ok(out)
}

/// Whether a JSON list's first entry has a `"property"` key (Wikidata's export).
fn is_wikidata(text: &str) -> bool {
    let mut stream = serde_json::Deserializer::from_str(text.trim_start().trim_start_matches('[')).into_iter::<serde_json::Value>();
    matches!(stream.next(), Some(Ok(serde_json::Value::Object(first))) if first.contains_key("property"))
}

fn parse_wikidata(text: &str, name: &str) -> Result<Parsed> {
    let list: Vec<WikidataProperty> =
        serde_json::from_str(text).map_err(|e| Error::Input(format!("{name}:{}: invalid Wikidata property list: {e}", e.line())))?;
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (i, p) in list.into_iter().enumerate() {
        let id = p.property.rsplit('/').next().unwrap_or_default().to_string();
        let label = p.label.map(|l| l.trim().to_string()).filter(|l| !l.is_empty());
        let description = p.description.map(|d| d.trim().to_string()).filter(|d| !d.is_empty()).or_else(|| label.clone()).unwrap_or_default();
        let relation = Relation { name: label.unwrap_or_else(|| id.clone()), id, description, head: Vec::new(), tail: Vec::new() };
        match validate(&relation, &mut seen) {
            Ok(()) => out.relations.push(relation),
            Err(reason) => out.rejected.push(format!("{name}: entry {}: {reason}", i + 1)),
        }
    }
    Ok(out)
}

fn parse_pid2name(map: std::collections::BTreeMap<String, (String, String)>, name: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut seen = HashSet::new();
    for (id, (label, description)) in map {
        let relation = Relation { id, name: label, description, head: Vec::new(), tail: Vec::new() };
        match validate(&relation, &mut seen) {
            Ok(()) => out.relations.push(relation),
            Err(reason) => out.rejected.push(format!("{name}: {}: {reason}", relation.id)),
        }
    }
    out
}

/// Reads several description files into one list: a relation already described by an
/// earlier file keeps that description (later duplicates are skipped silently).
pub fn read_description_files(paths: &[impl AsRef<Path>]) -> Result<Parsed> {
    let mut all = Parsed::default();
    for path in paths {
        let parsed = read_descriptions(path.as_ref())?;
        all.rejected.extend(parsed.rejected);
        for r in parsed.relations {
            if !all.relations.iter().any(|known| known.id == r.id) {
                all.relations.push(r);
            }
        }
    }
    Ok(all)
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
    fn pid2name_format_and_merged_files() {
        let text = r#"{"P26": ["spouse", "the subject has the object as their spouse"], "P9": ["bad", "  "]}"#;
        let p = parse_descriptions(text, "pid2name.json").unwrap();
        assert_eq!(p.relations.len(), 1);
        assert_eq!((p.relations[0].id.as_str(), p.relations[0].name.as_str()), ("P26", "spouse"));
        assert!(p.relations[0].head.is_empty() && p.relations[0].tail.is_empty());
        assert!(p.rejected[0].contains("P9: relation P9: empty description"), "{:?}", p.rejected);
        let plain = parse_descriptions(r#"{"P6": "head of government is head of the executive"}"#, "plain.json").unwrap();
        assert_eq!((plain.relations[0].name.as_str(), plain.relations[0].description.as_str()), ("P6", "head of government is head of the executive"));
        // A one-line JSON Lines file is still JSON Lines.
        let one = parse_descriptions(r#"{"id":"P1","description":"d"}"#, "one.jsonl").unwrap();
        assert_eq!(one.relations[0].id, "P1");

        let dir = crate::testutil::TempDir::new("desc");
        let (a, b) = (dir.join("a.jsonl"), dir.join("b.json"));
        std::fs::write(&a, "{\"id\":\"P26\",\"description\":\"first\",\"head\":[\"person\"]}\n").unwrap();
        std::fs::write(&b, text).unwrap();
        let merged = read_description_files(&[&a, &b]).unwrap();
        assert_eq!(merged.relations.len(), 1, "P26 once; P9 rejected");
        assert_eq!(merged.relations[0].description, "first", "the earlier file wins");
        assert_eq!(merged.rejected.len(), 1);
    }

    #[test]
    fn wikidata_export() {
        let text = r#"[{"property":"http://www.wikidata.org/entity/P19","propertyLabel":"place of birth","propertyDescription":"birth location"},
            {"property":"http://www.wikidata.org/entity/P10","propertyLabel":"video"},
            {"property":"http://www.wikidata.org/entity/P19","propertyLabel":"again","propertyDescription":"x"},
            {"property":"http://www.wikidata.org/entity/P11"}]"#;
        let p = parse_descriptions(text, "wd.json").unwrap();
        let got: Vec<_> = p.relations.iter().map(|r| (r.id.as_str(), r.name.as_str(), r.description.as_str())).collect();
        assert_eq!(got, [("P19", "place of birth", "birth location"), ("P10", "video", "video")]);
        assert!(p.relations.iter().all(|r| r.head.is_empty() && r.tail.is_empty()));
        assert_eq!(p.rejected, ["wd.json: entry 3: duplicate relation id \"P19\"", "wd.json: entry 4: relation P11: empty description"]);
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
