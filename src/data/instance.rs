//! Query instances: one sentence with a marked head and tail entity, in any of the forms
//! users send (one JSON object per line):
//! - `{"text": "...", "head": "Marie Curie", "tail": "Pierre Curie"}` — each entity string
//!   must occur exactly once in the text;
//! - `{"text": "...", "head": [0, 11], "tail": [20, 32]}` — character spans `[start, end)`;
//! - `{"tokens": [...], "h": {"pos": [0, 2]}, "t": {"pos": [3, 5]}}` — token spans
//!   (`"token"` is accepted for `"tokens"`, as in RE-Matching's processed data);
//! - FewRel's own `{"tokens": [...], "h": [name, id, [[i, …], …]], "t": …}` (first mention).
use crate::error::{Error, Result};
use crate::text::markers::{char_span_to_bytes, find_unique, WordInstance};
use serde_json::Value;
use std::ops::Range;

/// Parses one JSON line into a word-level instance.
pub fn parse_instance(line: &str) -> Result<WordInstance> {
    let value: Value = serde_json::from_str(line).map_err(|e| Error::Input(format!("invalid JSON: {e}")))?;
    instance_from_value(&value)
}

pub fn instance_from_value(value: &Value) -> Result<WordInstance> {
    let obj = value.as_object().ok_or_else(|| Error::Input("expected a JSON object".into()))?;
    if let Some(text) = obj.get("text") {
        let text = text.as_str().ok_or_else(|| Error::Input("\"text\" must be a string".into()))?;
        let head = text_entity(text, obj.get("head"), "head")?;
        let tail = text_entity(text, obj.get("tail"), "tail")?;
        return WordInstance::from_text(text, head, tail);
    }
    if let Some(tokens) = obj.get("tokens").or_else(|| obj.get("token")) {
        let tokens: Vec<String> = serde_json::from_value(tokens.clone()).map_err(|_| Error::Input("\"tokens\" must be a list of strings".into()))?;
        let head = token_entity(obj.get("h"), "h")?;
        let tail = token_entity(obj.get("t"), "t")?;
        return WordInstance::from_words(tokens, head, tail);
    }
    Err(Error::Input("expected \"text\" with \"head\"/\"tail\", or \"tokens\" with \"h\"/\"t\"".into()))
}

fn text_entity(text: &str, value: Option<&Value>, name: &str) -> Result<Range<usize>> {
    match value {
        Some(Value::String(entity)) => find_unique(text, entity, name),
        Some(Value::Array(span)) => {
            let (start, end) = pair(span).ok_or_else(|| Error::Input(format!("\"{name}\" span must be [start, end] with integers")))?;
            char_span_to_bytes(text, start, end, name)
        }
        Some(_) => Err(Error::Input(format!("\"{name}\" must be the entity string or a [start, end] character span"))),
        None => Err(Error::Input(format!("missing field \"{name}\""))),
    }
}

fn token_entity(value: Option<&Value>, name: &str) -> Result<Range<usize>> {
    let bad = || Error::Input(format!("\"{name}\" must be {{\"pos\": [start, end]}} or FewRel's [name, id, [[indices]]]"));
    match value {
        Some(Value::Object(o)) => {
            let (start, end) = o.get("pos").and_then(Value::as_array).and_then(|p| pair(p)).ok_or_else(bad)?;
            Ok(start..end)
        }
        Some(Value::Array(fewrel)) => {
            let first: Vec<usize> = fewrel
                .get(2)
                .and_then(Value::as_array)
                .and_then(|mentions| mentions.first())
                .and_then(|m| serde_json::from_value(m.clone()).ok())
                .filter(|m: &Vec<usize>| !m.is_empty())
                .ok_or_else(bad)?;
            let (lo, hi) = (*first.iter().min().unwrap(), *first.iter().max().unwrap());
            if hi - lo + 1 != first.len() {
                return Err(Error::Input(format!("\"{name}\" first mention {first:?} is not a contiguous token span")));
            }
            Ok(lo..hi + 1)
        }
        Some(_) => Err(bad()),
        None => Err(Error::Input(format!("missing field \"{name}\""))),
    }
}

fn pair(span: &[Value]) -> Option<(usize, usize)> {
    match span {
        [a, b] => Some((a.as_u64()? as usize, b.as_u64()? as usize)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_the_same_words() {
        let by_string = parse_instance(r#"{"text":"Marie Curie married Pierre Curie.","head":"Marie Curie","tail":"Pierre Curie"}"#).unwrap();
        let by_span = parse_instance(r#"{"text":"Marie Curie married Pierre Curie.","head":[0,11],"tail":[20,32]}"#).unwrap();
        let by_tokens = parse_instance(r#"{"tokens":["Marie","Curie","married","Pierre","Curie","."],"h":{"pos":[0,2]},"t":{"pos":[3,5]}}"#).unwrap();
        let fewrel =
            parse_instance(r#"{"tokens":["Marie","Curie","married","Pierre","Curie","."],"h":["marie curie","Q7186",[[0,1]]],"t":["p","Q1",[[3,4],[9]]]}"#)
                .unwrap();
        assert_eq!(by_string, by_span);
        assert_eq!(by_string.head, by_tokens.head);
        assert_eq!(by_tokens, fewrel);
    }

    #[test]
    fn bad_records_say_why() {
        let err = |l: &str| parse_instance(l).unwrap_err().to_string();
        assert!(err("{").contains("invalid JSON"));
        assert!(err(r#"{"text":"a b a","head":"a","tail":"b"}"#).contains("occurs 2 times"));
        assert!(err(r#"{"text":"a b","head":"c","tail":"b"}"#).contains("does not occur"));
        assert!(err(r#"{"text":"a b","tail":"b"}"#).contains("missing field \"head\""));
        assert!(err(r#"{"text":"a b","head":[0,9],"tail":"b"}"#).contains("outside the text"));
        assert!(err(r#"{"tokens":["a","b"],"h":{"pos":[0,1]},"t":{"pos":[0,2]}}"#).contains("overlap"));
        assert!(err(r#"{"tokens":["a","b","c"],"h":["a","Q",[[0,2]]],"t":{"pos":[1,2]}}"#).contains("contiguous"));
        assert!(err("[1]").contains("JSON object"));
    }
}
