//! Crash safety of `rmx index build`: the binary is killed (SIGKILL) at random points of a
//! rebuild over an existing index. Whatever the moment, the destination holds either the
//! old index, unchanged, or the complete new one; a temporary directory left behind never
//! holds a readable half-index; and the next build into the same place removes those
//! temporary directories and says so.
mod common;

use common::{fixture, TempDir};
use rmx_index::Index;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// `n` relations with distinct ids and descriptions.
fn relations(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":\"R{i}\",\"name\":\"relation {i}\",\"description\":\"the subject is related to the object in way number {i}\"}}\n"))
        .collect()
}

fn build_command(input: &Path, output: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rmx"));
    cmd.args(["index", "build"]).arg(input).arg("-o").arg(output).arg("--model").arg(fixture("tiny_bert")).args(["--search", "hnsw"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

fn run_build(input: &Path, output: &Path) -> String {
    let out = build_command(input, output).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build failed: {stderr}");
    stderr
}

/// The temporary directories of builds into `dir/index` in `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    temporaries(dir, "index")
}

/// The temporary directories of builds into `dir/name` in `dir`.
fn temporaries(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!(".{name}.tmp-");
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).map(|e| e.path()).collect();
    found.sort();
    found
}

/// Waits until a temporary directory of a build into `dir/name` appears (or `child` ends);
/// returns when, since the call.
fn wait_for_temporary(dir: &Path, name: &str, child: &mut std::process::Child) -> Option<std::time::Duration> {
    let start = Instant::now();
    while start.elapsed().as_secs() < 60 {
        if !temporaries(dir, name).is_empty() {
            return Some(start.elapsed());
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    None
}

/// xorshift64*: the kill delays (the seed is printed, so a failure can be replayed).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn a_build_killed_at_any_point_leaves_the_old_index_or_the_new_one() {
    let dir = TempDir::new("crash");
    let small = dir.write("small.jsonl", &relations(50));
    let large = dir.write("large.jsonl", &relations(6000));
    let index = dir.join("index");
    run_build(&small, &index);
    let old = std::fs::read(index.join("index.rmx")).unwrap();

    // How long an uninterrupted build takes here, and when it starts writing (its temporary
    // directory appears, after encoding): half the kills land anywhere in 0 .. 1.2 × the
    // whole, half in the writing phase.
    let start = Instant::now();
    let mut child = build_command(&large, &dir.join("timing")).spawn().unwrap();
    let writing = wait_for_temporary(&dir, "timing", &mut child).expect("the build writes into a temporary directory");
    assert!(child.wait().unwrap().success());
    let full = start.elapsed();
    let writing_phase = full.saturating_sub(writing);
    let new_count = Index::open(dir.join("timing")).unwrap().len();
    assert_eq!(new_count, 6000);

    let seed = std::env::var("RMX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
    println!("full build {full:?}, writing from {writing:?}; RMX_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut current = old;
    let (mut replaced, mut kept) = (0, 0);
    for trial in 0..12 {
        let mut child = build_command(&large, &index).spawn().unwrap();
        let started = Instant::now();
        if trial % 2 == 1 {
            wait_for_temporary(&dir, "index", &mut child);
            std::thread::sleep(writing_phase.mul_f64(1.2 * rng.unit()));
        } else {
            std::thread::sleep(full.mul_f64(1.2 * rng.unit()));
        }
        let delay = started.elapsed();
        let _ = child.kill(); // SIGKILL; the build may have finished already
        let status = child.wait().unwrap();
        let now = std::fs::read(index.join("index.rmx")).unwrap();
        let idx = Index::open(&index).unwrap_or_else(|e| panic!("trial {trial} ({delay:?}, {status}): destination unreadable: {e}"));
        idx.verify().unwrap_or_else(|e| panic!("trial {trial} ({delay:?}): destination damaged: {e}"));
        let outcome = if now == current {
            kept += 1;
            "unchanged"
        } else {
            assert_eq!(idx.len(), new_count, "trial {trial} ({delay:?}): neither the old index nor the whole new one");
            replaced += 1;
            current = now;
            "replaced by the whole new index"
        };
        for tmp in leftovers(&dir) {
            // A killed build's directory: nothing, a file still being written (never a valid
            // index: its header is written last), or a complete index not yet moved in.
            if let Ok(half) = Index::open(&tmp) {
                half.verify().unwrap_or_else(|e| panic!("trial {trial}: {} opens but is damaged: {e}", tmp.display()));
            }
        }
        println!("trial {trial}: killed after {delay:?} ({status}); destination {outcome}");
    }
    println!("{kept} kills kept the old index, {replaced} came after the new one was in place");

    let left = leftovers(&dir);
    println!("{} temporary directories left by the kills", left.len());
    let stderr = run_build(&small, &index);
    for tmp in &left {
        assert!(stderr.contains(&format!("removed {}", tmp.display())), "{} not reported as swept: {stderr}", tmp.display());
    }
    assert!(leftovers(&dir).is_empty(), "still left after the next build: {:?}", leftovers(&dir));
    assert_eq!(Index::open(&index).unwrap().len(), 50);
}

/// A temporary directory of a build that is still running (this process) is not swept, nor
/// is a directory that holds anything but an index data file.
#[test]
fn live_or_foreign_temporary_directories_are_left_alone() {
    let dir = TempDir::new("crash-live");
    let small = dir.write("small.jsonl", &relations(5));
    let mine = dir.join(format!(".index.tmp-{}-1", std::process::id()));
    let foreign = dir.join(".index.tmp-999999999-1");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "not an index").unwrap();
    let dead = dir.join(".index.tmp-999999998-1");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join("index.rmx"), b"RMX").unwrap();
    let stderr = run_build(&small, &dir.join("index"));
    assert!(mine.is_dir() && foreign.join("notes.txt").is_file(), "{stderr}");
    assert!(!dead.exists() && stderr.contains("removed"), "{stderr}");
}
