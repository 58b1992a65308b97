//! The `rmx` binary end to end on the default model: exit codes, `file:line: reason`
//! messages, and every bad input of the index issue (each loses nothing and never panics).
mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RELATIONS: &str = r#"{"id":"P26","name":"spouse","description":"the subject has the object as their spouse (husband, wife)","head":["person"],"tail":["person","spouse","husband","wife"]}
{"id":"P19","name":"place of birth","description":"most specific known birth location of a person","head":["person"],"tail":["city","town","village"]}
{"id":"P17","name":"country","description":"sovereign state that this item is in","tail":["country","state"]}
{"id":"P175","name":"performer","description":"actor, musician, band or other performer associated with this role or musical work","head":["song","album","work"],"tail":["musician","singer","band"]}
"#;

fn rmx(args: &[&str], stdin: &str) -> Output {
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_rmx")).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("rmx runs");
    // rmx may exit on a usage error before reading its input: a broken pipe is fine then.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "writing rmx's stdin: {e}");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "rmx panicked: {stderr}");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn build_index(dir: &Path, relations: &str) -> (Output, PathBuf) {
    let input = dir.join("relations.jsonl");
    std::fs::write(&input, relations).unwrap();
    let index = dir.join("index");
    (rmx(&["index", "build", input.to_str().unwrap(), "-o", index.to_str().unwrap()], ""), index)
}

#[test]
fn embed_reports_bad_lines_and_keeps_order() {
    if default_model().is_none() {
        return;
    }
    let o = rmx(&["embed"], "{\"text\":\"first\"}\nnot json\n\n{\"txt\":1}\n{\"text\":\"last\"}\n");
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 5]);
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 384);
    assert!(stderr(&o).contains("<stdin>:2: invalid JSON"));
    assert!(stderr(&o).contains("<stdin>:4: missing field \"text\""));
    assert_eq!(rmx(&["embed"], "{\"text\":\"ok\"}\n").status.code(), Some(0));
    assert_eq!(rmx(&["embed", "--model", "/nonexistent"], "").status.code(), Some(2));
}

#[test]
fn embed_precision_flag() {
    if default_model().is_none() {
        return;
    }
    let input = "{\"text\":\"Marie Curie was born in Warsaw.\"}\n";
    let embedding = |precision: &str| -> Vec<f64> {
        let o = rmx(&["embed", "--precision", precision], input);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        line["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let f32 = embedding("f32");
    let o = rmx(&["embed", "--precision", "f16"], input);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown precision"), "{}", stderr(&o));
    for (precision, min_cos, feature) in [("bf16", 0.9995, "AVX512-BF16"), ("int8", 0.995, "AVX512-VNNI")] {
        if <rmx::backend::cpu::Cpu as rmx::backend::Backend>::check_precision(precision.parse().unwrap()).is_ok() {
            let reduced = embedding(precision);
            let cos: f64 = f32.iter().zip(&reduced).map(|(a, b)| a * b).sum();
            assert!(cos > min_cos && cos < 1.0 - 1e-9, "cosine(f32, {precision}) = {cos}");
        } else {
            let o = rmx(&["embed", "--precision", precision], input);
            assert_eq!(o.status.code(), Some(2));
            assert!(stderr(&o).contains(feature), "{}", stderr(&o));
        }
    }
}

#[test]
fn build_inspect_verify_query_round_trip() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-roundtrip");
    let (o, index) = build_index(&dir, RELATIONS);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let idx = index.to_str().unwrap();
    let inspect = rmx(&["index", "inspect", idx, "--json"], "");
    let info: serde_json::Value = serde_json::from_str(stdout(&inspect).trim()).unwrap();
    assert_eq!((info["relations"].as_u64(), info["dim"].as_u64(), info["search"].as_str()), (Some(4), Some(1153), Some("exact")));
    assert_eq!(rmx(&["index", "verify", idx], "").status.code(), Some(0));

    let flags = rmx(
        &["query", "--index", idx, "-k", "2", "--text", "Marie Curie married Pierre Curie in 1895.", "--head", "Marie Curie", "--tail", "Pierre Curie"],
        "",
    );
    assert_eq!(flags.status.code(), Some(0), "{}", stderr(&flags));
    let answer: serde_json::Value = serde_json::from_str(stdout(&flags).trim()).unwrap();
    let top = &answer["results"][0];
    assert_eq!(top["id"], "P26");
    let (score, parts) = (top["score"].as_f64().unwrap(), &top["parts"]);
    let w = rmx::model::zero_shot::WEIGHTS;
    assert!(info["fingerprint"].as_str().unwrap().contains(&format!("weights={},{},{}", w.context, w.head, w.tail)));
    let part = |name: &str| parts[name].as_f64().unwrap();
    let recombined = w.context as f64 * part("context") + w.head as f64 * part("head") + w.tail as f64 * part("tail");
    assert!((score - recombined).abs() < 1e-4, "score {score} vs parts {recombined}");

    // The same instance in every input form gives the same answer; bad lines are skipped.
    let stream = [
        r#"{"text":"Marie Curie married Pierre Curie in 1895.","head":"Marie Curie","tail":"Pierre Curie"}"#,
        r#"{"text":"Marie Curie married Pierre Curie in 1895.","head":[0,11],"tail":[20,32]}"#,
        r#"{"tokens":["Marie","Curie","married","Pierre","Curie","in","1895","."],"h":{"pos":[0,2]},"t":{"pos":[3,5]}}"#,
        "{broken",
    ]
    .join("\n");
    let o = rmx(&["query", "--index", idx, "-k", "2"], &stream);
    assert_eq!(o.status.code(), Some(1));
    let answers: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0]["results"], answers[1]["results"]);
    assert_eq!(answers[2]["results"][0]["id"], "P26");
    assert!(stderr(&o).contains("<stdin>:4: invalid JSON"));
}

/// Relations described by text alone (Wikidata's label and description).
const TEXT_ONLY: &str = r#"{"id":"P19","name":"place of birth","description":"most specific known birth location of a person, animal or fictional character"}
{"id":"P569","name":"date of birth","description":"date on which the subject was born"}
{"id":"P214","name":"VIAF ID","description":"identifier for the Virtual International Authority File database"}
{"id":"P1953","name":"Discogs artist ID","description":"identifier for a band or person in the Discogs database"}
"#;

#[test]
fn text_only_relations_carry_a_hubness_bias_that_explains_the_score() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-textonly");
    let (o, index) = build_index(&dir, TEXT_ONLY);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let idx = index.to_str().unwrap();
    let o =
        rmx(&["query", "--index", idx, "-k", "4", "--text", "Ludwig van Beethoven was born in Bonn.", "--head", "Ludwig van Beethoven", "--tail", "Bonn"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let answer: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let w = rmx::model::zero_shot::WEIGHTS;
    for r in results {
        let part = |name: &str| r["parts"][name].as_f64().unwrap();
        assert_eq!(part("head"), 0.0, "a text-only relation has no head part: {r}");
        let bias = r["bias"].as_f64().expect("a text-only relation has a bias");
        assert!(bias != 0.0);
        let recombined = w.context as f64 * part("context") + w.tail as f64 * part("tail") + bias;
        assert!((r["score"].as_f64().unwrap() - recombined).abs() < 1e-4, "{r}");
    }
    let ids: Vec<&str> = results.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids[..2].contains(&"P19") && ids[..2].contains(&"P569"), "the birth relations before the identifiers: {ids:?}");
}

/// Labelled sentences in FewRel's format: two relations in `RELATIONS`, one (P40) not.
const LABELLED: &str = r#"{
 "P26": [{"tokens": ["Marie","Curie","married","Pierre","Curie","in","1895","."], "h": ["Marie Curie","Q7186",[[0,1]]], "t": ["Pierre Curie","Q37463",[[3,4]]]},
         {"tokens": ["Barack","Obama","and","his","wife","Michelle","Obama","."], "h": ["Barack Obama","Q76",[[0,1]]], "t": ["Michelle Obama","Q13133",[[5,6]]]}],
 "P19": [{"tokens": ["Ludwig","van","Beethoven","was","born","in","Bonn","."], "h": ["Beethoven","Q255",[[0,1,2]]], "t": ["Bonn","Q586",[[6]]]}],
 "P40": [{"tokens": ["Johann","Sebastian","Bach","was","the","father","of","Carl","Philipp","Emanuel","Bach","."], "h": ["Bach","Q1339",[[0,1,2]]], "t": ["C. P. E. Bach","Q76485",[[7,8,9,10]]]}]
}"#;

#[test]
fn calibrate_inspect_query_and_evaluate_no_relation() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-calibrate");
    let (o, index) = build_index(&dir, RELATIONS);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let idx = index.to_str().unwrap();
    let labelled = dir.join("labelled.json");
    std::fs::write(&labelled, LABELLED).unwrap();
    let labelled = labelled.to_str().unwrap();
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--index", idx, "--text", "Marie Curie married Pierre Curie in 1895.", "--head", "Marie Curie", "--tail", "Pierre Curie"];
        args.extend_from_slice(extra);
        let o = rmx(&args, "");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_str::<serde_json::Value>(stdout(&o).trim()).unwrap()
    };
    let inspect = || serde_json::from_str::<serde_json::Value>(stdout(&rmx(&["index", "inspect", idx, "--json"], "")).trim()).unwrap();

    // Uncalibrated: the best relation is the answer, unless --min-score says otherwise.
    assert!(inspect()["calibration"].is_null());
    assert_eq!(query(&[])["relation"], "P26");
    assert!(query(&["--min-score", "10"])["relation"].is_null());
    assert_eq!(query(&["--min-score", "-10"])["relation"], "P26");
    assert_eq!(rmx(&["query", "--index", idx, "--min-score", "NaN"], "").status.code(), Some(2));

    let o = rmx(&["index", "calibrate", idx, "--data", labelled], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((c["answerable"].as_u64(), c["unanswerable"].as_u64()), (Some(3), Some(1)));
    let min_score = c["min_score"].as_f64().unwrap();
    assert_eq!(inspect()["calibration"]["min_score"].as_f64().map(|x| x as f32), Some(min_score as f32));
    let text = stdout(&rmx(&["index", "inspect", idx], ""));
    assert!(text.contains(&format!("min score      {min_score}")), "{text}");

    // The stored threshold is the default: the P26 sentence scores above or below it.
    let answer = query(&[]);
    let best = answer["results"][0]["score"].as_f64().unwrap();
    assert_eq!(answer["relation"].is_null(), best < min_score, "{answer} vs {min_score}");

    // eval --index: P40 is not in the index; P19's two sentences limit with --sentences.
    let o = rmx(&["eval", "--index", idx, "--data", labelled, "--json", "-k", "4"], "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((e["sentences"].as_u64(), e["answerable"].as_u64(), e["k"].as_u64()), (Some(4), Some(3), Some(4)));
    assert_eq!(e["min_score"].as_f64(), Some(min_score));
    assert!((e["accuracy"].as_f64().unwrap() - c["accuracy"].as_f64().unwrap()).abs() < 1e-6, "eval and calibrate agree: {e} {c}");
    let o = rmx(&["eval", "--index", idx, "--data", labelled, "--json", "--sentences", "1..2", "--min-score", "10"], "");
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((e["sentences"].as_u64(), e["accuracy"].as_f64()), (Some(1), Some(0.0)), "only P26's second sentence, answered no relation: {e}");

    // A damaged calibration file is a clear error, not a silent default.
    let file = index.join("calibration.json");
    let damaged = std::fs::read_to_string(&file).unwrap().replace("labelled.json", "other.json");
    std::fs::write(&file, damaged).unwrap();
    let o = rmx(&["query", "--index", idx, "--text", "A met B.", "--head", "A", "--tail", "B"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
}

#[test]
fn every_bad_query_is_reported_and_the_rest_answered() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-badquery");
    let (_, index) = build_index(&dir, RELATIONS);
    let long = "word ".repeat(600);
    let cases = [
        (r#"{"text":"Anna met Anna.","head":"Anna","tail":"met"}"#, "occurs 2 times"),
        (r#"{"text":"Anna met Bob.","head":"Carl","tail":"Bob"}"#, "does not occur"),
        (r#"{"text":"Anna met Bob.","tail":"Bob"}"#, "missing field \"head\""),
        (r#"{"text":"Anna met Bob.","head":[0,6],"tail":[4,8]}"#, "overlap"),
        (r#"{"text":"Anna met Bob.","head":[0,4],"tail":[9,99]}"#, "outside the text"),
        (r#"{"tokens":["a","b"],"h":{"pos":[0,1]},"t":{"pos":[1,5]}}"#, "beyond"),
        (r#"{"text":"Anna met Bob.","head":[0,4]}"#, "missing field \"tail\""),
        (&*format!(r#"{{"text":"Anna met Bob {long}","head":"Anna","tail":"Bob"}}"#), "the model takes at most"),
    ];
    let mut stream = String::from("{\"text\":\"Anna married Bob.\",\"head\":\"Anna\",\"tail\":\"Bob\"}\n");
    for (line, _) in &cases {
        stream.push_str(line);
        stream.push('\n');
    }
    let o = rmx(&["query", "--index", index.to_str().unwrap()], &stream);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).lines().count(), 1, "only the good line is answered");
    let err = stderr(&o);
    for (i, (_, reason)) in cases.iter().enumerate() {
        let prefix = format!("<stdin>:{}: ", i + 2);
        let line = err.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no message for line {}: {err}", i + 2));
        assert!(line.contains(reason), "line {}: {line:?} lacks {reason:?}", i + 2);
    }
}

#[test]
fn bad_description_files() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-baddesc");
    let mixed = format!("{RELATIONS}{{bad json\n{{\"id\":\"P26\",\"description\":\"dup\"}}\n{{\"id\":\"P9\"}}\n");
    let relations = |o: &Output| -> String {
        let info = rmx(&["index", "inspect", dir.join("index").to_str().unwrap(), "--json"], "");
        assert_eq!(info.status.code(), Some(0), "{}", stderr(&info));
        let v: serde_json::Value = serde_json::from_str(&stdout(&info)).unwrap();
        format!("{} ({})", v["relations"], stderr(o))
    };
    // An existing index of 2 relations; a rebuild with rejected lines writes nothing.
    let (o, index) = build_index(&dir, &RELATIONS.lines().take(2).map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let before = std::fs::read(index.join("index.rmx")).unwrap();
    let (o, _) = build_index(&dir, &mixed);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("relations.jsonl:5: invalid relation"), "{err}");
    assert!(err.contains("relations.jsonl:6: duplicate relation id \"P26\""), "{err}");
    assert!(err.contains("relations.jsonl:7: invalid relation: missing field `description`"), "{err}");
    assert!(err.contains("3 line(s) rejected; nothing was written"), "{err}");
    assert_eq!(std::fs::read(index.join("index.rmx")).unwrap(), before, "a refused build changed the index");
    assert!(relations(&o).starts_with("2 "));
    // --skip-invalid builds from the valid lines, still exit 1 with every rejected line.
    let o = rmx(&["index", "build", dir.join("relations.jsonl").to_str().unwrap(), "-o", index.to_str().unwrap(), "--skip-invalid"], "");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    for line in [5, 6, 7] {
        assert!(stderr(&o).contains(&format!("relations.jsonl:{line}: ")), "{}", stderr(&o));
    }
    assert!(relations(&o).starts_with("4 "));

    // An empty file and a file of only bad lines are fatal; the existing index stays as it was.
    let before = std::fs::read(index.join("index.rmx")).unwrap();
    for bad in ["", "{nope\n"] {
        std::fs::write(dir.join("relations.jsonl"), bad).unwrap();
        let o = rmx(&["index", "build", dir.join("relations.jsonl").to_str().unwrap(), "-o", index.to_str().unwrap()], "");
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(std::fs::read(index.join("index.rmx")).unwrap(), before, "a failed rebuild changed the index");
    }
    // stdin input
    let o = rmx(&["index", "build", "-", "-o", dir.join("from-stdin").to_str().unwrap()], RELATIONS);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn damaged_or_foreign_indexes_are_clear_errors() {
    if default_model().is_none() {
        return;
    }
    let dir = TempDir::new("cli-damaged");
    let (_, index) = build_index(&dir, RELATIONS);
    let data = index.join("index.rmx");
    let good = std::fs::read(&data).unwrap();
    let query = ["query", "--index", index.to_str().unwrap(), "--text", "Anna married Bob.", "--head", "Anna", "--tail", "Bob"];

    // Built with another encoder: the tiny test model.
    let tiny = fixture("tiny_bert");
    let o = rmx(&["query", "--model", tiny.to_str().unwrap(), "--index", index.to_str().unwrap(), "--text", "a b", "--head", "a", "--tail", "b"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).to_lowercase().contains("model"), "{}", stderr(&o));

    let mut newer = good.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let mut flipped_header = good.clone();
    flipped_header[30] ^= 0x40;
    let inspect: serde_json::Value = serde_json::from_str(&stdout(&rmx(&["index", "inspect", index.to_str().unwrap(), "--json"], ""))).unwrap();
    assert_eq!(inspect["sections"][0]["name"], "vectors");
    let mut flipped_vectors = good.clone();
    flipped_vectors[inspect["sections"][0]["offset"].as_u64().unwrap() as usize + 100] ^= 0x01;
    for (what, bytes, expect) in
        [("truncated", good[..good.len() / 2].to_vec(), "trunc"), ("newer version", newer, "version"), ("flipped header byte", flipped_header, "checksum")]
    {
        std::fs::write(&data, &bytes).unwrap();
        let o = rmx(&query, "");
        assert_eq!(o.status.code(), Some(2), "{what}: {}", stderr(&o));
        assert!(stderr(&o).to_lowercase().contains(expect), "{what}: {}", stderr(&o));
    }
    // A flipped vector byte fails the query that reads it (never a changed answer), and a
    // full verification.
    std::fs::write(&data, &flipped_vectors).unwrap();
    let o = rmx(&query, "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("corrupt index: vectors: block 0"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty(), "answered from a damaged index: {}", stdout(&o));
    let o = rmx(&["index", "verify", index.to_str().unwrap()], "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::write(&data, &good).unwrap();
    assert_eq!(rmx(&query, "").status.code(), Some(0));
}

/// `--device cuda` in a build without CUDA exits 2 with one line saying why, before reading
/// any input, on every command that runs the model; `RMX_DEVICE=cuda` does the same.
#[test]
fn cuda_without_cuda_is_one_line_and_exit_2() {
    if cfg!(any(feature = "cuda", feature = "cuda-emu")) {
        println!("skipped: this build has CUDA");
        return;
    }
    let commands: [&[&str]; 6] = [
        &["embed"],
        &["bench"],
        &["query", "--index", "/nonexistent", "--text", "a b", "--head", "a", "--tail", "b"],
        &["index", "build", "/nonexistent.jsonl", "-o", "/nonexistent-index"],
        &["eval", "--data", "/nonexistent.json", "--descriptions", "/nonexistent.json", "--relations", "P1"],
        &["train", "--data", "/nonexistent.json", "--descriptions", "/nonexistent.json", "--unseen", "none", "-o", "/nonexistent-ck"],
    ];
    for args in commands {
        let o = rmx(&[args, &["--device", "cuda"]].concat(), "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "rmx: error: device: CUDA unavailable: this rmx was built without it (cargo build --release --features cuda)\n", "{args:?}");
    }
    let mut env = Command::new(env!("CARGO_BIN_EXE_rmx"));
    let o = env.arg("embed").env("RMX_DEVICE", "cuda").stdin(Stdio::null()).output().unwrap();
    assert_eq!((o.status.code(), stderr(&o).lines().count()), (Some(2), 1), "{}", stderr(&o));
    let o = rmx(&["embed", "--device", "tpu"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("expected cpu or cuda"), "{}", stderr(&o));
}
