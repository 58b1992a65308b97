//! The "no relation" threshold of an index: answers whose best score is below it are "no
//! relation". It is chosen on labelled sentences (`rmx index calibrate`) and stored beside
//! the index, in `calibration.json` inside the index directory:
//!
//! `{"version":1,"calibration":{"min_score":…,"fingerprint":…,"relations":…,…},"xxh64":"…"}`
//!
//! `xxh64` (seed 0, 16 hex digits) covers the compact JSON of `calibration`; the file is
//! written to a temporary name, fsynced and renamed into place, so a reader sees the old
//! file or the new one. It names the index's fingerprint and relation count: a file that
//! does not match its index is an error. Rebuilding an index replaces the whole directory,
//! so a rebuilt index starts uncalibrated. The index file itself (`index.rmx`) is untouched.
use crate::error::{Error, Result};
use rmx_index::xxh64;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE: &str = "calibration.json";
const VERSION: u32 = 1;

/// A calibrated threshold and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Best scores below this answer "no relation".
    pub min_score: f32,
    /// The fingerprint of the index it was chosen for.
    pub fingerprint: String,
    /// The index's number of relations.
    pub relations: usize,
    /// The labelled data it was chosen on, as given.
    pub data: String,
    /// Sentences whose gold relation is in the index, and those whose gold is not.
    pub answerable: usize,
    pub unanswerable: usize,
    /// Accuracy on that data with "no relation" as a class, at `min_score`.
    pub accuracy: f32,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    calibration: Calibration,
    xxh64: String,
}

fn checksum(c: &Calibration) -> String {
    format!("{:016x}", xxh64(&serde_json::to_vec(c).expect("a calibration serialises"), 0))
}

pub fn path(index_dir: &Path) -> PathBuf {
    index_dir.join(FILE)
}

/// The calibration of the index in `index_dir` (`None` when it has none), checked against
/// the index's fingerprint and relation count.
pub fn load(index_dir: &Path, fingerprint: &str, relations: usize) -> Result<Option<Calibration>> {
    let path = path(index_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    // A damaged or foreign calibration file is a damaged index directory (RMX_ERR_INDEX_CORRUPT).
    let bad = |why: String| {
        Error::Index(rmx_index::Error::Corrupt {
            path: path.clone(),
            section: "calibration",
            reason: format!("{why} (recalibrate with rmx index calibrate, or delete the file)"),
        })
    };
    let stored: Stored = serde_json::from_str(&text).map_err(|e| bad(format!("invalid calibration file: {e}")))?;
    if stored.version > VERSION {
        return Err(bad(format!("calibration format version {} is newer than this rmx reads ({VERSION})", stored.version)));
    }
    if checksum(&stored.calibration) != stored.xxh64 {
        return Err(bad("checksum mismatch: the file is damaged".into()));
    }
    let c = stored.calibration;
    if c.fingerprint != fingerprint || c.relations != relations {
        return Err(bad(format!("calibrated for another index ({} relations, model {})", c.relations, c.fingerprint)));
    }
    if !c.min_score.is_finite() {
        return Err(bad("the threshold is not a finite number".into()));
    }
    Ok(Some(c))
}

/// Writes `calibration` into `index_dir` atomically (temporary file, fsync, rename, fsync of
/// the directory).
pub fn save(index_dir: &Path, calibration: &Calibration) -> Result<()> {
    let stored = Stored { version: VERSION, calibration: calibration.clone(), xxh64: checksum(calibration) };
    let final_path = path(index_dir);
    let tmp = index_dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&stored).expect("a calibration serialises").as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &final_path)?;
        std::fs::File::open(index_dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(&final_path, e)
    })
}

/// One labelled sentence's best answer: its score, whether it is the gold relation, and
/// whether the gold relation is in the index at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestAnswer {
    pub score: f32,
    pub correct: bool,
    pub answerable: bool,
}

/// Whether a best answer scoring `score` names its relation (else it is "no relation"):
/// at or above `min_score`, or always without a threshold. The one rule for answers, the
/// evaluation and the calibration.
pub fn names_relation(score: f32, min_score: Option<f32>) -> bool {
    min_score.is_none_or(|t| score >= t)
}

/// Whether `answer` is right with threshold `min_score`: the gold relation above it, or "no
/// relation" (below it) when the gold relation is not in the index.
pub fn is_right(answer: &BestAnswer, min_score: f32) -> bool {
    if names_relation(answer.score, Some(min_score)) {
        answer.answerable && answer.correct
    } else {
        !answer.answerable
    }
}

/// The threshold with the highest accuracy ("no relation" as a class) on `answers`, and that
/// accuracy: the midpoint between two neighbouring best scores (below all of them or above
/// all of them at the ends); the lowest such threshold among ties.
pub fn choose_threshold(answers: &[BestAnswer]) -> (f32, f32) {
    let mut scores: Vec<f32> = answers.iter().map(|a| a.score).collect();
    scores.sort_by(f32::total_cmp);
    scores.dedup();
    let mut candidates = Vec::with_capacity(scores.len() + 1);
    candidates.push(scores.first().map_or(0.0, |s| s - 1e-3));
    candidates.extend(scores.windows(2).map(|w| 0.5 * (w[0] + w[1])));
    candidates.push(scores.last().map_or(0.0, |s| s + 1e-3));
    let accuracy = |t: f32| answers.iter().filter(|a| is_right(a, t)).count() as f32 / answers.len().max(1) as f32;
    candidates.into_iter().map(|t| (t, accuracy(t))).fold((0.0, f32::NEG_INFINITY), |best, c| if c.1 > best.1 { c } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(score: f32, correct: bool, answerable: bool) -> BestAnswer {
        BestAnswer { score, correct, answerable }
    }

    #[test]
    fn the_threshold_separates_answerable_from_unanswerable() {
        // Two right answers at 0.6 and 0.5, a wrong one at 0.45, two unanswerable at 0.3 / 0.4.
        let answers = [answer(0.6, true, true), answer(0.5, true, true), answer(0.45, false, true), answer(0.3, false, false), answer(0.4, true, false)];
        let (t, acc) = choose_threshold(&answers);
        assert!(t > 0.4 && t < 0.5, "{t}: between the unanswerable ones and the right ones");
        assert_eq!(acc, 0.8, "the wrong answerable one is wrong either way");
        assert!(!is_right(&answer(0.4, true, false), 0.3), "above the threshold, an unanswerable sentence is wrong");
        assert_eq!(choose_threshold(&[answer(0.2, false, false)]).1, 1.0, "all unanswerable: above every score");
    }

    #[test]
    fn stored_calibration_round_trips_and_is_checked() {
        let dir = crate::testutil::TempDir::new("calibration");
        let c = Calibration {
            min_score: 0.3125,
            fingerprint: "fp".into(),
            relations: 72,
            data: "val.json".into(),
            answerable: 10,
            unanswerable: 12,
            accuracy: 0.75,
        };
        assert_eq!(load(&dir, "fp", 72).unwrap(), None, "no file: uncalibrated");
        save(&dir, &c).unwrap();
        assert_eq!(load(&dir, "fp", 72).unwrap(), Some(c.clone()));
        assert!(load(&dir, "fp", 71).unwrap_err().to_string().contains("another index"));
        assert!(load(&dir, "other", 72).is_err());
        let text = std::fs::read_to_string(path(&dir)).unwrap().replace("0.3125", "0.3126");
        std::fs::write(path(&dir), text).unwrap();
        assert!(load(&dir, "fp", 72).unwrap_err().to_string().contains("checksum"));
        let leftovers: Vec<_> = std::fs::read_dir(&*dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [FILE], "no temporary file is left behind");
    }
}
