//! Builds the CUDA kernels in `kernels/*.cu`, only when asked:
//!
//! - feature `cuda`: nvcc compiles each kernel file to a fatbin (SASS for every arch of
//!   `RMX_CUDA_ARCHS`, default `80;90`, plus PTX of the first) embedded in the library. nvcc is
//!   looked for in `NVCC`, `CUDA_HOME/bin`, `PATH`, `.cuda/` (scripts/install-nvcc.sh), then the
//!   PyPI wheel's `nvidia/cu13/bin` in python3's site-packages. Without nvcc, or when it fails,
//!   the build goes on with one cargo warning and no kernels, and the runtime reports CUDA as
//!   unavailable ("kernels not built") — this script never panics. ptxas's register and spill
//!   counts go to `OUT_DIR/ptxas.txt` (`scripts/cuda-ptxas-report.sh` prints them).
//! - feature `cuda-emu`: g++ compiles the same sources against `kernels/emu/cuda_emu.h` into a
//!   static library the tests launch kernels from (`backend::cuda::emu`).
//!   `RMX_EMU_SANITIZE=thread|address` builds it, and links the binaries, with that sanitizer.
//!
//! Without either feature nothing here runs.
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=kernels");
    for var in ["NVCC", "CUDA_HOME", "RMX_CUDA_ARCHS", "RMX_EMU_SANITIZE", "PATH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let cuda = cfg!(feature = "cuda");
    let emu = cfg!(feature = "cuda-emu");
    if !cuda && !emu {
        return;
    }
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = match kernel_files(&root.join("kernels")) {
        Ok(k) => k,
        Err(e) => {
            println!("cargo:warning=rmx: cannot list kernels/: {e}");
            Vec::new()
        }
    };
    if cuda {
        let stems: Vec<String> = kernels.iter().filter_map(|k| k.file_stem().and_then(|s| s.to_str()).map(str::to_string)).collect();
        let outcome = find_nvcc(&root).and_then(|nvcc| compile_fatbins(&nvcc, &kernels, &out));
        let generated = match outcome {
            Ok(built) => embed_fatbins(&built),
            Err(why) => {
                println!("cargo:warning=rmx: CUDA kernels not built: {why}");
                format!("/// Why no kernels were built.\npub const BUILD_PROBLEM: Option<&str> = Some({why:?});\npub static FATBINS: &[(&str, &[u8], &[&str])] = &[];\n")
            }
        };
        let sources = format!("/// Every kernel file's stem (`kernels/*.cu`).\npub static KERNEL_SOURCES: &[&str] = &{stems:?};\n");
        write_or_warn(&out.join("fatbins.rs"), &(generated + &sources));
    }
    #[cfg(feature = "cuda-emu")]
    build_emulated(&root, &kernels, &out);
}

/// `kernels/*.cu`, sorted.
fn kernel_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "cu")).collect();
    files.sort();
    Ok(files)
}

fn write_or_warn(path: &Path, text: &str) {
    if let Err(e) = fs::write(path, text) {
        println!("cargo:warning=rmx: cannot write {}: {e}", path.display());
    }
}

/// The names of the `extern "C" __global__` entry points of a kernel source.
fn entry_points(source: &str) -> Vec<String> {
    let marker = "extern \"C\" __global__ void ";
    source.match_indices(marker).filter_map(|(i, _)| source[i + marker.len()..].split('(').next().map(|name| name.trim().to_string())).collect()
}

// ---- nvcc -------------------------------------------------------------------------------------

fn find_nvcc(root: &Path) -> Result<PathBuf, String> {
    let runs = |p: &Path| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    if let Some(p) = env::var_os("NVCC") {
        let p = PathBuf::from(p);
        return if runs(&p) { Ok(p) } else { Err(format!("NVCC={} does not run", p.display())) };
    }
    let mut candidates = Vec::new();
    if let Some(home) = env::var_os("CUDA_HOME") {
        candidates.push(PathBuf::from(home).join("bin/nvcc"));
    }
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    candidates.push(root.join(".cuda/nvidia/cu13/bin/nvcc"));
    let site = Command::new("python3").args(["-c", "import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))"]).output();
    if let Ok(o) = site {
        candidates.extend(String::from_utf8_lossy(&o.stdout).lines().map(|d| Path::new(d.trim()).join("nvidia/cu13/bin/nvcc")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file() && runs(p))
        .ok_or_else(|| "no nvcc found (NVCC, CUDA_HOME, PATH, .cuda/, python3 site-packages); run scripts/install-nvcc.sh".to_string())
}

/// `RMX_CUDA_ARCHS` (`80;90` by default): SASS for each, PTX for the first.
fn archs() -> Result<Vec<u32>, String> {
    let spec = env::var("RMX_CUDA_ARCHS").unwrap_or_else(|_| "80;90".to_string());
    let archs: Result<Vec<u32>, _> = spec.split([';', ',', ' ']).filter(|s| !s.is_empty()).map(|s| s.trim_start_matches("sm_").parse::<u32>()).collect();
    match archs {
        Ok(a) if !a.is_empty() => Ok(a),
        _ => Err(format!("RMX_CUDA_ARCHS={spec:?} is not a list like \"80;90\"")),
    }
}

/// A compiled kernel file: its stem, fatbin path and entry points.
struct Fatbin {
    stem: String,
    path: PathBuf,
    entries: Vec<String>,
}

/// Compiles every kernel file to `OUT_DIR/<stem>.fatbin` and writes ptxas's resource report to `OUT_DIR/ptxas.txt`.
fn compile_fatbins(nvcc: &Path, kernels: &[PathBuf], out: &Path) -> Result<Vec<Fatbin>, String> {
    let archs = archs()?;
    let mut built = Vec::new();
    let mut report = String::new();
    for src in kernels {
        let stem = src.file_stem().and_then(|s| s.to_str()).ok_or("a kernel file name is not UTF-8")?.to_string();
        let fatbin = out.join(format!("{stem}.fatbin"));
        let mut cmd = Command::new(nvcc);
        cmd.args(["-fatbin", "-O3", "-std=c++17", "-Xptxas", "-v", "-o"]).arg(&fatbin).arg(src);
        for a in &archs {
            cmd.arg(format!("--generate-code=arch=compute_{a},code=sm_{a}"));
        }
        cmd.arg(format!("--generate-code=arch=compute_{0},code=compute_{0}", archs[0]));
        let o = cmd.output().map_err(|e| format!("{} did not run: {e}", nvcc.display()))?;
        let stderr = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() {
            return Err(format!("nvcc failed on {}: {}", src.display(), stderr.lines().take(5).collect::<Vec<_>>().join(" | ")));
        }
        let _ = writeln!(report, "== {stem}.cu");
        report.push_str(&stderr);
        let entries = entry_points(&fs::read_to_string(src).map_err(|e| format!("{}: {e}", src.display()))?);
        built.push(Fatbin { stem, path: fatbin, entries });
    }
    write_or_warn(&out.join("ptxas.txt"), &report);
    Ok(built)
}

fn embed_fatbins(built: &[Fatbin]) -> String {
    let mut s = String::from("/// Why no kernels were built.\npub const BUILD_PROBLEM: Option<&str> = None;\n/// `(kernel file stem, fatbin, entry points)`.\npub static FATBINS: &[(&str, &[u8], &[&str])] = &[\n");
    for f in built {
        let _ = writeln!(s, "    ({:?}, include_bytes!({:?}), &{:?}),", f.stem, f.path.display().to_string(), f.entries);
    }
    s.push_str("];\n");
    s
}

// ---- emulation --------------------------------------------------------------------------------

#[cfg(feature = "cuda-emu")]
/// One translation unit with every kernel source (and the emulator's planted-bug kernels),
/// plus the name → entry table `rmx_emu_launch` looks kernels up in.
fn build_emulated(root: &Path, kernels: &[PathBuf], out: &Path) {
    let mut sources = kernels.to_vec();
    sources.push(root.join("kernels/emu/planted.cu"));
    let mut unit = String::from("#include \"emu/cuda_emu.h\"\n");
    let mut table = String::new();
    for src in &sources {
        let text = fs::read_to_string(src).unwrap_or_default();
        let _ = writeln!(unit, "#include {:?}", src.display().to_string());
        for name in entry_points(&text) {
            let _ = writeln!(table, "    {{{name:?}, &emu::trampoline<{name}>}},");
        }
    }
    let _ = write!(unit, "extern const emu::KernelEntry rmx_emu_kernels[] = {{\n{table}}};\nextern const std::size_t rmx_emu_kernel_count = sizeof rmx_emu_kernels / sizeof rmx_emu_kernels[0];\n");
    let unit_path = out.join("emu_kernels.cpp");
    write_or_warn(&unit_path, &unit);

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .include(root.join("kernels"))
        .define("RMX_CUDA_EMU", None)
        .flag("-pthread")
        .flag("-ffp-contract=off")
        .opt_level(2)
        .warnings(false);
    build.file(&unit_path).file(root.join("kernels/emu/cuda_emu.cpp"));
    match env::var("RMX_EMU_SANITIZE").as_deref() {
        Ok(sanitizer @ ("thread" | "address")) => {
            build.flag(format!("-fsanitize={sanitizer}")).flag("-fno-omit-frame-pointer").debug(true);
            // rustc links with -nodefaultlibs, so the runtime is named explicitly.
            println!("cargo:rustc-link-lib=dylib={}", if sanitizer == "thread" { "tsan" } else { "asan" });
        }
        Ok(other) => println!("cargo:warning=rmx: RMX_EMU_SANITIZE={other:?} ignored (thread or address)"),
        Err(_) => {}
    }
    build.compile("rmx_cuda_emu");
}
