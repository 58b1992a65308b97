//! The engine users drive: a matcher (model) and an index, answering relation queries; and
//! index building. The CLI and the C library are thin layers over this.
use crate::backend::{on_device, Backend, DeviceKind, OnDevice, Precision};
use crate::calibration::{self, Calibration};
use crate::data::descriptions::Relation;
use crate::error::{Error, Result};
use crate::model::rematch::{Matcher, QueryInput};
use crate::model::scoring::{part_cosines, PartWeights};
use crate::text::markers::WordInstance;
use rmx_index::{BuildMode, Index, IndexOptions, IndexWriter, Info};
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

/// What the engine asks of its model, on whichever device the model computes: a
/// [`Matcher`] on any backend, so that one engine type serves every device.
pub trait EngineModel: Send + Sync {
    /// The device the model computes on.
    fn device(&self) -> DeviceKind;
    fn set_precision(&mut self, precision: Precision) -> Result<()>;
    fn fingerprint(&self) -> &str;
    /// Query and relation vectors' length.
    fn dim(&self) -> usize;
    /// Where the weighted parts end in a vector (see [`Matcher::parts_dim`]).
    fn parts_dim(&self) -> usize;
    fn blocks(&self) -> &[PartWeights];
    fn prepare(&self, instance: &WordInstance) -> Result<QueryInput>;
    fn encode_queries(&self, inputs: &[QueryInput]) -> Result<Vec<Vec<f32>>>;
}

impl<B: Backend> EngineModel for Matcher<B> {
    fn device(&self) -> DeviceKind {
        B::KIND
    }
    fn set_precision(&mut self, precision: Precision) -> Result<()> {
        Matcher::set_precision(self, precision)
    }
    fn fingerprint(&self) -> &str {
        Matcher::fingerprint(self)
    }
    fn dim(&self) -> usize {
        Matcher::dim(self)
    }
    fn parts_dim(&self) -> usize {
        Matcher::parts_dim(self)
    }
    fn blocks(&self) -> &[PartWeights] {
        Matcher::blocks(self)
    }
    fn prepare(&self, instance: &WordInstance) -> Result<QueryInput> {
        Matcher::prepare(self, instance)
    }
    fn encode_queries(&self, inputs: &[QueryInput]) -> Result<Vec<Vec<f32>>> {
        Matcher::encode_queries(self, inputs)
    }
}

/// Loads the matcher of a model directory on the chosen device.
struct LoadMatcher<'a>(&'a Path);

impl OnDevice for LoadMatcher<'_> {
    type Output = Box<dyn EngineModel>;
    fn run<B: Backend>(self) -> Result<Box<dyn EngineModel>> {
        Ok(Box::new(Matcher::<B>::load(self.0)?))
    }
}

/// A model and an index built with it, and the index's "no relation" threshold when it has
/// been calibrated. `Sync`: one engine serves many threads.
pub struct Engine {
    pub matcher: Box<dyn EngineModel>,
    pub index: Index,
    pub calibration: Option<Calibration>,
}

impl Engine {
    /// Opens `index_dir` for the model in `model_dir`, computing on the CPU; an index built
    /// with another model is an error.
    pub fn open(model_dir: &Path, index_dir: &Path) -> Result<Engine> {
        Engine::open_on(model_dir, index_dir, DeviceKind::Cpu)
    }

    /// [`Engine::open`] with the model on `device` (its weights uploaded once, here).
    pub fn open_on(model_dir: &Path, index_dir: &Path, device: DeviceKind) -> Result<Engine> {
        let matcher = on_device(device, LoadMatcher(model_dir))?;
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
    pub precision: rmx_index::Precision,
    pub mode: BuildMode,
    /// Relations encoded per batch.
    pub batch: usize,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings { precision: rmx_index::Precision::F32, mode: BuildMode::Auto, batch: 32 }
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
