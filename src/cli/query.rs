//! `rmx query`: which relation holds between the two entities of a sentence.
use super::jsonl::{write_line, Batches, Line};
use super::Outcome;
use clap::Args;
use rmx::data::instance::parse_instance;
use rmx::engine::{Engine, Match};
use rmx::{Error, Result};
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// Answer relation queries against an index
///
/// One instance from flags (--text, --head, --tail), or JSON Lines on stdin, one instance per
/// line, in any of these forms:
///   {"text":"Marie Curie married Pierre Curie.","head":"Marie Curie","tail":"Pierre Curie"}
///   {"text":"...","head":[0,11],"tail":[20,32]}           (character spans [start, end))
///   {"tokens":["Marie","Curie",...],"h":{"pos":[0,2]},"t":{"pos":[3,5]}}
/// Output, one line per input line in order:
///   {"line":1,"relation":"P26","results":[{"id":"P26","name":"spouse","score":0.73,"parts":{"context":..,"head":..,"tail":..}},...]}
/// where score = (1−2α)·context + α·(head + tail) (+ "bias" where the zero-training default
/// corrects a relation described by text alone). "relation" is the best result's id when its
/// score reaches the threshold (--min-score, else the index's calibrated one, see
/// `rmx index calibrate`; an uncalibrated index has none), else null: no relation.
/// Bad lines are reported on stderr as <stdin>:N: reason and skipped (exit code 1).
#[derive(Args)]
#[command(verbatim_doc_comment)]
#[command(
    after_help = "Examples:\n  rmx query --index relations.rmx --text 'Marie Curie married Pierre Curie.' --head 'Marie Curie' --tail 'Pierre Curie'\n  rmx query --index relations.rmx -k 3 < queries.jsonl"
)]
pub struct QueryArgs {
    /// Index directory built by `rmx index build`.
    #[arg(long, value_name = "DIR")]
    index: PathBuf,
    /// Model directory; must be the one the index was built with. Default: the default model.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Results per instance.
    #[arg(short, default_value_t = 5, value_name = "N")]
    k: usize,
    #[command(flatten)]
    precision: super::EncoderPrecision,
    #[command(flatten)]
    device: super::Device,
    /// The sentence (with --head and --tail: the entity strings, each occurring once).
    #[arg(long, requires_all = ["head", "tail"])]
    text: Option<String>,
    /// The head entity as it is written in --text.
    #[arg(long, requires = "text")]
    head: Option<String>,
    /// The tail entity as it is written in --text.
    #[arg(long, requires = "text")]
    tail: Option<String>,
    /// Answer "relation": null when the best score is below S (default: the index's
    /// calibrated threshold; none for an uncalibrated index).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    min_score: Option<f32>,
    /// Instances encoded together when reading stdin (output is flushed after each batch).
    #[arg(long, default_value_t = 32, value_name = "N")]
    batch_size: usize,
}

#[derive(Serialize)]
struct Answer<'a> {
    line: usize,
    relation: Option<&'a str>,
    results: Vec<Match<'a>>,
}

pub fn run(args: QueryArgs) -> Result<Outcome> {
    if let Some(s) = args.min_score.filter(|s| !s.is_finite()) {
        return Err(Error::InvalidArgument(format!("--min-score {s} is not a finite number")));
    }
    let mut engine = Engine::open_on(&super::model_dir(args.model.clone()), &args.index, args.device.kind)?;
    engine.matcher.set_precision(args.precision.value)?;
    let outcome = answer_all(&engine, &args);
    // The process ends right after this: the OS takes the model's memory and mappings back
    // at once, where dropping them frees every tokenizer entry and unmaps every tensor
    // (a tenth of a one-sentence query's time).
    std::mem::forget(engine);
    outcome
}

fn answer_all(engine: &Engine, args: &QueryArgs) -> Result<Outcome> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    if let Some(text) = &args.text {
        let value = serde_json::json!({ "text": text, "head": args.head, "tail": args.tail });
        let line = Line { number: 1, text: value.to_string() };
        let rejected = answer_batch(engine, args.k, args.min_score, "<args>", &[line], &mut out)?;
        return Ok(Outcome { rejected });
    }
    let mut input = Batches::new(std::io::stdin().lock(), "<stdin>", args.batch_size);
    let mut rejected = 0;
    loop {
        let lines = input.next_batch().map_err(|e| Error::io("<stdin>", e))?;
        if lines.is_empty() {
            break;
        }
        rejected += answer_batch(engine, args.k, args.min_score, &input.name, &lines, &mut out)?;
    }
    Ok(Outcome { rejected })
}

/// Answers one batch of lines in order, flushing after it; returns how many were rejected.
fn answer_batch(engine: &Engine, k: usize, min_score: Option<f32>, source: &str, lines: &[Line], out: &mut impl Write) -> Result<usize> {
    let mut numbers = Vec::with_capacity(lines.len());
    let mut instances = Vec::with_capacity(lines.len());
    let mut rejected = 0;
    let mut reject = |number: usize, e: Error| {
        eprintln!("{source}:{number}: {e}");
        rejected += 1;
    };
    for line in lines {
        match parse_instance(&line.text) {
            Ok(instance) => {
                numbers.push(line.number);
                instances.push(instance);
            }
            Err(e) => reject(line.number, e),
        }
    }
    for (&line, answer) in numbers.iter().zip(engine.query_batch(&instances, k)?) {
        match answer {
            Ok(results) => {
                let relation = engine.relation(&results, min_score);
                write_line(out, &Answer { line, relation, results }).map_err(|e| Error::io("<stdout>", e))?
            }
            Err(e) => reject(line, e),
        }
    }
    out.flush().map_err(|e| Error::io("<stdout>", e))?;
    Ok(rejected)
}
