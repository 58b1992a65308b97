//! From labelled sentences to a [`TrainingSet`]: keep the sentences of the training
//! relations (every relation of the data that is not unseen), mark and tokenize them, and
//! number the training relations.
use super::trainer::TrainingSet;
use crate::data::descriptions::Relation;
use crate::data::fewrel::Example;
use crate::error::{Error, Result};
use crate::text::tokenizer::TextTokenizer;

pub struct Prepared {
    pub set: TrainingSet,
    /// The training relations, in label order (sorted by id).
    pub relations: Vec<Relation>,
    /// One `place: reason` line per sentence that could not be used.
    pub rejected: Vec<String>,
}

/// `unseen`: relations held out (never trained on). Every training relation needs a
/// description. Sentences longer than `max_tokens` (with markers) are rejected.
pub fn prepare_training(examples: &[Example], descriptions: &[Relation], unseen: &[String], tokenizer: &TextTokenizer, max_tokens: usize) -> Result<Prepared> {
    let mut ids: Vec<&str> = examples.iter().map(|e| e.relation.as_str()).filter(|r| !unseen.iter().any(|u| u == r)).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(Error::InvalidData("no training sentences: every relation of the data is unseen".into()));
    }
    let missing: Vec<&str> = ids.iter().copied().filter(|id| !descriptions.iter().any(|r| r.id == *id)).collect();
    if !missing.is_empty() {
        return Err(Error::InvalidData(format!("training relations without a description: {}", missing.join(", "))));
    }
    let relations: Vec<Relation> = ids.iter().map(|id| descriptions.iter().find(|r| r.id == *id).expect("checked above").clone()).collect();
    let mut set = TrainingSet { sentences: Vec::new(), labels: Vec::new() };
    let mut rejected = Vec::new();
    for (i, e) in examples.iter().enumerate() {
        let Some(label) = ids.iter().position(|id| *id == e.relation) else { continue };
        match e.instance.mark(tokenizer, max_tokens) {
            Ok(marked) => {
                set.sentences.push(marked);
                set.labels.push(label as u32);
            }
            Err(err) => rejected.push(format!("sentence {i} ({}): {err}", e.relation)),
        }
    }
    Ok(Prepared { set, relations, rejected })
}
