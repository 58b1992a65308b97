//! The boundary every entry point goes through: this thread's last error, and panics caught
//! and turned into `RMX_ERR_PANIC` without printing anything.
use super::status::{classify, rmx_status};
use crate::error::Error;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

/// A failed call: its class and what to tell the caller.
#[derive(Debug)]
pub struct Failure {
    pub status: rmx_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: rmx_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub fn null(argument: &str) -> Failure {
        Failure::new(rmx_status::RMX_ERR_NULL_ARGUMENT, format!("{argument} is NULL"))
    }

    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(rmx_status::RMX_ERR_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure { status: classify(&e), message: e.to_string() }
    }
}

thread_local! {
    /// Detail of this thread's last failure; replaced (never cleared) by the next one.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Entry points of this library the thread is inside (panics there are not printed).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Message and location of the last panic the hook silenced on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// This thread's last error, NUL-terminated; valid until the thread's next failing call.
pub fn last_error_ptr() -> *const c_char {
    // `try_with`: during thread teardown the slot may be gone; answer a static string then.
    LAST_ERROR.try_with(|e| e.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

fn set_last_error(message: String) {
    // An interior NUL would end the C string early anyway: replace it visibly.
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|e| *e.borrow_mut() = c);
}

/// Runs one entry point's body: `Ok` is `RMX_OK`; a failure or a panic records its message
/// as this thread's last error and returns its status. Nothing is printed.
pub fn guard(body: impl FnOnce() -> Result<(), Failure>) -> rmx_status {
    install_panic_hook();
    let _inside = Inside::enter();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    // AssertUnwindSafe: after a panic the caller only gets a status; the engine's shared
    // state (read-only model and mapping, a mutex-guarded scratch pool that tolerates
    // poisoning) stays consistent.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => rmx_status::RMX_OK,
        Ok(Err(f)) => {
            set_last_error(f.message);
            f.status
        }
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            let message = recorded.unwrap_or_else(|| payload_message(&*payload));
            // Dropping a payload can itself panic (a payload with a panicking Drop): contain it.
            if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(again);
            }
            set_last_error(format!("internal error (panic): {message}"));
            rmx_status::RMX_ERR_PANIC
        }
    }
}

/// As [`guard`] for an entry point that returns a value rather than a status: `fallback`
/// if `body` panics (the panic is recorded as the last error, and not printed).
pub fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    let mut value = None;
    let status = guard(|| {
        value = Some(body());
        Ok(())
    });
    match status {
        rmx_status::RMX_OK => value.unwrap_or(fallback),
        _ => fallback,
    }
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Marks the thread as inside an entry point for as long as it lives.
struct Inside;

impl Inside {
    fn enter() -> Inside {
        DEPTH.with(|d| d.set(d.get() + 1));
        Inside
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Replaces the process's panic hook, once, with one that stays silent for panics in this
/// library — on a thread inside an entry point, or on a worker of rayon's pools (which only
/// rmx's kernels use in a C program; rayon carries the panic to the calling thread, where
/// `guard` catches it) — and records their message for `rmx_last_error`. Other panics go to
/// the previous hook, unchanged.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let inside = DEPTH.try_with(|d| d.get() > 0).unwrap_or(false);
            if inside || rayon::current_thread_index().is_some() {
                let message = match info.location() {
                    Some(l) => format!("{} at {}:{}", payload_message(info.payload()), l.file(), l.line()),
                    None => payload_message(info.payload()),
                };
                let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(message));
            } else {
                previous(info);
            }
        }));
    });
}
