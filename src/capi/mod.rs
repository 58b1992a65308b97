//! librmx: the engine as a C library (`include/rmx.h`, generated from this module by
//! cbindgen; `tests/capi_header.rs` fails when the checked-in header is stale).
//!
//! Every entry point checks its pointers for NULL, catches panics (`RMX_ERR_PANIC`), prints
//! nothing and writes its outputs only on success. Failures leave their detail in a
//! thread-local string (`rmx_last_error`). Unsafe code sits in the small helpers at the end
//! of this file and in `strings.rs`, each with the contract it relies on.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod status;
pub mod strings;

use crate::backend::cpu::Cpu;
use crate::backend::DeviceKind;
use crate::data::descriptions::read_descriptions;
use crate::engine::{build_index, BuildSettings, Engine};
use crate::error::Error;
use crate::model::location::default_model_dir;
use crate::model::rematch::Matcher;
use crate::text::markers::WordInstance;
use error::{guard, Failure};
use rmx_index::{BuildMode, Index, Precision};
pub use status::rmx_status;
use status::rmx_status::*;
use std::ffi::{c_char, c_int};
use std::path::PathBuf;
use strings::{c_path, c_text, StringTable};

/// The ABI version of this header; `rmx_abi_version()` returns the library's. They differ
/// when a program is run against a library built from another, incompatible header.
pub const RMX_ABI_VERSION: u32 = 4;

/// `rmx_engine_open_on`: the model computes on the CPU (what `rmx_engine_open` does).
pub const RMX_DEVICE_CPU: u32 = 0;
/// `rmx_engine_open_on`: the model computes on GPU 0 through CUDA (a library built with
/// feature `cuda` and an NVIDIA driver; else `RMX_ERR_DEVICE`).
pub const RMX_DEVICE_CUDA: u32 = 1;
/// `rmx_build_options.precision`: vectors stored as 32-bit floats (the default).
pub const RMX_PRECISION_F32: u32 = 0;
/// `rmx_build_options.precision`: vectors stored as 16-bit floats (half the size).
pub const RMX_PRECISION_F16: u32 = 1;
/// `rmx_build_options.search`: exact search for small label sets, HNSW for large ones.
pub const RMX_SEARCH_AUTO: u32 = 0;
/// `rmx_build_options.search`: always exact search.
pub const RMX_SEARCH_EXACT: u32 = 1;
/// `rmx_build_options.search`: always an HNSW graph.
pub const RMX_SEARCH_HNSW: u32 = 2;
/// `rmx_build_options.flags`: when some records are rejected, build from the others (still
/// `RMX_ERR_REJECTED`, listing them) instead of building nothing.
pub const RMX_BUILD_SKIP_INVALID: u32 = 1;

/// An open model and relation index. Opaque. Thread-safe for queries: any number of
/// threads may call `rmx_query` / `rmx_query_batch` on one engine at once; `rmx_engine_free`
/// must not run concurrently with them.
#[allow(non_camel_case_types)]
pub struct rmx_engine {
    engine: Engine,
    strings: StringTable,
}

// One engine serves many threads at once: the C contract above relies on this.
const _: () = {
    const fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<rmx_engine>();
};

/// One query: a UTF-8 sentence and the byte spans `[start, end)` of its two entities.
/// Spans must be non-empty, within `strlen(text)`, on UTF-8 character boundaries, not
/// overlapping, and not only whitespace.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct rmx_instance {
    /// NUL-terminated UTF-8 text.
    pub text: *const c_char,
    pub head_start: usize,
    pub head_end: usize,
    pub tail_start: usize,
    pub tail_end: usize,
}

/// One answer: a relation and its score `w_c·context + w_h·head + w_t·tail`, with the three
/// cosines behind it (weights: (1 - 2a, a, a) for a trained model, (0.5, 0.2, 0.3) for the
/// zero-training default; `rmx index inspect` shows them). `id` and `name` are NUL-terminated UTF-8 owned by the engine: valid
/// until `rmx_engine_free`, never to be freed by the caller.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct rmx_match {
    pub id: *const c_char,
    pub name: *const c_char,
    pub score: f32,
    pub context: f32,
    pub head: f32,
    pub tail: f32,
}

/// How `rmx_index_build_with` stores and searches the vectors. All zeros means the
/// defaults, which are those of `rmx_index_build` and of `rmx index build`.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy)]
pub struct rmx_build_options {
    /// `RMX_PRECISION_F32` (default) or `RMX_PRECISION_F16`.
    pub precision: u32,
    /// `RMX_SEARCH_AUTO` (default), `RMX_SEARCH_EXACT` or `RMX_SEARCH_HNSW`.
    pub search: u32,
    /// Relations encoded per batch; 0 means the default (32).
    pub batch_size: usize,
    /// `RMX_BUILD_*` bits, or 0: `RMX_BUILD_SKIP_INVALID`.
    pub flags: u32,
}

// The entry points that return a value, not a status: rmx_abi_version, rmx_version,
// rmx_status_str and rmx_last_error cannot panic (constants and look-ups);
// rmx_engine_relations goes through `guard_value`.

/// The library's ABI version (`RMX_ABI_VERSION` of the header it was built with).
#[no_mangle]
pub extern "C" fn rmx_abi_version() -> u32 {
    RMX_ABI_VERSION
}

/// The library's version, e.g. "0.1.0" (a static string).
#[no_mangle]
pub extern "C" fn rmx_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A static, NUL-terminated description of `status`; "unknown status" for a value that is
/// no `rmx_status`. Never NULL; never to be freed.
#[no_mangle]
pub extern "C" fn rmx_status_str(status: StatusArg) -> *const c_char {
    // Cannot panic: a table look-up.
    status::describe_ptr(status)
}

/// The status as C passes it to `rmx_status_str`: any int, so that unknown values are not
/// undefined behaviour (the header shows it as `rmx_status`).
pub type StatusArg = c_int;

/// The detail of this thread's last failure (which path, which instance, why), as a
/// NUL-terminated string owned by the library: valid until the next failing call on this
/// thread, never to be freed. Successful calls leave it unchanged; "" before any failure.
/// Never NULL.
#[no_mangle]
pub extern "C" fn rmx_last_error() -> *const c_char {
    // Cannot panic (a thread-local read), and must not go through `guard`, which could
    // replace the very string it returns.
    error::last_error_ptr()
}

/// Opens the relation index in `index_dir` for the model in `model_dir` (NULL: the default
/// model, found as by the rmx CLI: `$RMX_MODEL`, else `$RMX_HOME/models/all-MiniLM-L6-v2`,
/// `RMX_HOME` defaulting to `$XDG_DATA_HOME/rmx`, then `~/.local/share/rmx`).
///
/// On success writes a new engine to `*out`; free it with `rmx_engine_free`. On failure
/// `*out` is left untouched. An index built with another model fails with
/// `RMX_ERR_MODEL_MISMATCH`. Opening checks the index's header and metadata checksums (a
/// damaged one fails with `RMX_ERR_INDEX_CORRUPT`), not the vectors: `rmx_index_verify`
/// checks everything. Thread-safe.
///
/// # Safety
/// `model_dir` and `index_dir` are NULL or NUL-terminated strings; `out` is NULL or valid
/// for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn rmx_engine_open(model_dir: *const c_char, index_dir: *const c_char, out: *mut *mut rmx_engine) -> rmx_status {
    // SAFETY: the caller's contract is rmx_engine_open_on's.
    unsafe { rmx_engine_open_on(model_dir, index_dir, RMX_DEVICE_CPU, out) }
}

/// `rmx_engine_open` with the model on `device` (`RMX_DEVICE_CPU` or `RMX_DEVICE_CUDA`): its
/// weights are uploaded once, here, and every query's encoder pass runs there. Without a
/// usable device: `RMX_ERR_DEVICE`, with the reason in `rmx_last_error()` (no driver, no
/// device, kernels not built, or a library built without CUDA); an unknown `device`:
/// `RMX_ERR_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// As `rmx_engine_open`.
#[no_mangle]
pub unsafe extern "C" fn rmx_engine_open_on(model_dir: *const c_char, index_dir: *const c_char, device: u32, out: *mut *mut rmx_engine) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract on model_dir and index_dir.
        let (model, index_dir) = unsafe { (model_path(model_dir)?, c_path(index_dir, "index_dir")?) };
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let device = match device {
            RMX_DEVICE_CPU => DeviceKind::Cpu,
            RMX_DEVICE_CUDA => DeviceKind::Cuda,
            other => return Err(Error::InvalidArgument(format!("device {other}: expected RMX_DEVICE_CPU (0) or RMX_DEVICE_CUDA (1)")).into()),
        };
        let engine = Engine::open_on(&model, index_dir, device)?;
        let strings = StringTable::of(&engine.index).map_err(Error::from)?;
        let handle = Box::into_raw(Box::new(rmx_engine { engine, strings }));
        // SAFETY: `out` is non-NULL and valid for writing by the caller's contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees an engine and everything it owns (the strings of every `rmx_match` it returned
/// included). NULL is a no-op. Must not run concurrently with a query on the same engine.
///
/// # Safety
/// `engine` is NULL or a pointer from `rmx_engine_open` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn rmx_engine_free(engine: *mut rmx_engine) {
    if engine.is_null() {
        return;
    }
    // SAFETY: allocated by Box in rmx_engine_open and, by the caller's contract, not freed yet.
    let engine = unsafe { Box::from_raw(engine) };
    // Nothing to report from a void function; a panic while dropping stays contained.
    let _ = guard(move || {
        drop(engine);
        Ok(())
    });
}

/// The number of relations in the engine's index (the most matches a query can return);
/// 0 for NULL.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[no_mangle]
pub unsafe extern "C" fn rmx_engine_relations(engine: *const rmx_engine) -> usize {
    // SAFETY: the caller's contract.
    error::guard_value(0, || unsafe { engine.as_ref() }.map_or(0, |e| e.engine.index.len()))
}

/// The "no relation" threshold of the engine's index, written to `*out`: a query's answer is
/// "no relation" when its best match scores below it (the `"relation"` field of `rmx query`
/// is then null). It is the threshold `rmx index calibrate` stored beside the index, or
/// `-INFINITY` for an uncalibrated index (every best match is then a relation). `*out` is
/// written only on success. Thread-safe.
///
/// # Safety
/// `engine` is NULL or a live engine; `out` is NULL or valid for writing one `float`.
#[no_mangle]
pub unsafe extern "C" fn rmx_engine_min_score(engine: *const rmx_engine, out: *mut f32) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract on engine.
        let engine = unsafe { engine_ref(engine)? };
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let min_score = engine.engine.min_score(None).unwrap_or(f32::NEG_INFINITY);
        // SAFETY: non-NULL and valid for one write by the caller's contract.
        unsafe { out.write(min_score) };
        Ok(())
    })
}

/// The `k` best relations for one instance, best first, written to `out[0 .. *n_out]`;
/// `*n_out` = min(k, number of relations). `out` must hold `k` entries (k >= 1; k = 0 is
/// `RMX_ERR_INVALID_ARGUMENT`); entries past `*n_out` are left untouched. Same answers as
/// `rmx query` for the same instance. Outputs are written only on success. Thread-safe
/// (see `rmx_engine`).
///
/// # Safety
/// `engine` is NULL or a live engine; `instance` is NULL or valid for reading, its `text`
/// NULL or NUL-terminated; `out` is NULL or valid for writing `k` entries; `n_out` is NULL
/// or valid for writing one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn rmx_query(engine: *const rmx_engine, instance: *const rmx_instance, k: usize, out: *mut rmx_match, n_out: *mut usize) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract on engine and instance.
        let (engine, instance) = unsafe { (engine_ref(engine)?, instance.as_ref().ok_or_else(|| Failure::null("instance"))?) };
        let answers = answer(engine, std::slice::from_ref(instance), k, out, n_out, |_| "instance".to_string())?;
        // SAFETY: checked non-NULL by `answer`; `out` holds k >= answers[0].len() entries.
        unsafe { write_answers(&answers, k, out, n_out) };
        Ok(())
    })
}

/// The `k` best relations for each of `n` instances, encoded together (faster than `n`
/// calls): instance i's matches go to `out[i*k .. i*k + n_out[i]]`, best first, with
/// `n_out[i]` = min(k, number of relations). `out` must hold `n*k` entries and `n_out` `n`
/// (k >= 1). Entries past each `n_out[i]` are left untouched.
///
/// All or nothing: when any instance is invalid the call fails, `rmx_last_error()` names
/// the first bad one ("instances[3]: ..."), and no output is written. `n` = 0 succeeds and
/// writes nothing (then `instances`, `out` and `n_out` may be NULL). Results are those of
/// `rmx query` reading the same instances in one batch from stdin. Thread-safe.
///
/// # Safety
/// `engine` is NULL or a live engine; `instances` is NULL or valid for reading `n`
/// instances; `out` is NULL or valid for writing `n*k` entries; `n_out` is NULL or valid
/// for writing `n` values.
#[no_mangle]
pub unsafe extern "C" fn rmx_query_batch(
    engine: *const rmx_engine,
    instances: *const rmx_instance,
    n: usize,
    k: usize,
    out: *mut rmx_match,
    n_out: *mut usize,
) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract on engine.
        let engine = unsafe { engine_ref(engine)? };
        if n == 0 {
            return Ok(());
        }
        // SAFETY: the caller's contract on instances and n.
        let instances = unsafe { instance_slice(instances, n)? };
        let answers = answer(engine, instances, k, out, n_out, |i| format!("instances[{i}]"))?;
        // SAFETY: checked non-NULL by `answer`; `out` holds n*k entries, `n_out` n.
        unsafe { write_answers(&answers, k, out, n_out) };
        Ok(())
    })
}

/// Builds an index in `index_dir` from the relation descriptions in `descriptions_jsonl`
/// (one JSON object per line: {"id","name","description","head","tail"}, or RE-Matching's
/// JSON list), encoded with the model in `model_dir` (NULL: the default model), with the
/// default options. As `rmx index build FILE -o DIR`: the index is written to a temporary
/// directory and moved into place, so an existing index at `index_dir` is replaced only on
/// success; a destination that exists and is not an index fails with `RMX_ERR_IO`.
///
/// All or nothing: when records are invalid (bad JSON, missing fields, duplicate ids),
/// nothing is built and an existing index at `index_dir` is untouched: `RMX_ERR_REJECTED`,
/// with `rmx_last_error()` listing the rejected records, one "file:line: reason" per line
/// (`rmx_index_build_with` and `RMX_BUILD_SKIP_INVALID` build from the valid ones). No
/// valid record at all is `RMX_ERR_INVALID_INPUT` (nothing built). Thread-safe (distinct
/// `index_dir`s); slow: it runs the encoder over every description.
///
/// # Safety
/// Each argument is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rmx_index_build(model_dir: *const c_char, descriptions_jsonl: *const c_char, index_dir: *const c_char) -> rmx_status {
    // SAFETY: forwarded contract; NULL options are the defaults.
    unsafe { rmx_index_build_with(model_dir, descriptions_jsonl, index_dir, std::ptr::null()) }
}

/// As `rmx_index_build`, with `options` (NULL: the defaults). An unknown precision, search
/// value or flag bit is `RMX_ERR_INVALID_ARGUMENT`. With `RMX_BUILD_SKIP_INVALID` in
/// `options->flags`, rejected records are left out: the index is built from the others,
/// and `RMX_ERR_REJECTED` (a partial success) lists the rejected ones.
///
/// # Safety
/// The strings are NULL or NUL-terminated; `options` is NULL or valid for reading.
#[no_mangle]
pub unsafe extern "C" fn rmx_index_build_with(
    model_dir: *const c_char,
    descriptions_jsonl: *const c_char,
    index_dir: *const c_char,
    options: *const rmx_build_options,
) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract on every argument.
        let (model, input, output, options) =
            unsafe { (model_path(model_dir)?, c_path(descriptions_jsonl, "descriptions_jsonl")?, c_path(index_dir, "index_dir")?, options.as_ref()) };
        let (settings, skip_invalid) = build_settings(options)?;
        let parsed = read_descriptions(input)?;
        if parsed.relations.is_empty() {
            let mut message = format!("{}: no valid relations; the index was not built", input.display());
            for reason in &parsed.rejected {
                message.push('\n');
                message.push_str(reason);
            }
            return Err(Failure::new(RMX_ERR_INVALID_INPUT, message));
        }
        let rejected = |outcome: String| {
            let message = format!("{} record(s) rejected; {outcome}:\n{}", parsed.rejected.len(), parsed.rejected.join("\n"));
            Failure::new(RMX_ERR_REJECTED, message)
        };
        if !parsed.rejected.is_empty() && !skip_invalid {
            return Err(rejected(format!("nothing was built (RMX_BUILD_SKIP_INVALID builds from the other {})", parsed.relations.len())));
        }
        let matcher = Matcher::<Cpu>::load(&model)?;
        build_index(&matcher, &parsed.relations, output, settings, |_| {})?;
        if !parsed.rejected.is_empty() {
            return Err(rejected(format!("the index was built from the other {}", parsed.relations.len())));
        }
        Ok(())
    })
}

/// Verifies every checksum and structural invariant of the index in `index_dir` (vectors
/// and search graph included, which `rmx_engine_open` does not read): `RMX_OK` when intact,
/// else `RMX_ERR_INDEX_CORRUPT` (or the failure to open it). As `rmx index verify`. Reads
/// the whole index. Thread-safe.
///
/// # Safety
/// `index_dir` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rmx_index_verify(index_dir: *const c_char) -> rmx_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let dir = unsafe { c_path(index_dir, "index_dir")? };
        Index::open(dir).and_then(|index| index.verify()).map_err(Error::from)?;
        Ok(())
    })
}

/// One instance's matches, ready to be written.
type Answers = Vec<Vec<rmx_match>>;

/// Validates the arguments of a query and answers every instance, writing nothing: the
/// first bad instance fails the whole call. `label(i)` names instance `i` in messages.
fn answer(
    handle: &rmx_engine,
    instances: &[rmx_instance],
    k: usize,
    out: *mut rmx_match,
    n_out: *mut usize,
    label: impl Fn(usize) -> String,
) -> Result<Answers, Failure> {
    if out.is_null() {
        return Err(Failure::null("out"));
    }
    if n_out.is_null() {
        return Err(Failure::null("n_out"));
    }
    if k == 0 {
        return Err(Failure::invalid("k is 0; ask for at least one match"));
    }
    if instances.len().checked_mul(k).is_none() {
        return Err(Failure::invalid(format!("n * k overflows ({} * {k})", instances.len())));
    }
    let mut words = Vec::with_capacity(instances.len());
    for (i, instance) in instances.iter().enumerate() {
        let name = label(i);
        // SAFETY: the query's contract: `text` is NULL or NUL-terminated, alive for the call.
        let text = unsafe { c_text(instance.text, &format!("{name}.text"))? };
        let w = WordInstance::from_text(text, instance.head_start..instance.head_end, instance.tail_start..instance.tail_end)
            .map_err(|e| Failure::invalid(format!("{name}: {e}")))?;
        words.push(w);
    }
    let engine = &handle.engine;
    // More than every relation is every relation; clamping keeps a huge k from sizing the
    // search's buffers (for k up to the relation count, the engine sees k itself).
    let k = k.min(engine.index.len());
    let mut answers = Vec::with_capacity(instances.len());
    for (i, matches) in engine.query_batch(&words, k)?.into_iter().enumerate() {
        let matches = matches.map_err(|e| Failure { status: status::classify(&e), message: format!("{}: {e}", label(i)) })?;
        let converted = matches
            .iter()
            .map(|m| {
                let (id, name) =
                    engine.index.row_of(m.id).and_then(|row| handle.strings.get(row)).ok_or_else(|| {
                        Failure::new(RMX_ERR_INDEX_CORRUPT, format!("{}: relation {:?} not found by id", engine.index.path().display(), m.id))
                    })?;
                Ok(rmx_match { id, name, score: m.score, context: m.parts.context, head: m.parts.head, tail: m.parts.tail })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        answers.push(converted);
    }
    Ok(answers)
}

/// The build settings and whether to skip rejected records.
fn build_settings(options: Option<&rmx_build_options>) -> Result<(BuildSettings, bool), Failure> {
    let mut settings = BuildSettings::default();
    let Some(o) = options else { return Ok((settings, false)) };
    settings.precision = match o.precision {
        RMX_PRECISION_F32 => Precision::F32,
        RMX_PRECISION_F16 => Precision::F16,
        p => return Err(Failure::invalid(format!("options->precision {p} is neither RMX_PRECISION_F32 nor RMX_PRECISION_F16"))),
    };
    settings.mode = match o.search {
        RMX_SEARCH_AUTO => BuildMode::Auto,
        RMX_SEARCH_EXACT => BuildMode::Exact,
        RMX_SEARCH_HNSW => BuildMode::Hnsw,
        s => return Err(Failure::invalid(format!("options->search {s} is not an RMX_SEARCH_* value"))),
    };
    if o.batch_size > 0 {
        settings.batch = o.batch_size;
    }
    if o.flags & !RMX_BUILD_SKIP_INVALID != 0 {
        return Err(Failure::invalid(format!("options->flags {:#x} holds unknown bits (known: RMX_BUILD_SKIP_INVALID)", o.flags)));
    }
    Ok((settings, o.flags & RMX_BUILD_SKIP_INVALID != 0))
}

/// `model_dir`, or the default model's directory for NULL.
///
/// # Safety
/// `model_dir` is NULL or a NUL-terminated string.
unsafe fn model_path(model_dir: *const c_char) -> Result<PathBuf, Failure> {
    if model_dir.is_null() {
        return Ok(default_model_dir());
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { c_path(model_dir, "model_dir") }?.to_path_buf())
}

/// # Safety
/// `engine` is NULL or a live engine from `rmx_engine_open`, not freed during `'a`.
unsafe fn engine_ref<'a>(engine: *const rmx_engine) -> Result<&'a rmx_engine, Failure> {
    // SAFETY: by the caller's contract, non-NULL means a live, properly aligned engine.
    unsafe { engine.as_ref() }.ok_or_else(|| Failure::null("engine"))
}

/// # Safety
/// `instances` is NULL or valid for reading `n` instances (n >= 1) during `'a`.
unsafe fn instance_slice<'a>(instances: *const rmx_instance, n: usize) -> Result<&'a [rmx_instance], Failure> {
    if instances.is_null() {
        return Err(Failure::null("instances"));
    }
    // SAFETY: non-NULL, and valid for `n` reads by the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(instances, n) })
}

/// Writes instance i's matches to `out[i*k ..]` and their count to `n_out[i]`.
///
/// # Safety
/// `out` is valid for writing `answers.len() * k` matches, `n_out` for `answers.len()`
/// counts, and each answer holds at most `k` matches.
unsafe fn write_answers(answers: &Answers, k: usize, out: *mut rmx_match, n_out: *mut usize) {
    for (i, matches) in answers.iter().enumerate() {
        debug_assert!(matches.len() <= k);
        for (j, m) in matches.iter().enumerate() {
            // SAFETY: i*k + j < answers.len() * k (no overflow: checked in `answer`).
            unsafe { out.add(i * k + j).write(*m) };
        }
        // SAFETY: i < answers.len().
        unsafe { n_out.add(i).write(matches.len()) };
    }
}
