//! Background tasks: their panic boundary and their liveness record, which `/health` reads.
//!
//! Every background loop (the maintenance jobs of [`crate::maintenance`], the courier, the
//! store sync) registers a [`Task`] under its name in [`Tasks`] and runs each iteration through
//! [`Task::run`]. A panic in an iteration is caught there: logged at error with the task's name,
//! followed by a pause of [`PANIC_PAUSE`] (so a task that panics every time does not spin), and
//! the loop goes on with its next iteration. The record keeps when the task last completed an
//! iteration; a task that has not completed one within its expected interval (twice its period
//! plus [`MARGIN`], counted from its registration before the first one) is late, and `/health`
//! answers 503 naming it. A task that is off (pepper rotation with `rotateEvery: 0`, a store
//! that is not enabled, ...) is never registered and so never late.
//!
//! In debug builds only, the environment variable `OXISD_TEST_PANIC_TASK` makes tasks panic,
//! for the integration tests: a comma-separated list of `name` (panics in every iteration) or
//! `name:N` (panics in its first N iterations).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a task pauses after an iteration panicked, before its loop goes on.
pub const PANIC_PAUSE: Duration = Duration::from_secs(1);

/// Added to twice a task's period to make its expected interval.
pub const MARGIN: Duration = Duration::from_secs(5);

/// One background task: its name, its period and when it last completed an iteration.
pub struct Task {
    name: &'static str,
    period: Duration,
    /// When the last iteration completed (the registration, before the first).
    last_done: Mutex<Instant>,
    /// Iterations started.
    iterations: AtomicU64,
    /// Iterations that panicked.
    panics: AtomicU64,
    /// Test seam: the first this many iterations panic (`u64::MAX`: all).
    #[cfg(debug_assertions)]
    injected_panics: u64,
}

impl Task {
    fn new(name: &'static str, period: Duration, now: Instant) -> Task {
        Task {
            name,
            period,
            last_done: Mutex::new(now),
            iterations: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            #[cfg(debug_assertions)]
            injected_panics: injected_panics(name),
        }
    }

    /// The task's name, as in the log and in `/health`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Iterations that panicked so far.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Runs one iteration of the task under a panic boundary: `Some` with what `work` returned
    /// (and the task recorded as alive), or `None` after a panic, which is logged at error with
    /// the task's name and followed by a pause of [`PANIC_PAUSE`] (cut short by an unpark).
    pub fn run<R>(&self, work: impl FnOnce() -> R) -> Option<R> {
        let iteration = self.iterations.fetch_add(1, Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.maybe_inject_panic(iteration);
            work()
        }));
        match outcome {
            Ok(value) => {
                *self.last_done.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                Some(value)
            }
            Err(payload) => {
                self.panics.fetch_add(1, Ordering::Relaxed);
                crate::metrics::METRICS.task_panics.inc();
                log::error!(
                    "background task '{}' panicked (it goes on after a pause of {} s): {}",
                    self.name,
                    PANIC_PAUSE.as_secs(),
                    panic_message(payload.as_ref())
                );
                std::thread::park_timeout(PANIC_PAUSE);
                None
            }
        }
    }

    /// The longest the task may go without completing an iteration.
    pub fn expected_interval(&self) -> Duration {
        self.period.saturating_mul(2).saturating_add(MARGIN)
    }

    fn is_late(&self, now: Instant) -> bool {
        let last = *self.last_done.lock().unwrap_or_else(|p| p.into_inner());
        now.saturating_duration_since(last) > self.expected_interval()
    }

    #[cfg(debug_assertions)]
    fn maybe_inject_panic(&self, iteration: u64) {
        if iteration < self.injected_panics {
            panic!(
                "injected by OXISD_TEST_PANIC_TASK in iteration {} of '{}'",
                iteration + 1,
                self.name
            );
        }
    }

    #[cfg(not(debug_assertions))]
    fn maybe_inject_panic(&self, _iteration: u64) {}
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// How many of its first iterations `OXISD_TEST_PANIC_TASK` makes the task `name` panic in.
#[cfg(debug_assertions)]
fn injected_panics(name: &str) -> u64 {
    let Ok(value) = std::env::var("OXISD_TEST_PANIC_TASK") else {
        return 0;
    };
    let count = parse_injected(&value, name);
    if count > 0 {
        log::warn!("OXISD_TEST_PANIC_TASK (a test seam) makes background task '{name}' panic");
    }
    count
}

#[cfg(debug_assertions)]
fn parse_injected(value: &str, name: &str) -> u64 {
    for item in value.split(',').map(str::trim) {
        match item.split_once(':') {
            Some((task, n)) if task == name => return n.trim().parse().unwrap_or(u64::MAX),
            None if item == name => return u64::MAX,
            _ => {}
        }
    }
    0
}

/// The registry of the running background tasks.
#[derive(Default)]
pub struct Tasks {
    list: Mutex<Vec<Arc<Task>>>,
}

impl Tasks {
    /// No tasks yet.
    pub fn new() -> Tasks {
        Tasks::default()
    }

    /// Registers a task that completes an iteration about every `period`; it counts as alive
    /// from now.
    pub fn register(&self, name: &'static str, period: Duration) -> Arc<Task> {
        let task = Arc::new(Task::new(name, period, Instant::now()));
        self.lock().push(task.clone());
        task
    }

    /// The names of the registered tasks.
    pub fn names(&self) -> Vec<&'static str> {
        self.lock().iter().map(|t| t.name).collect()
    }

    /// The names of the tasks that have not completed an iteration within their expected
    /// interval.
    pub fn late(&self) -> Vec<&'static str> {
        self.late_at(Instant::now())
    }

    fn late_at(&self, now: Instant) -> Vec<&'static str> {
        self.lock()
            .iter()
            .filter(|t| t.is_late(now))
            .map(|t| t.name)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Task>>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Waits until `deadline` or until `stop` is set (checked whenever the thread is unparked);
/// true when the deadline came.
pub fn wait_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Starts a thread named `thread` that runs `iteration` every `every` (the first time at once
/// when `at_start`, else after `every`) until `stop` is set (unpark the thread to make it
/// notice). `iteration` runs its tasks through [`Task::run`]. `None` (logged with
/// `consequence`) when the thread cannot be started.
pub fn spawn_periodic(
    thread: &str,
    every: Duration,
    at_start: bool,
    stop: Arc<AtomicBool>,
    consequence: &str,
    mut iteration: impl FnMut() + Send + 'static,
) -> Option<JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            if !at_start && !wait_until(Instant::now() + every, &stop) {
                return;
            }
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                iteration();
                wait_until(started + every, &stop);
            }
        });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::error!("cannot start the {thread} thread, {consequence}: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_caught_and_the_task_goes_on() {
        let tasks = Tasks::new();
        let task = tasks.register("unit", Duration::from_secs(1));
        std::thread::current().unpark(); // cuts the pause short
        assert_eq!(task.run(|| -> u32 { panic!("boom") }), None);
        assert_eq!(task.panics(), 1);
        assert_eq!(task.run(|| 7), Some(7));
    }

    #[test]
    fn a_task_is_late_after_twice_its_period_and_the_margin() {
        let tasks = Tasks::new();
        let task = tasks.register("slow", Duration::from_secs(10));
        let now = Instant::now();
        assert!(tasks.late_at(now + Duration::from_secs(24)).is_empty());
        assert_eq!(tasks.late_at(now + Duration::from_secs(26)), vec!["slow"]);
        task.run(|| ());
        assert!(
            tasks
                .late_at(Instant::now() + Duration::from_secs(24))
                .is_empty()
        );
    }

    #[cfg(debug_assertions)]
    #[test]
    fn the_test_seam_names_tasks_and_counts() {
        assert_eq!(parse_injected("sweeper", "sweeper"), u64::MAX);
        assert_eq!(parse_injected("courier, sweeper:2", "sweeper"), 2);
        assert_eq!(parse_injected("courier:1", "sweeper"), 0);
        assert_eq!(parse_injected("", "sweeper"), 0);
    }
}
