//! `include/rmx.h` is generated from `src/capi/` by cbindgen (version pinned in
//! Cargo.toml); this test regenerates it and fails when the checked-in file differs.
//!
//! Regenerate with: RMX_BLESS=1 cargo test --release --test capi_header
//!
//! A test rather than a build script: the header is a reviewed, checked-in file (C users
//! and the examples need it without running cargo), a build script would run cbindgen (a
//! full parse of the crate) on every build and write into the source tree, and cbindgen
//! stays a dev-dependency that library users never build.
use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/capi/mod.rs"))
        .with_src(root.join("src/capi/status.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = root.join("include/rmx.h");
    if std::env::var_os("RMX_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/rmx.h");
        eprintln!("wrote {}", path.display());
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let line = checked_in.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or_else(
            || "length differs".to_string(),
            |i| {
                format!(
                    "first difference at line {}:\n  checked in: {}\n  generated:  {}",
                    i + 1,
                    checked_in.lines().nth(i).unwrap(),
                    generated.lines().nth(i).unwrap()
                )
            },
        );
        panic!("include/rmx.h is out of date with src/capi/ ({line}).\nRegenerate it with:\n  RMX_BLESS=1 cargo test --release --test capi_header");
    }
}
