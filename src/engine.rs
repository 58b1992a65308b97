//! The engine users drive: a matcher (model) and an index, answering relation queries; and
//! index building. The CLI and the C library are thin layers over this.
use crate::backend::cpu::Cpu;
use crate::backend::Backend;
use crate::calibration::{self, Calibration};
use crate::data::descriptions::Relation;
use crate::error::{Error, Result};
use crate::model::rematch::Matcher;
use crate::model::scoring::part_cosines;
use crate::text::markers::WordInstance;
use rmx_index::{BuildMode, Index, IndexOptions, IndexWriter, Info, Precision};
use std::path::{Path, PathBuf};

/// One answer: a relation, its score and the score's three cosines; `score = Σ w·parts +
/// bias`, where `bias` is the hubness correction of a relation described by text alone in
/// the zero-training default (`model::hubness`; 0 otherwise, and then not serialised).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub score: f32,
    pub parts: Parts,
    #[serde(skip_serializing_if = "is_zero")]
    pub bias: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Parts {
    pub context: f32,
    pub head: f32,
    pub tail: f32,
}

/// A model and an index built with it, and the index's "no relation" threshold when it has
/// been calibrated. `Sync`: one engine serves many threads. It computes on the CPU (the
/// device choice is not wired yet).
pub struct Engine {
    pub matcher: Matcher<Cpu>,
    pub index: Index,
    pub calibration: Option<Calibration>,
}

impl Engine {
    /// Opens `index_dir` for the model in `model_dir`; an index built with another model is
    /// an error.
    pub fn open(model_dir: &Path, index_dir: &Path) -> Result<Engine> {
        let matcher = Matcher::load(model_dir)?;
        let index = Index::open_expecting(index_dir, matcher.fingerprint())?;
        if index.dim() != matcher.dim() {
            return Err(Error::ModelMismatch(format!(
                "{}: index dimension {} does not match the model's {}; rebuild the index with this model",
                index_dir.display(),
                index.dim(),
                matcher.dim()
            )));
        }
        let calibration = calibration::load(index_dir, index.fingerprint(), index.len())?;
        Ok(Engine { matcher, index, calibration })
    }

    /// The threshold answers are held to: `min_score` when given, else the calibrated one
    /// (`None`: uncalibrated, every best answer is a relation).
    pub fn min_score(&self, min_score: Option<f32>) -> Option<f32> {
        min_score.or(self.calibration.as_ref().map(|c| c.min_score))
    }

    /// The relation `results` (best first) answer: the best one when its score reaches
    /// `min_score` (see [`Engine::min_score`]), else "no relation" (`None`).
    pub fn relation<'m>(&self, results: &[Match<'m>], min_score: Option<f32>) -> Option<&'m str> {
        let best = results.first()?;
        calibration::names_relation(best.score, self.min_score(min_score)).then_some(best.id)
    }

    /// The `k` best relations of each instance, in input order; one entry per instance, an
    /// error for an instance that cannot be marked (the others are still answered).
    pub fn query_batch(&self, instances: &[WordInstance], k: usize) -> Result<Vec<Result<Vec<Match<'_>>>>> {
        // The good instances move into one batch; `slots` remembers where the bad ones were.
        let mut good = Vec::with_capacity(instances.len());
        let mut slots = Vec::with_capacity(instances.len());
        for instance in instances {
            slots.push(self.matcher.prepare(instance).map(|q| good.push(q)));
        }
        let mut queries = self.matcher.encode_queries(&good)?.into_iter();
        slots
            .into_iter()
            .map(|slot| match slot {
                Ok(()) => Ok(Ok(self.top_matches(&queries.next().expect("one query per prepared instance"), k)?)),
                Err(e) => Ok(Err(e)),
            })
            .collect()
    }

    /// The `k` best relations for one query vector, with the score's three parts.
    fn top_matches(&self, query: &[f32], k: usize) -> Result<Vec<Match<'_>>> {
        self.index
            .search(query, k)?
            .iter()
            .map(|hit| {
                let relation = self.index.read_relation(hit.row)?;
                let vector = self.index.read_vector(hit.row)?;
                let parts = self.matcher.parts_dim();
                let [context, head, tail] = part_cosines(&query[..parts], &vector[..parts], self.matcher.blocks());
                let bias = vector.get(parts).copied().unwrap_or(0.0);
                Ok(Match { id: relation.id, name: relation.name, score: hit.score, parts: Parts { context, head, tail }, bias })
            })
            .collect()
    }
}

/// How `build_index` stores and searches the vectors.
#[derive(Debug, Clone, Copy)]
pub struct BuildSettings {
    pub precision: Precision,
    pub mode: BuildMode,
    /// Relations encoded per batch.
    pub batch: usize,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings { precision: Precision::F32, mode: BuildMode::Auto, batch: 32 }
    }
}

/// What `build_index` wrote.
pub struct Built {
    pub info: Info,
    /// Temporary directories of earlier builds into the same place that were killed
    /// mid-build, removed by this one.
    pub swept: Vec<PathBuf>,
}

/// Encodes `relations` with `matcher` into a new index at `output` (atomically replacing an
/// existing index only on success); `progress(done)` after each batch of relations.
pub fn build_index<B: Backend>(
    matcher: &Matcher<B>,
    relations: &[Relation],
    output: &Path,
    settings: BuildSettings,
    progress: impl FnMut(usize),
) -> Result<Built> {
    if relations.is_empty() {
        return Err(Error::InvalidData("no relations to index".into()));
    }
    let vectors = matcher.encode_relations(relations, settings.batch, progress)?;
    let options =
        IndexOptions { precision: settings.precision, mode: settings.mode, fingerprint: matcher.fingerprint().to_string(), ..IndexOptions::default() };
    let mut writer = IndexWriter::create(output, matcher.dim(), options)?;
    let swept = writer.swept().to_vec();
    for (r, v) in relations.iter().zip(&vectors) {
        let meta = serde_json::json!({ "description": r.description, "head": r.head, "tail": r.tail }).to_string();
        writer.add(&r.id, &r.name, &meta, v)?;
    }
    Ok(Built { info: writer.finish()?, swept })
}
