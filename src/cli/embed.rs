//! `rmx embed`: sentence embeddings of JSON Lines `{"text": ...}` from stdin.
use super::jsonl::{write_line, Batches};
use super::Outcome;
use clap::Args;
use rmx::backend::{Backend, OnDevice};
use rmx::model::sentence::SentenceEncoder;
use rmx::{Error, Result};
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Embed sentences with the plain sentence encoder (JSON Lines in and out).
///
/// Reads JSON Lines `{"text": "..."}` on stdin, writes
/// `{"line": N, "embedding": [...]}` (unit length, mean-pooled, as sentence-transformers) on
/// stdout, one per input line, in order. Texts longer than the model's limit (256 tokens for
/// the default model) are truncated, with a note on stderr. Bad lines are reported as
/// `<stdin>:N: reason` and skipped.
#[derive(Args)]
#[command(after_help = "Example:\n  echo '{\"text\":\"Marie Curie was born in Warsaw.\"}' | rmx embed")]
pub struct EmbedArgs {
    /// Model directory (config.json, tokenizer.json, model.safetensors); default: the fetched default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Sentences encoded together (more uses the cores better; memory grows with it).
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
    #[command(flatten)]
    precision: super::EncoderPrecision,
    #[command(flatten)]
    pub(super) device: super::Device,
}

/// One output line; f32 values print in their shortest exact form.
#[derive(Serialize)]
struct Embedded<'a> {
    line: usize,
    embedding: &'a [f32],
}

/// Run on the device `--device` names (`cli::run`).
impl OnDevice for EmbedArgs {
    type Output = Outcome;
    fn run<B: Backend>(self) -> Result<Outcome> {
        embed::<B>(self)
    }
}

fn embed<B: Backend>(args: EmbedArgs) -> Result<Outcome> {
    let mut encoder = SentenceEncoder::<B>::load(&super::model_dir(args.model))?;
    encoder.bert.set_precision(args.precision.value)?;
    let stdin = std::io::stdin().lock();
    let mut input = Batches::new(stdin, "<stdin>", args.batch_size);
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut rejected = 0;
    loop {
        let lines = input.next_batch().map_err(|e| Error::io("<stdin>", e))?;
        if lines.is_empty() {
            break;
        }
        let mut numbers = Vec::with_capacity(lines.len());
        let mut ids = Vec::with_capacity(lines.len());
        for line in &lines {
            match parse_text(&line.text).and_then(|text| encoder.tokenize(&text)) {
                Ok(tokens) => {
                    if let Some(n) = tokens.truncated_from {
                        eprintln!("{}:{}: note: {n} tokens truncated to {}", input.name, line.number, encoder.max_tokens);
                    }
                    numbers.push(line.number);
                    ids.push(tokens.ids);
                }
                Err(e) => {
                    eprintln!("{}:{}: {e}", input.name, line.number);
                    rejected += 1;
                }
            }
        }
        for (&line, embedding) in numbers.iter().zip(encoder.embed_ids(&ids)?) {
            write_line(&mut out, &Embedded { line, embedding: &embedding }).map_err(|e| Error::io("<stdout>", e))?;
        }
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(Outcome { rejected })
}

fn parse_text(line: &str) -> Result<String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::Input(format!("invalid JSON: {e}")))?;
    match value.get("text") {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(Error::Input("\"text\" must be a string".into())),
        None if value.is_object() => Err(Error::Input("missing field \"text\"".into())),
        None => Err(Error::Input("expected a JSON object like {\"text\": \"...\"}".into())),
    }
}
