//! Query lines in all four forms, parsed and then marked with the tiny fixture model's
//! tokenizer (what `rmx query` does before encoding).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmx::backend::cpu::Cpu;
use rmx::model::rematch::Matcher;
use std::sync::OnceLock;

fn matcher() -> &'static Matcher<Cpu> {
    static M: OnceLock<Matcher<Cpu>> = OnceLock::new();
    M.get_or_init(|| Matcher::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny_bert")).expect("tiny model"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    if let Ok(instance) = rmx::data::instance::parse_instance(line) {
        let _ = matcher().prepare(&instance);
    }
});
