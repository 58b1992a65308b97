//! A trained checkpoint's `rmx.json`: the input becomes the settings of a copy of the tiny
//! fixture model, which is then loaded as a matcher.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rmx_fuzz::ScratchModel;

fuzz_target!(|data: &[u8]| {
    let model = ScratchModel::get();
    model.write("rmx.json", data);
    let _ = rmx::model::heads::CheckpointSettings::load(model.dir());
    let _ = rmx::model::rematch::Matcher::<rmx::backend::cpu::Cpu>::load(model.dir());
});
