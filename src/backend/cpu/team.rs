//! A spinning team of threads for one burst of many short parallel steps (an encoder
//! forward pass).
//!
//! rayon parks an idle worker after a few dozen `sched_yield` rounds and wakes it with a
//! futex when the next parallel step begins. A one-sentence forward is ≈ 55 steps of
//! 20–100 µs each, and parking and waking cost ≈ 15 % of its time (perf: `futex_wake` on the
//! thread that starts a step, `finish_task_switch` on the one that wakes). Inside
//! [`with_team`] the pool's other workers instead join the calling thread for the whole
//! burst and spin between steps; every step's tasks are claimed from one atomic word by
//! whichever thread is free, so a slow or shared core still evens out.
//!
//! Roles (per thread): a *leader* runs the burst and publishes steps; *helpers* claim tasks
//! until the leader finishes; a thread running a task is *busy*, and a parallel step it
//! starts runs inline (the team is already fully used).
use std::any::Any;
use std::cell::Cell;
use std::hint::spin_loop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Most tasks of one published step (the step's task count and next index are 16-bit
/// fields of [`Team::state`]); [`Team::for_each`] groups larger steps.
const MAX_TASKS: usize = u16::MAX as usize;
/// Idle polls of a waiting thread before it starts yielding its core between them (≈ 1 ms).
const SPINS_BEFORE_YIELD: u32 = 1 << 14;

/// Waiting for another thread: spin, then, after [`SPINS_BEFORE_YIELD`] polls without
/// progress, yield the core between polls (the other thread may need it).
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        if self.0 < SPINS_BEFORE_YIELD {
            self.0 += 1;
            spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// What this thread is doing with respect to a team.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// Not in a team: parallel steps go to rayon.
    Free,
    /// Leading this team: parallel steps are published to it.
    Lead(*const Team),
    /// Running a team task, or helping: parallel steps run inline.
    Busy,
}

thread_local! {
    static ROLE: Cell<Role> = const { Cell::new(Role::Free) };
}

/// Sets this thread's role until dropped, then restores the previous one.
struct RoleGuard(Role);

impl RoleGuard {
    fn enter(role: Role) -> Self {
        RoleGuard(ROLE.with(|r| r.replace(role)))
    }
}

impl Drop for RoleGuard {
    fn drop(&mut self) {
        ROLE.with(|r| r.set(self.0));
    }
}

/// One published step: its tasks, run as `run(i)` for every `i` below the step's count.
struct Step<'a> {
    run: &'a (dyn Fn(usize) + Sync),
}

/// The state shared by the leader and its helpers.
struct Team {
    /// generation (bits 32..64) | task count (16..32) | next unclaimed task (0..16).
    state: AtomicU64,
    /// The current step; valid while one of its tasks is claimed and unfinished.
    step: AtomicPtr<Step<'static>>,
    /// Tasks of the current step that have finished.
    done: AtomicUsize,
    /// Set when the leader's burst is over: helpers return.
    finished: AtomicBool,
    /// The first panic of the current step's tasks, re-raised on the leader.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Team {
    fn new() -> Self {
        Team {
            state: AtomicU64::new(0),
            step: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            panic: Mutex::new(None),
        }
    }

    /// Claims the next task of the current step, if one is left.
    fn claim(&self) -> Option<(usize, &Step<'_>)> {
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            let (count, next) = ((s >> 16) & 0xFFFF, s & 0xFFFF);
            if next >= count {
                return None;
            }
            match self.state.compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    // SAFETY: the claimed task is unfinished, so the leader is still inside
                    // `for_each` for this generation and its `Step` is alive; the Acquire
                    // exchange saw the state the leader released after storing the pointer.
                    let step = unsafe { &*self.step.load(Ordering::Relaxed) };
                    return Some((next as usize, step));
                }
                Err(now) => s = now,
            }
        }
    }

    /// Runs a claimed task, keeping a panic for the leader, and counts it done.
    fn run(&self, i: usize, step: &Step<'_>) {
        let _busy = RoleGuard::enter(Role::Busy);
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (step.run)(i))) {
            let mut first = self.panic.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(payload);
        }
        self.done.fetch_add(1, Ordering::Release);
    }

    /// A helper's life: claim and run tasks until the leader finishes.
    fn help(&self) {
        // A helper job that lands on a thread already in a team (the leader itself, inside
        // some direct rayon call) must not spin there: the leader would never finish.
        if ROLE.with(|r| r.get()) != Role::Free {
            return;
        }
        let _busy = RoleGuard::enter(Role::Busy);
        let mut idle = Backoff::default();
        while !self.finished.load(Ordering::Acquire) {
            if let Some((i, step)) = self.claim() {
                self.run(i, step);
                idle = Backoff::default();
            } else {
                idle.snooze();
            }
        }
    }

    /// The leader's parallel step: `f(i)` for every `i < n`, on all threads of the team.
    fn for_each(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if n > MAX_TASKS {
            let per = n.div_ceil(MAX_TASKS);
            let grouped = |g: usize| (g * per..((g + 1) * per).min(n)).for_each(f);
            return self.for_each(n.div_ceil(per), &grouped);
        }
        let step = Step { run: f };
        self.done.store(0, Ordering::Relaxed);
        self.step.store((&step as *const Step<'_>).cast_mut().cast(), Ordering::Relaxed);
        let generation = (self.state.load(Ordering::Relaxed) >> 32).wrapping_add(1);
        self.state.store(generation << 32 | (n as u64) << 16, Ordering::Release);
        while let Some((i, step)) = self.claim() {
            self.run(i, step);
        }
        // `step` must outlive every claimed task: wait for the helpers' last ones.
        let mut idle = Backoff::default();
        while self.done.load(Ordering::Acquire) < n {
            idle.snooze();
        }
        let panic = self.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// Sets `finished` when the leader's burst ends, by return or by panic.
struct Finish<'a>(&'a Team);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Release);
    }
}

/// Runs `body` with the rayon pool's other workers spinning beside it as a team: every
/// [`for_each_index`] of `body` is shared by the team without waking or parking threads.
/// Inside a team already, or on a one-thread pool, `body` simply runs.
pub fn with_team<R: Send>(body: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    if ROLE.with(|r| r.get()) != Role::Free || threads == 1 {
        return body();
    }
    let team = Team::new();
    rayon::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| team.help());
        }
        let _finish = Finish(&team);
        let _lead = RoleGuard::enter(Role::Lead(&team));
        body()
    })
}

/// Whether parallel steps of this thread go to a spinning team (it leads one).
pub fn leads_team() -> bool {
    matches!(ROLE.with(|r| r.get()), Role::Lead(_))
}

/// Runs `f(i)` for every `i < n`, each exactly once, in parallel: on the team this thread
/// leads, inline inside a team task, else on the rayon pool.
pub fn for_each_index(n: usize, f: impl Fn(usize) + Sync) {
    match ROLE.with(|r| r.get()) {
        // SAFETY: a `Lead` role is set only by `with_team`, whose team outlives the role.
        Role::Lead(team) => unsafe { &*team }.for_each(n, &f),
        Role::Busy => (0..n).for_each(f),
        Role::Free => {
            use rayon::prelude::*;
            (0..n).into_par_iter().for_each(&f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    #[test]
    fn every_index_runs_once_on_the_team() {
        for threads in [1, 2, 4] {
            pool(threads).install(|| {
                with_team(|| {
                    for n in [0, 1, 2, 7, 100, 1000] {
                        let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                        for_each_index(n, |i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n = {n}, {threads} threads");
                    }
                })
            });
        }
    }

    #[test]
    fn steps_beyond_the_task_field_are_grouped() {
        pool(2).install(|| {
            with_team(|| {
                let n = MAX_TASKS * 2 + 3;
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                for_each_index(n, |i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
            })
        });
    }

    #[test]
    fn nested_steps_run_inline_and_teams_do_not_nest() {
        pool(2).install(|| {
            let total = AtomicU32::new(0);
            with_team(|| {
                for_each_index(8, |_| {
                    with_team(|| {
                        for_each_index(8, |_| {
                            total.fetch_add(1, Ordering::Relaxed);
                        })
                    });
                });
            });
            assert_eq!(total.load(Ordering::Relaxed), 64);
        });
    }

    #[test]
    fn a_direct_rayon_call_inside_the_burst_does_not_hang() {
        use rayon::prelude::*;
        pool(2).install(|| {
            for _ in 0..50 {
                let sum: u64 = with_team(|| (0..10_000u64).into_par_iter().sum());
                assert_eq!(sum, 49_995_000);
            }
        });
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_after_the_step() {
        pool(2).install(|| {
            let ran = AtomicU32::new(0);
            let result = catch_unwind(AssertUnwindSafe(|| {
                with_team(|| {
                    for_each_index(64, |i| {
                        ran.fetch_add(1, Ordering::Relaxed);
                        assert!(i != 13, "task 13 fails");
                    })
                })
            }));
            assert!(result.is_err());
            assert_eq!(ran.load(Ordering::Relaxed), 64, "the other tasks still ran");
            // The pool is usable afterwards.
            with_team(|| for_each_index(4, |_| {}));
        });
    }

    #[test]
    fn concurrent_teams_from_outside_threads_finish() {
        let p = pool(2);
        std::thread::scope(|s| {
            for t in 0..6u32 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..20 {
                        let sum = AtomicU32::new(0);
                        p.install(|| {
                            with_team(|| {
                                for_each_index(100, |i| {
                                    sum.fetch_add(i as u32 + t, Ordering::Relaxed);
                                })
                            })
                        });
                        assert_eq!(sum.load(Ordering::Relaxed), 4950 + 100 * t);
                    }
                });
            }
        });
    }
}
