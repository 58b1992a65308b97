//! Where rmx finds the default model without flags.
use std::path::PathBuf;

/// Name of the default encoder's directory.
pub const DEFAULT_MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// `$RMX_MODEL`, else `$RMX_HOME/models/all-MiniLM-L6-v2`, where `RMX_HOME` defaults to
/// `$XDG_DATA_HOME/rmx`, then `$HOME/.local/share/rmx` (what `scripts/fetch-model.sh` fills).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RMX_MODEL").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    rmx_home().join("models").join(DEFAULT_MODEL_NAME)
}

fn rmx_home() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("RMX_HOME")
        .or_else(|| non_empty("XDG_DATA_HOME").map(|d| d.join("rmx")))
        .or_else(|| non_empty("HOME").map(|d| d.join(".local/share/rmx")))
        .unwrap_or_else(|| PathBuf::from(".rmx"))
}
