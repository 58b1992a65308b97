//! A model's `config.json` (and `sentence_bert_config.json`) as the model loader reads them:
//! the input replaces the tiny fixture model's config, and the whole model is loaded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmx_fuzz::ScratchModel;

fuzz_target!(|data: &[u8]| {
    let model = ScratchModel::get();
    let (config, sentence) = rmx_fuzz::split(data);
    model.write("config.json", config);
    model.write("sentence_bert_config.json", sentence);
    let _ = rmx::model::config::BertConfig::load(&model.dir().join("config.json"));
    let _ = rmx::model::rematch::Matcher::<rmx::backend::cpu::Cpu>::load(model.dir());
});
