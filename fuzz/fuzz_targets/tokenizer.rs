//! A model's `tokenizer.json`, loaded and used to tokenize a short sentence.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmx_fuzz::ScratchModel;

fuzz_target!(|data: &[u8]| {
    let model = ScratchModel::get();
    model.write("tokenizer.json", data);
    if let Ok(t) = rmx::text::tokenizer::TextTokenizer::load(&model.dir().join("tokenizer.json")) {
        let _ = t.encode("Marie Curie married Pierre Curie.");
        let _ = t.encode_words(&["Marie", "Curie", "married", "Pierre"]);
    }
});
