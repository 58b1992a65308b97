//! librmx from C: `tests/c/capi_test.c` is compiled with the system C compiler (`$CC`, else
//! `cc`) against the `librmx.a` this `cargo test` built, and run:
//! - every function and error path (tiny fixture model: runs everywhere);
//! - answers identical to `rmx query` for the same inputs (tiny model, and the default model
//!   when installed), one query at a time and in a batch;
//! - 8 pthreads querying one engine get the single-threaded answers bit for bit;
//! - the whole of the above under valgrind: no errors, nothing definitely or indirectly lost;
//! - `examples/c/rmx_example.c`, built with the README's commands (static and shared).
//!
//! Panics are tested from Rust (nothing in the C API can be made to panic on purpose).
mod common;

use rmx::capi::rmx_status::{self, *};
use serde_json::Value;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tiny_model() -> PathBuf {
    common::fixture("tiny_bert")
}

/// Where cargo put the library this test links: beside the test executable
/// (`target/<profile>/deps`), where `cargo test` writes `librmx.a` and `librmx.so`.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("deps directory").to_path_buf();
    assert!(dir.join("librmx.a").is_file(), "{}/librmx.a is missing: is crate-type staticlib set?", dir.display());
    dir
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cc() -> Command {
    Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
}

/// `tests/c/capi_test.c` linked statically against librmx.a, built once per test run.
fn capi_test() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("capi/capi_test");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        check(
            cc().args(["-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
                .arg(root().join("tests/c/capi_test.c"))
                .arg("-I")
                .arg(root().join("include"))
                .arg(lib_dir().join("librmx.a"))
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&out),
        );
        out
    })
}

/// A copy of the tiny model that differs by one byte of its config: another fingerprint.
fn other_model(dir: &Path) -> PathBuf {
    let other = dir.join("other_model");
    std::fs::create_dir_all(&other).unwrap();
    for f in std::fs::read_dir(tiny_model()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, other.join(f.file_name().unwrap())).unwrap();
    }
    let config = other.join("config.json");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push('\n');
    std::fs::write(&config, text).unwrap();
    other
}

fn api_command(dir: &Path) -> Command {
    let mut cmd = Command::new(capi_test());
    cmd.arg("api").arg(tiny_model()).arg(other_model(dir)).arg(dir.join("work")).env("RMX_MODEL", tiny_model());
    std::fs::create_dir_all(dir.join("work")).unwrap();
    cmd
}

#[test]
fn c_every_function_and_error_path() {
    let dir = scratch("api");
    let out = check(&mut api_command(&dir));
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

const DESCRIPTIONS: &str = r#"{"id":"P26","name":"spouse","description":"the person is married to the other person","head":["person"],"tail":["person","spouse"]}
{"id":"P19","name":"place of birth","description":"the person was born in the place","head":["person"],"tail":["city","place"]}
{"id":"P108","name":"employer","description":"the person works for the organization","head":["person"],"tail":["organization","company"]}
{"id":"P17","name":"country","description":"the place is located in the country","head":["place"],"tail":["country"]}
{"id":"P36","name":"capital","description":"the city is the capital of the country"}
"#;

/// (text, head, tail): short sentences (valgrind runs them too), one not ASCII, one with
/// the tail before the head.
const INSTANCES: [(&str, &str, &str); 5] = [
    ("Marie Curie married Pierre Curie in Paris.", "Marie Curie", "Pierre Curie"),
    ("Pierre Curie worked for the Sorbonne.", "Pierre Curie", "Sorbonne"),
    ("Zoë Saldaña was born in Passaic.", "Zoë Saldaña", "Passaic"),
    ("Paris is the capital of France.", "France", "Paris"),
    ("Warsaw lies in Poland.", "Warsaw", "Poland"),
];

/// The instances file of capi_test: byte spans, a tab, the text.
fn write_instances(path: &Path, instances: &[(&str, &str, &str)]) {
    let span = |text: &str, entity: &str| {
        let start = text.find(entity).unwrap();
        (start, start + entity.len())
    };
    let lines: String = instances
        .iter()
        .map(|(text, head, tail)| {
            let ((hs, he), (ts, te)) = (span(text, head), span(text, tail));
            format!("{hs} {he} {ts} {te}\t{text}\n")
        })
        .collect();
    std::fs::write(path, lines).unwrap();
}

/// One match as both sides report it; floats compared bit for bit.
#[derive(Debug, PartialEq)]
struct Answer {
    line: usize,
    id: String,
    name: String,
    numbers: [f32; 4],
}

/// capi_test's output: "line id name score context head tail", floats as %.9g (exact f32).
fn parse_c(stdout: &[u8]) -> Vec<Answer> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 7, "bad capi_test line {l:?}");
            let num = |s: &str| s.parse::<f32>().unwrap();
            Answer { line: f[0].parse().unwrap(), id: f[1].into(), name: f[2].into(), numbers: [num(f[3]), num(f[4]), num(f[5]), num(f[6])] }
        })
        .collect()
}

/// `rmx query`'s JSON Lines (serde_json prints each f32 as its shortest exact decimal).
fn parse_cli(stdout: &[u8], line_offset: usize) -> Vec<Answer> {
    let mut answers = Vec::new();
    for l in String::from_utf8_lossy(stdout).lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let line = v["line"].as_u64().unwrap() as usize + line_offset;
        for r in v["results"].as_array().unwrap() {
            let num = |v: &Value| v.as_f64().unwrap() as f32;
            let p = &r["parts"];
            answers.push(Answer {
                line,
                id: r["id"].as_str().unwrap().into(),
                name: r["name"].as_str().unwrap().into(),
                numbers: [num(&r["score"]), num(&p["context"]), num(&p["head"]), num(&p["tail"])],
            });
        }
    }
    answers
}

fn rmx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rmx"))
}

/// The C answers for `model` (one rmx_query per instance, then one rmx_query_batch) equal
/// `rmx query --text` per instance and `rmx query` over all of them on stdin.
fn compare_with_cli(model: &Path, dir: &Path) {
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let index = dir.join("index");
    check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(model));
    let instances = dir.join("instances.txt");
    write_instances(&instances, &INSTANCES);
    let k = "3";

    let c = |how: &str| parse_c(&check(Command::new(capi_test()).arg("query").arg(model).arg(&index).arg(k).arg(&instances).arg(how)).stdout);
    let query = || {
        let mut cmd = rmx();
        cmd.arg("query").arg("--index").arg(&index).arg("--model").arg(model).args(["-k", k]);
        cmd
    };

    let mut one_by_one = Vec::new();
    for (i, (text, head, tail)) in INSTANCES.iter().enumerate() {
        one_by_one.extend(parse_cli(&check(query().args(["--text", text, "--head", head, "--tail", tail])).stdout, i));
    }
    let single = c("single");
    assert_eq!(single.len(), INSTANCES.len() * 3);
    assert_eq!(single, one_by_one, "rmx_query differs from rmx query --text");

    let stdin: String = INSTANCES.iter().map(|(text, head, tail)| format!("{}\n", serde_json::json!({"text": text, "head": head, "tail": tail}))).collect();
    std::fs::write(dir.join("instances.jsonl"), &stdin).unwrap();
    let batch_cli = parse_cli(&check(query().stdin(std::fs::File::open(dir.join("instances.jsonl")).unwrap())).stdout, 0);
    assert_eq!(c("batch"), batch_cli, "rmx_query_batch differs from rmx query over stdin");
    println!("{}: {} matches identical to rmx query (single and batch)", model.display(), single.len());
}

#[test]
fn c_answers_equal_rmx_query_tiny_model() {
    compare_with_cli(&tiny_model(), &scratch("cli-tiny"));
}

#[test]
fn c_answers_equal_rmx_query_default_model() {
    let Some(model) = common::default_model() else { return };
    compare_with_cli(&model, &scratch("cli-default"));
}

/// 8 pthreads, one engine, the real encoder (its kernels on rayon's pool): every answer
/// equals the single-threaded one bit for bit.
#[test]
fn c_eight_threads_get_single_threaded_answers() {
    let dir = scratch("threads");
    let model = common::default_model().unwrap_or_else(|| {
        eprintln!("(default model absent: threads test on the tiny model)");
        tiny_model()
    });
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let index = dir.join("index");
    check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(&model));
    let instances = dir.join("instances.txt");
    write_instances(&instances, &INSTANCES);
    let out = check(Command::new(capi_test()).arg("threads").arg(&model).arg(&index).args(["3"]).arg(&instances).args(["8", "3"]));
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Runs `cmd` under valgrind memcheck; asserts no error and no definite or indirect leak.
fn valgrind(cmd: &Command, label: &str) {
    let mut vg = Command::new("valgrind");
    vg.args(["--leak-check=full", "--error-exitcode=1", "--errors-for-leak-kinds=definite,indirect,possible"])
        .arg(format!("--suppressions={}", root().join("tests/c/valgrind.supp").display()))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => vg.env(k, v),
            None => vg.env_remove(k),
        };
    }
    let out = run(&mut vg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: Vec<&str> = stderr
        .lines()
        .filter(|l| ["definitely lost", "indirectly lost", "possibly lost", "All heap blocks", "ERROR SUMMARY"].iter().any(|k| l.contains(k)))
        .collect();
    println!("valgrind {label}:\n{}", summary.join("\n"));
    assert!(out.status.success(), "valgrind {label} failed ({}):\n{stderr}\n--- stdout\n{}", out.status, String::from_utf8_lossy(&out.stdout));
    let zero = |kind: &str| stderr.lines().filter(|l| l.contains(kind)).all(|l| l.contains(&format!("{kind}: 0 bytes")));
    assert!(zero("definitely lost") && zero("indirectly lost"), "valgrind {label}: leaks\n{stderr}");
}

#[test]
fn c_api_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "valgrind is not installed (scripts/test.sh installs it)");
        eprintln!("SKIPPED: valgrind not installed (apt-get install valgrind)");
        return;
    }
    let dir = scratch("valgrind");
    valgrind(&api_command(&dir), "api (tiny model)");
    // The real encoder, briefly: two short sentences, one at a time and as a batch.
    if let Some(model) = common::default_model() {
        let descriptions = dir.join("descriptions.jsonl");
        std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
        let index = dir.join("index-default");
        check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(&model));
        let instances = dir.join("instances.txt");
        write_instances(&instances, &INSTANCES[..2]);
        // Model "-": NULL model_dir, the default model.
        let mut cmd = Command::new(capi_test());
        cmd.arg("query").arg("-").arg(&index).arg("3").arg(&instances).arg("both");
        valgrind(&cmd, "query batch + single (default model)");
    }
}

/// The README's compile and link commands (static, then shared with an rpath), with the
/// library directory of this build; the programs run and answer.
#[test]
fn c_example_builds_with_the_readme_commands() {
    let dir = scratch("example");
    let lib = lib_dir();
    let source = root().join("examples/c/rmx_example.c");
    let include = root().join("include");
    let model = common::default_model().unwrap_or_else(tiny_model);
    let static_exe = dir.join("rmx_example");
    // cc examples/c/rmx_example.c -Iinclude target/release/librmx.a -lpthread -ldl -lm -o rmx_example
    check(cc().arg(&source).arg(format!("-I{}", include.display())).arg(lib.join("librmx.a")).args(["-lpthread", "-ldl", "-lm", "-o"]).arg(&static_exe));
    // cc examples/c/rmx_example.c -Iinclude -Ltarget/release -lrmx -Wl,-rpath,$PWD/target/release -o rmx_example
    let shared_exe = dir.join("rmx_example_so");
    check(
        cc().arg(&source)
            .arg(format!("-I{}", include.display()))
            .arg(format!("-L{}", lib.display()))
            .arg("-lrmx")
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .arg("-o")
            .arg(&shared_exe),
    );
    let mut outputs = Vec::new();
    for exe in [&static_exe, &shared_exe] {
        // As a user runs it: the library found through the rpath, not through the
        // LD_LIBRARY_PATH cargo sets for tests (which may list an older build first).
        let out = check(Command::new(exe).arg(&model).env_remove("LD_LIBRARY_PATH"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains("  1. P") && text.contains("  3. P"), "{}: {text}", exe.display());
        // The example leaves its index in a fresh /tmp/rmx_example.XXXXXX: remove it, and
        // compare the rest of the output between both builds.
        if let Some(index) = text.lines().find_map(|l| l.strip_prefix("index kept in ")) {
            let _ = std::fs::remove_dir_all(Path::new(index).parent().unwrap());
        }
        outputs.push(text.lines().filter(|l| !l.starts_with("index kept in")).collect::<Vec<_>>().join("\n"));
        print!("{text}");
    }
    assert_eq!(outputs[0], outputs[1], "static and shared builds answer differently");
}

/// An index built through the C API is byte for byte the one `rmx index build` writes.
#[test]
fn c_built_index_equals_cli_built_index() {
    let dir = scratch("same-index");
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let model = tiny_model();
    check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(dir.join("cli")).arg("--model").arg(&model));
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: three NUL-terminated strings alive for the call.
    let status = unsafe { rmx::capi::rmx_index_build(c(&model).as_ptr(), c(&descriptions).as_ptr(), c(&dir.join("c")).as_ptr()) };
    assert_eq!(status, RMX_OK);
    let read = |d: &str| std::fs::read(dir.join(d).join("index.rmx")).unwrap();
    assert!(read("cli") == read("c"), "the C API and the CLI build different indexes");
}

/// The threshold C sees is the calibrated one stored beside the index, -INFINITY without.
#[test]
fn c_min_score_is_the_calibrated_threshold() {
    let dir = scratch("min-score");
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let model = tiny_model();
    let index = dir.join("index");
    check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(&model));
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let min_score = || {
        let mut engine = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings alive for the call; `engine` is writable.
        assert_eq!(unsafe { rmx::capi::rmx_engine_open(c(&model).as_ptr(), c(&index).as_ptr(), &mut engine) }, RMX_OK, "{}", last_error());
        let mut out = 0.0f32;
        // SAFETY: a live engine and a writable float.
        assert_eq!(unsafe { rmx::capi::rmx_engine_min_score(engine, &mut out) }, RMX_OK);
        // SAFETY: the engine from rmx_engine_open, freed once.
        unsafe { rmx::capi::rmx_engine_free(engine) };
        out
    };
    assert_eq!(min_score(), f32::NEG_INFINITY, "uncalibrated");
    let opened = rmx_index::Index::open(&index).unwrap();
    let calibration = rmx::calibration::Calibration {
        min_score: 0.25,
        fingerprint: opened.fingerprint().to_string(),
        relations: opened.len(),
        data: "labelled.json".into(),
        answerable: 3,
        unanswerable: 4,
        accuracy: 0.5,
    };
    rmx::calibration::save(&index, &calibration).unwrap();
    assert_eq!(min_score(), 0.25);
    // SAFETY: NULL engine and output are reported, not dereferenced.
    assert_eq!(unsafe { rmx::capi::rmx_engine_min_score(std::ptr::null(), std::ptr::null_mut()) }, RMX_ERR_NULL_ARGUMENT);
}

/// The default model and the tiny fixture (a plain encoder too) refuse each other's index.
#[test]
fn index_of_another_model_is_a_model_mismatch() {
    let Some(default) = common::default_model() else { return };
    let dir = scratch("mismatch");
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    for (builder, opener) in [(tiny_model(), default.clone()), (default.clone(), tiny_model())] {
        let index = dir.join(builder.file_name().unwrap());
        check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(&builder));
        let mut engine = std::ptr::null_mut();
        // SAFETY: NUL-terminated strings alive for the call; `engine` is writable.
        let status = unsafe { rmx::capi::rmx_engine_open(c(&opener).as_ptr(), c(&index).as_ptr(), &mut engine) };
        assert_eq!(status, RMX_ERR_MODEL_MISMATCH, "{}: {}", index.display(), last_error());
        assert!(engine.is_null() && last_error().contains("rebuild the index"), "{}", last_error());
    }
}

/// Each damaged input reaches C as the status whose doc names it (`capi_test status`: open,
/// then rmx_query and rmx_query_batch when the open succeeds).
#[test]
fn c_each_failure_reaches_its_status() {
    let dir = scratch("statuses");
    let model = tiny_model();
    let descriptions = dir.join("descriptions.jsonl");
    std::fs::write(&descriptions, DESCRIPTIONS).unwrap();
    let index = dir.join("index");
    check(rmx().args(["index", "build"]).arg(&descriptions).arg("-o").arg(&index).arg("--model").arg(&model));
    let data = std::fs::read(index.join("index.rmx")).unwrap();
    let info = rmx_index::Index::open(&index).unwrap().info();

    // A checkpoint whose rmx.json holds an ensemble weight outside [0, 1): the model is unusable.
    let checkpoint = other_model(&dir);
    std::fs::write(checkpoint.join("rmx.json"), r#"{"format": 2, "alpha": 0.33, "description_encoder": ".", "zero_shot_weight": 1.5}"#).unwrap();
    // The model's fingerprint, but one more dimension.
    let fingerprint = rmx::model::rematch::Matcher::<rmx::backend::cpu::Cpu>::load(&model).unwrap().fingerprint().to_string();
    let wide = dir.join("wide-index");
    let options = rmx_index::IndexOptions { fingerprint, ..Default::default() };
    let mut writer = rmx_index::IndexWriter::create(&wide, info.dim + 1, options).unwrap();
    writer.add("P1", "one", "{}", &vec![0.0; info.dim + 1]).unwrap();
    writer.finish().unwrap();
    // One flipped bit in the vectors: opens (metadata intact), fails the query that reads it.
    let damaged = dir.join("damaged-index");
    std::fs::create_dir_all(&damaged).unwrap();
    let mut bytes = data.clone();
    bytes[info.sections[0].offset as usize + 5] ^= 0x20;
    std::fs::write(damaged.join("index.rmx"), bytes).unwrap();
    // One flipped bit in the names: caught on open.
    let bad_meta = dir.join("bad-meta-index");
    std::fs::create_dir_all(&bad_meta).unwrap();
    let mut bytes = data.clone();
    bytes[info.sections[2].offset as usize + 1] ^= 0x20;
    std::fs::write(bad_meta.join("index.rmx"), bytes).unwrap();

    // (model, index, [(call, status, text its last error holds)])
    type Case<'a> = (&'a Path, &'a Path, &'a [(&'a str, rmx_status, &'a str)]);
    let cases: [Case; 5] = [
        (&model, &index, &[("open", RMX_OK, ""), ("query", RMX_OK, ""), ("batch", RMX_OK, "")]),
        (&checkpoint, &index, &[("open", RMX_ERR_MODEL, "zero-shot weight 1.5 is outside [0, 1)")]),
        (&model, &wide, &[("open", RMX_ERR_MODEL_MISMATCH, "dimension")]),
        (&model, &damaged, &[("open", RMX_OK, ""), ("query", RMX_ERR_INDEX_CORRUPT, "vectors: block 0"), ("batch", RMX_ERR_INDEX_CORRUPT, "vectors")]),
        (&model, &bad_meta, &[("open", RMX_ERR_INDEX_CORRUPT, "meta heap")]),
    ];
    for (model, index, want) in cases {
        let out = check(Command::new(capi_test()).arg("status").arg(model).arg(index));
        let got: Vec<(String, i32, String)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.splitn(3, '\t').collect();
                (f[0].to_string(), f[1].parse().unwrap(), f[2].to_string())
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{}: {got:?}", index.display());
        for ((call, status, message), (want_call, want_status, needle)) in got.iter().zip(want) {
            assert_eq!((call.as_str(), *status), (*want_call, *want_status as i32), "{} with {}: {message}", index.display(), model.display());
            assert!(message.contains(needle), "{call} on {}: {message:?} lacks {needle:?}", index.display());
        }
    }
}

#[test]
fn status_strings_cover_every_value() {
    let text = |s: i32| unsafe { CStr::from_ptr(rmx::capi::rmx_status_str(s)) }.to_str().unwrap().to_string();
    let known: Vec<String> = (0..=RMX_ERR_DEVICE as i32).map(text).collect();
    assert_eq!(known[0], "ok");
    for (i, s) in known.iter().enumerate() {
        assert!(!s.is_empty() && s != "unknown status", "status {i}");
        assert_eq!(known.iter().filter(|t| *t == s).count(), 1, "status {i} shares its text");
    }
    for s in [-1, RMX_ERR_DEVICE as i32 + 1, 99, i32::MAX, i32::MIN] {
        assert_eq!(text(s), "unknown status");
    }
}

fn last_error() -> String {
    // SAFETY: rmx_last_error returns a NUL-terminated string valid until the next failure.
    unsafe { CStr::from_ptr(rmx::capi::rmx_last_error()) }.to_string_lossy().into_owned()
}

/// Panics: in the calling thread and in a rayon worker, caught, reported, not printed.
fn panic_cases() -> Vec<(rmx_status, String)> {
    use rayon::prelude::*;
    let mut seen = Vec::new();
    let status = rmx::capi::error::guard(|| panic!("boom in the caller"));
    seen.push((status, last_error()));
    let status = rmx::capi::error::guard(|| {
        (0..64).into_par_iter().for_each(|i| assert!(i != 63, "boom in a worker"));
        Ok(())
    });
    seen.push((status, last_error()));
    // Entry points returning a value give their fallback.
    let value = rmx::capi::error::guard_value(7usize, || panic!("boom in a value"));
    seen.push((if value == 7 { RMX_ERR_PANIC } else { RMX_OK }, last_error()));
    // Still usable after a panic.
    seen.push((rmx::capi::error::guard(|| Ok(())), last_error()));
    seen
}

#[test]
fn panics_become_rmx_err_panic() {
    let seen = panic_cases();
    assert_eq!(seen[0].0, RMX_ERR_PANIC);
    assert!(seen[0].1.contains("boom in the caller") && seen[0].1.contains("tests/capi.rs"), "{}", seen[0].1);
    assert_eq!(seen[1].0, RMX_ERR_PANIC);
    assert!(seen[1].1.contains("boom in a worker"), "{}", seen[1].1);
    assert_eq!(seen[2].0, RMX_ERR_PANIC);
    assert!(seen[2].1.contains("boom in a value"), "{}", seen[2].1);
    assert_eq!(seen[3].0, RMX_OK);
}

/// Run by `panics_print_nothing` in a child process (a no-op otherwise).
#[test]
fn panic_child() {
    if std::env::var_os("RMX_CAPI_PANIC_CHILD").is_some() {
        let seen = panic_cases();
        assert_eq!(seen.iter().filter(|(s, _)| *s == RMX_ERR_PANIC).count(), 3);
    }
}

#[test]
fn panics_print_nothing() {
    let out = check(
        Command::new(std::env::current_exe().unwrap()).args(["panic_child", "--exact", "--nocapture", "--test-threads=1"]).env("RMX_CAPI_PANIC_CHILD", "1"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("boom") && !stderr.contains("panicked"), "a caught panic printed:\n{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
