//! Relation description files: JSON Lines, RE-Matching's JSON list, pid2name maps.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(parsed) = rmx::data::descriptions::parse_descriptions(text, "fuzz") {
            assert!(parsed.rejected.iter().all(|r| r.starts_with("fuzz:")), "a rejection without its place: {:?}", parsed.rejected);
        }
    }
});
