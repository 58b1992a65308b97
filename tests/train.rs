//! The trainer end to end on the tiny random BERT: reproducibility, the checkpoint it writes
//! (loaded back by the inference path, which must compute exactly what training computed),
//! and `rmx train` on the command line (exit codes, rejected records, refusals).
mod common;

use common::{fixture, TempDir};
use rmx::backend::cpu::Cpu;
use rmx::data::descriptions::Relation;
use rmx::data::fewrel::read_labelled;
use rmx::model::bert::Bert;
use rmx::model::params::ParamSet;
use rmx::model::rematch::Matcher;
use rmx::model::scoring::{combine_parts, PartWeights};
use rmx::rng::Rng;
use rmx::text::markers::WordInstance;
use rmx::text::tokenizer::TextTokenizer;
use rmx::train::checkpoint::save_checkpoint;
use rmx::train::dataset::prepare_training;
use rmx::train::trainer::{TrainSettings, Trainer};
use std::path::{Path, PathBuf};
use std::process::Command;

const WORDS: [&str; 16] = ["the", "of", "and", "in", "to", "was", "is", "he", "she", "married", "born", "paris", "city", "hello", "world", "1895"];
const NAMES: [&str; 4] = ["marie", "curie", "pierre", "paris"];

/// FewRel-format data: `per` sentences for each of `relations`, words of the tiny vocabulary.
fn write_data(dir: &Path, relations: &[&str], per: usize) -> PathBuf {
    let mut rng = Rng::new(9);
    let mut map = serde_json::Map::new();
    for (k, r) in relations.iter().enumerate() {
        let list: Vec<serde_json::Value> = (0..per)
            .map(|_| {
                let n = 6 + rng.below(6);
                let mut tokens: Vec<String> = (0..n).map(|_| WORDS[rng.below(WORDS.len())].to_string()).collect();
                let (h, t) = (rng.below(2), 3 + rng.below(n - 3));
                tokens[h] = NAMES[k % NAMES.len()].to_string();
                tokens[t] = NAMES[(k + 1) % NAMES.len()].to_string();
                serde_json::json!({"tokens": tokens, "h": ["x", "Q1", [[h]]], "t": ["y", "Q2", [[t]]]})
            })
            .collect();
        map.insert(r.to_string(), serde_json::Value::Array(list));
    }
    let path = dir.join("data.json");
    std::fs::write(&path, serde_json::Value::Object(map).to_string()).unwrap();
    path
}

/// A trained model's relation vectors (no zero-training block) without their last
/// component, the hubness bias, which must be 0.
fn unbiased_relation_vectors(matcher: &Matcher<Cpu>, rels: &[Relation]) -> Vec<Vec<f32>> {
    let mut vectors = matcher.encode_relations(rels, 8, |_| {}).unwrap();
    for v in &mut vectors {
        assert_eq!(v.pop(), Some(0.0), "a trained model alone has no hubness bias");
    }
    vectors
}

fn relations(ids: &[&str]) -> Vec<Relation> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Relation {
            id: id.to_string(),
            name: format!("relation {i}"),
            description: format!("{} was born in the city of {}", WORDS[i], WORDS[(i * 3) % WORDS.len()]),
            head: vec![NAMES[i % 4].to_string()],
            tail: vec!["city".into(), NAMES[(i + 1) % 4].to_string()],
        })
        .collect()
}

fn descriptions_file(dir: &Path, ids: &[&str]) -> PathBuf {
    let path = dir.join("descriptions.jsonl");
    let lines: Vec<String> = relations(ids)
        .iter()
        .map(|r| serde_json::json!({"id": r.id, "name": r.name, "description": r.description, "head": r.head, "tail": r.tail}).to_string())
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn small_trainer(dir: &Path, seed: u64) -> (Trainer<Cpu>, rmx::train::trainer::TrainingSet) {
    let ids = ["P1", "P2", "P3"];
    let data = read_labelled(&write_data(dir, &ids, 10)).unwrap();
    let tokenizer = TextTokenizer::load(&fixture("tiny_bert/tokenizer.json")).unwrap();
    let prepared = prepare_training(&data.examples, &relations(&ids), &["P3".into()], &tokenizer, 64).unwrap();
    assert_eq!(prepared.relations.len(), 2, "P3 is held out");
    assert_eq!(prepared.set.sentences.len(), 20);
    let matcher = Matcher::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    let vectors = rmx::model::description::encode_relations(
        &matcher.description,
        &prepared.relations,
        rmx::model::description::DescriptionStyle::TypeTemplate,
        PartWeights::from_alpha(0.33),
        8,
        |_| {},
    )
    .unwrap();
    let settings = TrainSettings { epochs: 2, batch_size: 8, lr: 1e-3, seed, ..TrainSettings::default() };
    (Trainer::new(&Bert::<Cpu>::load(&fixture("tiny_bert")).unwrap(), vectors.concat(), settings), prepared.set)
}

fn losses(trainer: &mut Trainer<Cpu>, set: &rmx::train::trainer::TrainingSet) -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    trainer.train(set, |s| out.push((s.matching, s.adversarial))).unwrap();
    out
}

#[test]
fn same_seed_same_losses() {
    let dir = TempDir::new("train-seed");
    let (mut a, set) = small_trainer(&dir, 5);
    let (mut b, _) = small_trainer(&dir, 5);
    let (mut c, _) = small_trainer(&dir, 6);
    let (la, lb, lc) = (losses(&mut a, &set), losses(&mut b, &set), losses(&mut c, &set));
    assert_eq!(la.len(), 6, "3 batches (8, 8, 4) per epoch, 2 epochs");
    assert_eq!(la, lb, "same seed, same losses, bit for bit");
    assert_ne!(la, lc, "another seed shuffles and draws differently");
    assert_eq!(values(&a.bert.params), values(&b.bert.params));
}

#[test]
fn a_checkpoint_computes_what_training_computed() {
    let dir = TempDir::new("train-checkpoint");
    let (mut trainer, set) = small_trainer(&dir, 1);
    losses(&mut trainer, &set);
    trainer.settings.description_style = rmx::model::description::DescriptionStyle::KeywordList;
    // The trained model alone (the ensemble with the zero-training default has its own test).
    trainer.settings.zero_shot_weight = 0.0;
    let out = dir.join("ck");
    save_checkpoint(&out, &trainer, &fixture("tiny_bert"), &fixture("tiny_bert"), serde_json::json!({"test": true})).unwrap();

    // The inference path on the checkpoint vs the training forward on the trained parameters.
    let matcher = Matcher::<Cpu>::load(&out).unwrap();
    assert!(matcher.is_trained());
    let instance =
        WordInstance::from_words(["marie", "curie", "married", "pierre", "curie", "in", "paris"].iter().map(|s| s.to_string()).collect(), 0..2, 3..5).unwrap();
    let query = matcher.encode_queries(&[matcher.prepare(&instance).unwrap()]).unwrap().remove(0);

    let marked = instance.mark(&TextTokenizer::load(&fixture("tiny_bert/tokenizer.json")).unwrap(), 64).unwrap();
    let batch = rmx::model::bert::PackedBatch::new(&[&marked.ids[..]]);
    let cache = trainer.bert.forward_train(&batch, rmx::model::bert::Dropout::OFF);
    let rows =
        [rmx::backend::EntityRows { head: marked.head.clone(), tail: marked.tail.clone(), head_marker: marked.head_marker, tail_marker: marked.tail_marker }];
    let d = trainer.heads.d;
    let descriptions = vec![1.0f32; 3 * d];
    let targets = rmx::train::objective::Targets {
        starts: &batch.starts,
        rows: &rows,
        descriptions: &descriptions[..],
        relation: &[0],
        negatives: &[false],
        train_label: &[0],
    };
    let (_, head_cache) = trainer.heads.forward(&trainer.bert.params, cache.hidden(), &targets, &trainer.settings.objective);
    let p = &head_cache.parts;
    let want = combine_parts([&p[..d], &p[d..2 * d], &p[2 * d..]], PartWeights::from_alpha(0.33));
    let diff = query.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "inference and training disagree by {diff}");

    // Relations are encoded in the style the checkpoint was trained with.
    let rels = relations(&["P1", "P2"]);
    let style = rmx::model::description::DescriptionStyle::KeywordList;
    let want = rmx::model::description::encode_relations(&matcher.description, &rels, style, PartWeights::from_alpha(0.33), 8, |_| {}).unwrap();
    assert_eq!(unbiased_relation_vectors(&matcher, &rels), want);
    let template = rmx::model::description::DescriptionStyle::TypeTemplate;
    assert_ne!(rmx::model::description::encode_relations(&matcher.description, &rels, template, PartWeights::from_alpha(0.33), 8, |_| {}).unwrap(), want);

    // The encoder file keeps every tensor of the source (pooler, position ids) by HF name.
    let names = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let mut n: Vec<String> = safetensors::SafeTensors::deserialize(&bytes).unwrap().names().into_iter().map(String::from).collect();
        n.sort();
        n
    };
    assert_eq!(names(&out.join("model.safetensors")), names(&fixture("tiny_bert/model.safetensors")));
    assert!(out.join("description_encoder/model.safetensors").is_file());
    let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("rmx.json")).unwrap()).unwrap();
    assert_eq!(settings["format"], 1, "no ensemble: readable by older rmx versions");
    assert_eq!(settings["training"]["test"], true);

    // Saving again replaces the checkpoint; a directory that is not one is refused.
    save_checkpoint(&out, &trainer, &fixture("tiny_bert"), &fixture("tiny_bert"), serde_json::json!({})).unwrap();
    let other = dir.join("not-a-checkpoint");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("precious.txt"), "keep me").unwrap();
    let err = save_checkpoint(&other, &trainer, &fixture("tiny_bert"), &fixture("tiny_bert"), serde_json::json!({})).unwrap_err();
    assert!(err.to_string().contains("not an rmx checkpoint"), "{err}");
    assert_eq!(std::fs::read_to_string(other.join("precious.txt")).unwrap(), "keep me");
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains(".tmp-")), "no temporary left");
}

/// The small trainer with a trained description side, started from the tiny model.
fn small_trainer_with_tower(dir: &Path, seed: u64) -> (Trainer<Cpu>, rmx::train::trainer::TrainingSet) {
    let (trainer, set) = small_trainer(dir, seed);
    let encoder = rmx::model::sentence::SentenceEncoder::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    let texts = relations(&["P1", "P2"])
        .iter()
        .map(|r| rmx::model::description::description_texts(r, trainer.settings.description_style).map(|t| encoder.tokenize(&t.unwrap()).unwrap().ids))
        .collect();
    let tower = rmx::train::description_tower::DescriptionTower::new(&encoder.bert, texts, trainer.settings.adamw);
    (trainer.with_description_tower(tower), set)
}

#[test]
fn a_trained_description_side_learns_and_the_checkpoint_encodes_with_it() {
    let dir = TempDir::new("train-tower");
    let (mut a, set) = small_trainer_with_tower(&dir, 3);
    let (mut b, _) = small_trainer_with_tower(&dir, 3);
    let (la, lb) = (losses(&mut a, &set), losses(&mut b, &set));
    assert_eq!(la, lb, "same seed, same losses, with the tower too");
    let (mut frozen, _) = small_trainer(&dir, 3);
    assert_ne!(la, losses(&mut frozen, &set), "the tower changes the description vectors, so the losses");
    let tower = a.description_tower.as_ref().unwrap();
    let start = Bert::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    assert_ne!(values(&tower.bert.params), values(&start.params), "the tower learned");

    let out = dir.join("ck");
    a.settings.zero_shot_weight = 0.0;
    save_checkpoint(&out, &a, &fixture("tiny_bert"), &fixture("tiny_bert"), serde_json::json!({})).unwrap();
    let matcher = Matcher::<Cpu>::load(&out).unwrap();
    let rels = relations(&["P1", "P2", "P3"]);
    let weights = PartWeights::from_alpha(0.33);
    let style = a.settings.description_style;
    let mut trained = rmx::model::sentence::SentenceEncoder::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    trained.bert = tower.bert.snapshot();
    let want = rmx::model::description::encode_relations(&trained, &rels, style, weights, 8, |_| {}).unwrap();
    assert_eq!(unbiased_relation_vectors(&matcher, &rels), want, "the checkpoint's description encoder is the trained tower");
    let pretrained = Matcher::<Cpu>::load(&fixture("tiny_bert")).unwrap().description;
    assert_ne!(rmx::model::description::encode_relations(&pretrained, &rels, style, weights, 8, |_| {}).unwrap(), want);
}

fn rmx(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rmx")).args(args).output().expect("rmx runs");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn rmx_train_on_the_command_line() {
    let dir = TempDir::new("train-cli");
    let ids = ["P1", "P2", "P3"];
    let data = write_data(&dir, &ids, 6);
    // One bad record (overlapping entities) in RE-Matching's processed format, beside it.
    let extra = dir.join("extra.jsonl");
    std::fs::write(
        &extra,
        "{\"token\": [\"marie\", \"married\", \"pierre\"], \"h\": {\"pos\": [0, 1]}, \"t\": {\"pos\": [2, 3]}, \"relation\": \"P1\"}\n\
         {\"token\": [\"marie\", \"married\"], \"h\": {\"pos\": [0, 1]}, \"t\": {\"pos\": [0, 2]}, \"relation\": \"P2\"}\n",
    )
    .unwrap();
    let desc = descriptions_file(&dir, &ids);
    let out = dir.join("ck");
    let log = dir.join("log.jsonl");
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let base =
        ["train", "--model", &s(&fixture("tiny_bert")), "--descriptions", &s(&desc), "--unseen", "P3", "--batch-size", "4", "--epochs", "1"].map(String::from);
    let run = |extra_args: &[&str]| rmx(&base.iter().map(String::as_str).chain(extra_args.iter().copied()).collect::<Vec<_>>());

    let o = run(&["--data", &s(&data), "--data", &s(&extra), "-o", &s(&out), "--log", &s(&log)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "one record rejected: {err}");
    assert!(err.contains("extra.jsonl:2:") && err.contains("overlap"), "{err}");
    assert!(out.join("rmx.json").is_file() && out.join("heads.safetensors").is_file());
    let steps: Vec<serde_json::Value> = std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(steps.len(), 4, "13 sentences of P1 and P2 in batches of 4");
    assert!(steps.iter().all(|s| s["matching"].as_f64().unwrap().is_finite()));

    // The checkpoint evaluates.
    let o = rmx(&["eval", "--model", &s(&out), "--data", &s(&data), "--descriptions", &s(&desc), "--relations", "P1,P2,P3", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let scores: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((0.0..=1.0).contains(&scores["f1"].as_f64().unwrap()));

    // Fatal errors: exit 2 with the reason, nothing written.
    let o = rmx(&[
        "train",
        "--model",
        &s(&fixture("tiny_bert")),
        "--data",
        &s(&data),
        "--descriptions",
        &s(&desc),
        "--unseen",
        "P1,P2,P3",
        "-o",
        &s(&dir.join("ck2")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("every relation of the data is unseen"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["--data", &s(&data), "-o", &s(&dir.join("ck4")), "--loss", "contrastive", "--temperature", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--temperature 0 must be positive"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["--data", &s(&data), "-o", &s(&dir.join("ck5")), "--zero-shot-weight", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.join("ck4").exists() && !dir.join("ck5").exists());

    // With the description side trained: the trained description encoder and the frozen one.
    let o = run(&["--data", &s(&data), "-o", &s(&dir.join("ck7")), "--train-descriptions", "--validate", &s(&data)]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("epoch 1: validation macro F1"), "{}", String::from_utf8_lossy(&o.stderr));
    let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("ck7/rmx.json")).unwrap()).unwrap();
    assert_eq!(settings["zero_shot_encoder"], "zero_shot_encoder");
    assert_eq!(settings["training"]["settings"]["train_descriptions"], true);
    let weights = |p: &str| std::fs::read(dir.join("ck7").join(p)).unwrap();
    assert_ne!(weights("description_encoder/model.safetensors"), std::fs::read(fixture("tiny_bert/model.safetensors")).unwrap());
    assert_eq!(weights("zero_shot_encoder/model.safetensors"), std::fs::read(fixture("tiny_bert/model.safetensors")).unwrap());
    let o = rmx(&["eval", "--model", &s(&dir.join("ck7")), "--data", &s(&data), "--descriptions", &s(&desc), "--relations", "P1,P2,P3"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let o = rmx(&["train", "--model", &s(&dir.join("ck7")), "--data", &s(&data), "--descriptions", &s(&desc), "--unseen", "P3", "-o", &s(&dir.join("ck8"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be trained further"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.join("ck8").exists());
    let desc_missing = dir.join("desc2.jsonl");
    std::fs::write(&desc_missing, std::fs::read_to_string(&desc).unwrap().lines().next().unwrap()).unwrap();
    let o = rmx(&[
        "train",
        "--model",
        &s(&fixture("tiny_bert")),
        "--data",
        &s(&data),
        "--descriptions",
        &s(&desc_missing),
        "--unseen",
        "P3",
        "-o",
        &s(&dir.join("ck3")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("without a description: P2"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.join("ck3").exists());
}

#[test]
fn encoder_gradients_with_dropout_match_finite_differences() {
    // Dropout masks are a function of the key: the forward is a fixed (piecewise) smooth
    // map, so central differences of L = Σ r ⊙ H check the backward, masks included.
    let mut bert = Bert::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    let batch = rmx::model::bert::PackedBatch::new(&[vec![2u32, 67, 68, 64, 69, 68, 58, 66, 3], vec![2, 70, 71, 3]]);
    let dropout = rmx::model::bert::Dropout { p: 0.3, key: 99 };
    let mut rng = Rng::new(4);
    let r = rng.normals(batch.tokens() * 32, 1.0);
    let loss = |bert: &Bert<Cpu>| -> f64 {
        let cache = bert.forward_train(&batch, dropout);
        cache.hidden().iter().zip(&r).map(|(h, r)| *h as f64 * *r as f64).sum()
    };
    let cache = bert.forward_train(&batch, dropout);
    let off = bert.forward_train(&batch, rmx::model::bert::Dropout::OFF);
    assert!(cache.hidden().iter().zip(off.hidden()).any(|(a, b)| (a - b).abs() > 1e-3), "dropout changes the forward");
    let mut grads = bert.params.zero_grads();
    bert.backward(&batch, &cache, &r, dropout, &mut grads);
    let mut checked = 0;
    for name in [
        "embeddings.word_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.output.dense.weight",
        "encoder.layer.1.output.dense.bias",
        "encoder.layer.1.intermediate.dense.weight",
    ] {
        let id = bert.params.id(name).unwrap();
        for k in 0..4 {
            // word embeddings: a row of an id in the batch
            let idx = if name.starts_with("embeddings.word") { 67 * 32 + k * 7 } else { (k * 37) % bert.params.get(id).len() };
            let fd = central_difference(&mut bert, |b| &mut b.params, id, idx, 1e-2, loss);
            let g = grads.get(id)[idx] as f64;
            assert!((fd - g).abs() <= 0.02 * g.abs() + 5e-3, "{name}[{idx}]: backward {g}, finite differences {fd}");
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}

/// `(L(θ + h) − L(θ − h)) / 2h` in element `idx` of parameter `id` (restored afterwards).
/// `(L(θ + h) − L(θ − h)) / 2h` in element `idx` of parameter `id` of `params(model)`
/// (restored afterwards).
fn central_difference<M>(model: &mut M, params: impl Fn(&mut M) -> &mut ParamSet<Cpu>, id: usize, idx: usize, h: f32, loss: impl Fn(&M) -> f64) -> f64 {
    let orig = params(model).get(id)[idx];
    params(model).get_mut(id)[idx] = orig + h;
    let up = loss(model);
    params(model).get_mut(id)[idx] = orig - h;
    let down = loss(model);
    params(model).get_mut(id)[idx] = orig;
    (up - down) / (2.0 * h as f64)
}

/// Every parameter's values.
fn values(p: &ParamSet<Cpu>) -> Vec<Vec<f32>> {
    (0..p.len()).map(|id| p.get(id).to_vec()).collect()
}

#[test]
fn objective_gradients_with_the_contrastive_loss_match_finite_differences() {
    // Heads + contrastive matching loss + adversary on fixed hidden states: the backward of
    // the head parameters against central differences of the loss. The gradient reversal
    // makes the distillation query's gradient ∂matching/∂q − λ·∂adversarial/∂q. (d_hidden is
    // not checked here: the stop-gradient into H has no finite-difference counterpart; the
    // PyTorch parity test of tests/train_step.rs covers it.)
    use rmx::backend::EntityRows;
    use rmx::train::objective::{HeadIds, MatchingLoss, ObjectiveSettings, Targets};
    let (d, n_train) = (32, 3);
    let mut rng = Rng::new(12);
    let mut params = ParamSet::<Cpu>::default();
    let heads = HeadIds::init(&mut params, d, n_train, &mut rng);
    // Larger heads than the N(0, 0.02²) initialisation, so that every path carries gradient.
    (0..params.len()).for_each(|id| params.get_mut(id).iter_mut().for_each(|x| *x *= 20.0));
    let starts = [0usize, 6, 10, 14];
    let hidden = rng.normals(14 * d, 1.0);
    let rows = [
        EntityRows { head: 1..3, tail: 4..5, head_marker: 0, tail_marker: 3 },
        EntityRows { head: 7..8, tail: 9..10, head_marker: 6, tail_marker: 8 },
        EntityRows { head: 12..14, tail: 11..12, head_marker: 11, tail_marker: 10 },
    ];
    let descriptions = rng.normals(3 * 3 * d, 1.0);
    let relation = [0u32, 1, 2];
    let negatives = [false, true, true, true, false, false, true, true, false];
    let targets =
        Targets { starts: &starts, rows: &rows, descriptions: &descriptions[..], relation: &relation, negatives: &negatives, train_label: &[2, 0, 1] };
    let settings = ObjectiveSettings { matching: MatchingLoss::Contrastive { temperature: 0.1 }, ..ObjectiveSettings::default() };
    // What the backward pass differentiates: the total loss, except for the query, which the
    // gradient reversal makes see matching − λ·adversarial.
    let loss = |params: &ParamSet<Cpu>, reversed: bool| {
        let l = heads.forward(params, &hidden, &targets, &settings).0;
        if reversed {
            l.matching as f64 - settings.grl_lambda as f64 * l.adversarial as f64
        } else {
            l.total() as f64
        }
    };
    let (losses, cache) = heads.forward(&params, &hidden, &targets, &settings);
    assert!(losses.matching > 0.05, "the test needs an active matching loss");
    let mut grads = params.zero_grads();
    let mut d_hidden = vec![0.0f32; hidden.len()];
    let mut d_descriptions = vec![0.0f32; descriptions.len()];
    heads.backward(&params, &hidden, &targets, &settings, &cache, &mut grads, &mut d_hidden, Some(&mut d_descriptions));
    // The description rows (a trained description side): central differences of the loss.
    for k in 0..12 {
        let idx = (k * 53 + 5) % descriptions.len();
        let at = |delta: f32| {
            let mut moved = descriptions.clone();
            moved[idx] += delta;
            let targets = Targets { descriptions: &moved[..], ..targets };
            heads.forward(&params, &hidden, &targets, &settings).0.total() as f64
        };
        let fd = (at(1e-2) - at(-1e-2)) / 2e-2;
        let g = d_descriptions[idx] as f64;
        assert!((fd - g).abs() <= 0.03 * g.abs() + 2e-3, "descriptions[{idx}]: backward {g}, finite differences {fd}");
    }
    assert!(d_descriptions.iter().any(|g| g.abs() > 1e-3), "the descriptions get gradient");
    for id in heads.ids() {
        let reversed = id == heads.distill_query;
        for k in 0..3 {
            let idx = (k * 101 + 7) % params.get(id).len();
            let fd = central_difference(&mut params, |p| p, id, idx, 1e-2, |p| loss(p, reversed));
            let g = grads.get(id)[idx] as f64;
            assert!((fd - g).abs() <= 0.03 * g.abs() + 2e-3, "{}[{idx}]: backward {g}, finite differences {fd}", params.name(id));
        }
    }
}

#[test]
fn an_ensemble_checkpoint_scores_the_weighted_sum_of_both_models() {
    let dir = TempDir::new("train-ensemble");
    let (trainer, set) = small_trainer(&dir, 3);
    check_ensemble(&dir.join("frozen"), trainer, &set, 2);
    // With a trained description side, the zero-training part still uses the frozen encoder.
    let (trainer, set) = small_trainer_with_tower(&dir, 3);
    check_ensemble(&dir.join("tower"), trainer, &set, 3);
}

/// A checkpoint saved with zero_shot_weight β answers (1−β)·trained + β·zero-training
/// default, through the index-facing vectors (unit, 6d); its settings have `format`.
fn check_ensemble(dir: &Path, mut trainer: Trainer<Cpu>, set: &rmx::train::trainer::TrainingSet, format_version: u32) {
    losses(&mut trainer, set);
    let beta = 0.3f32;
    trainer.settings.zero_shot_weight = beta;
    let out = dir.join("ck");
    save_checkpoint(&out, &trainer, &fixture("tiny_bert"), &fixture("tiny_bert"), serde_json::json!({})).unwrap();

    let format = |dir: &Path| serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(dir.join("rmx.json")).unwrap()).unwrap()["format"].clone();
    assert_eq!(format(&out), format_version, "older rmx versions must refuse an ensemble (or a second encoder), not score without it");
    let ensemble = Matcher::<Cpu>::load(&out).unwrap();
    let trained = Matcher::<Cpu>::load_with(&out, Some(0.0)).unwrap();
    let zero_shot = Matcher::<Cpu>::load(&fixture("tiny_bert")).unwrap();
    assert_eq!(ensemble.parts_dim(), 2 * trained.parts_dim());
    assert_eq!((ensemble.dim(), trained.dim()), (ensemble.parts_dim() + 1, trained.parts_dim() + 1), "one hubness bias component");
    assert_ne!(ensemble.fingerprint(), trained.fingerprint(), "an index of one cannot serve the other");
    assert!(Matcher::<Cpu>::load_with(&fixture("tiny_bert"), Some(0.2)).is_err(), "a plain encoder has nothing to ensemble");
    assert!(Matcher::<Cpu>::load_with(&out, Some(1.0)).is_err());

    let instance =
        WordInstance::from_words(["marie", "curie", "married", "pierre", "curie", "in", "paris"].iter().map(|s| s.to_string()).collect(), 0..2, 3..5).unwrap();
    // Keyword descriptions, and text alone (the zero-training part then matches label and
    // description with its hubness bias, as the zero-training default does).
    let keywords = relations(&["P1", "P2", "P3"]);
    let text_only: Vec<Relation> = keywords.iter().map(|r| Relation { head: Vec::new(), tail: Vec::new(), ..r.clone() }).collect();
    for rels in [keywords, text_only] {
        check_ensemble_scores(&ensemble, &trained, &zero_shot, &instance, &rels, beta);
    }
}

fn check_ensemble_scores(ensemble: &Matcher<Cpu>, trained: &Matcher<Cpu>, zero_shot: &Matcher<Cpu>, instance: &WordInstance, rels: &[Relation], beta: f32) {
    let scores = |m: &Matcher<Cpu>| -> Vec<f32> {
        let q = m.encode_queries(&[m.prepare(instance).unwrap()]).unwrap().remove(0);
        let r = m.encode_relations(rels, 2, |_| {}).unwrap();
        for v in r.iter().filter(|_| !rels[0].head.is_empty()) {
            let parts = &v[..m.parts_dim()];
            assert!((parts.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "relation vectors with keywords are unit");
        }
        r.iter().map(|v| v.iter().zip(&q).map(|(a, b)| a * b).sum()).collect()
    };
    let (e, t, z) = (scores(ensemble), scores(trained), scores(zero_shot));
    for i in 0..rels.len() {
        let want = (1.0 - beta) * t[i] + beta * z[i];
        assert!((e[i] - want).abs() < 1e-5, "relation {i}: ensemble {} vs {want}", e[i]);
    }
    assert!(t.iter().zip(&z).any(|(a, b)| (a - b).abs() > 1e-3), "the two models must differ for the test to mean anything");
}

/// `--seed 1,2` writes the tensor-by-tensor mean of the runs `--seed 1` and `--seed 2` write
/// (the runs are deterministic), records the seeds, and leaves no run directory behind;
/// checkpoints of different trainings are not averaged.
#[test]
fn several_seeds_write_the_mean_of_the_runs() {
    use safetensors::SafeTensors;
    let dir = TempDir::new("train-soup");
    let ids = ["P1", "P2", "P3"];
    let data = write_data(&dir, &ids, 6);
    let desc = descriptions_file(&dir, &ids);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let run = |seed: &str, out: &Path, epochs: &str| {
        let (model, data, desc, out) = (s(&fixture("tiny_bert")), s(&data), s(&desc), s(out));
        rmx(&[
            "train",
            "--model",
            &model,
            "--data",
            &data,
            "--descriptions",
            &desc,
            "--unseen",
            "P3",
            "--batch-size",
            "4",
            "--epochs",
            epochs,
            "--seed",
            seed,
            "-o",
            &out,
        ])
    };
    let train = |seed: &str, out: &Path, epochs: &str| {
        let o = run(seed, out, epochs);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let (one, two, soup) = (dir.join("one"), dir.join("two"), dir.join("soup"));
    train("1", &one, "1");
    train("2", &two, "1");
    train("1,2", &soup, "1");
    for file in ["model.safetensors", "heads.safetensors", "description_encoder/model.safetensors", "zero_shot_encoder/model.safetensors"] {
        let read = |d: &Path| std::fs::read(d.join(file)).unwrap();
        let (a, b, m) = (read(&one), read(&two), read(&soup));
        let (a, b, m) = (SafeTensors::deserialize(&a).unwrap(), SafeTensors::deserialize(&b).unwrap(), SafeTensors::deserialize(&m).unwrap());
        assert_eq!(m.len(), a.len(), "{file}");
        let f32s = |v: safetensors::tensor::TensorView| v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
        let mut moved = false;
        for name in a.names() {
            let (x, y, z) = (f32s(a.tensor(name).unwrap()), f32s(b.tensor(name).unwrap()), f32s(m.tensor(name).unwrap()));
            moved |= x != y;
            for ((x, y), z) in x.iter().zip(&y).zip(&z) {
                assert_eq!(*z, ((*x as f64 + *y as f64) / 2.0) as f32, "{file} {name}");
            }
        }
        assert_eq!(moved, file != "zero_shot_encoder/model.safetensors", "{file}: the runs differ where training moved the weights");
    }
    let settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(soup.join("rmx.json")).unwrap()).unwrap();
    assert_eq!(settings["training"]["averaged"]["seeds"], serde_json::json!([1, 2]));
    let left: Vec<_> =
        std::fs::read_dir(&*dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect();
    assert!(left.is_empty(), "run directories left behind: {left:?}");
    Matcher::<Cpu>::load(&soup).expect("the soup loads as a checkpoint");

    // Runs of different trainings (here: another epoch count) are refused, nothing written.
    let three = dir.join("three");
    train("3", &three, "2");
    let err = rmx::train::soup::average_checkpoints(&[one.clone(), three], &dir.join("mixed"), serde_json::json!(null)).unwrap_err();
    assert!(err.to_string().contains("settings differ"), "{err}");
    assert!(!dir.join("mixed").exists());
    let o = run("4,4", &dir.join("twice"), "1");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--seed 4 is given twice"), "{}", String::from_utf8_lossy(&o.stderr));
    // An output that is not a checkpoint is refused before any run trains.
    let o = run("5,6", &desc, "1");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an rmx checkpoint") && !err.contains("run 1 of 2"), "{err}");
}
