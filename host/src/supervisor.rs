//! The supervisor of the host's long-running tasks (relays, projection runners, watchers): each
//! task has a name and its own cancellation token, so one can be stopped, restarted or removed
//! alone while the others carry on, and shutdown cancels them all and waits until each has run its
//! cleanup.
//!
//! A task is made by a factory that takes the task's [`CancellationToken`] (a child of the
//! supervisor's root token) and returns its future; the factory is kept, so the same task can be
//! started again later. A task that ends by itself is noted as [`TaskState::Finished`], or as
//! [`TaskState::Panicked`] with the panic's message: a panic is caught at the task's edge and never
//! reaches the other tasks. Every task is tracked by one [`TaskTracker`], which is what
//! [`Supervisor::shutdown`] waits on.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The future a task factory returns.
pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What makes a task: called with the task's token each time the task is started.
pub type TaskFactory = Arc<dyn Fn(CancellationToken) -> BoxFuture + Send + Sync + 'static>;

/// Where a named task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    /// Started and not yet ended.
    Running,
    /// Ended after its token was cancelled (by [`Supervisor::stop`] or [`Supervisor::shutdown`]).
    Stopped,
    /// Ended by itself, without being asked to.
    Finished,
    /// Panicked; the panic's message.
    Panicked(String),
}

/// Why the supervisor refused to start a task. Every variant is the caller's to handle.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A task of that name is running; stop it first, or use [`Supervisor::restart`].
    #[error("a task named {0:?} is already running")]
    AlreadyRunning(String),
    /// No task of that name was ever spawned (or it was removed).
    #[error("no task named {0:?}")]
    Unknown(String),
    /// [`Supervisor::shutdown`] has begun: no task starts any more.
    #[error("the supervisor is shut down; task {0:?} was not started")]
    ShutDown(String),
    /// Tasks are spawned on the current Tokio runtime, and there was none.
    #[error("task {0:?} must be started from within a Tokio runtime")]
    NoRuntime(String),
}

/// How often [`Supervisor::shutdown`] names the tasks it is still waiting for.
const STILL_WAITING_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Owns the host's named long-running tasks. Cheap to clone: clones share the same tasks.
/// Dropping the last clone does not stop them; [`Supervisor::shutdown`] does.
#[derive(Clone, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    root: CancellationToken,
    tracker: TaskTracker,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    by_name: BTreeMap<String, Entry>,
    /// Tells one run of a name from the next, so a late end never overwrites a newer run's state.
    next_run: u64,
}

struct Entry {
    factory: TaskFactory,
    state: TaskState,
    run: Option<Run>,
}

/// One run of a task: its token, and a token cancelled once the run has ended (a signal any
/// number of callers can await).
#[derive(Clone)]
struct Run {
    id: u64,
    token: CancellationToken,
    ended: CancellationToken,
}

impl Supervisor {
    /// A supervisor with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a task named `name`, made by `factory`, and keeps the factory for later restarts.
    /// A stopped or ended task of the same name is replaced. The task runs on the current Tokio
    /// runtime; outside one this is [`SupervisorError::NoRuntime`].
    pub fn spawn<F>(&self, name: impl Into<String>, factory: F) -> Result<(), SupervisorError>
    where
        F: Fn(CancellationToken) -> BoxFuture + Send + Sync + 'static,
    {
        let name = name.into();
        let factory: TaskFactory = Arc::new(factory);
        let mut tasks = self.inner.lock();
        if tasks.by_name.get(&name).is_some_and(|entry| entry.run.is_some()) {
            return Err(SupervisorError::AlreadyRunning(name));
        }
        self.launch(&mut tasks, &name, factory)
    }

    /// Starts again, from its stored factory, a task that is stopped or has ended.
    pub fn start(&self, name: &str) -> Result<(), SupervisorError> {
        let mut tasks = self.inner.lock();
        let Some(entry) = tasks.by_name.get(name) else {
            return Err(SupervisorError::Unknown(name.to_owned()));
        };
        if entry.run.is_some() {
            return Err(SupervisorError::AlreadyRunning(name.to_owned()));
        }
        let factory = entry.factory.clone();
        self.launch(&mut tasks, name, factory)
    }

    /// Cancels the task's token and waits until the task has ended (its cleanup included).
    /// Returns `false` if no task has that name; `true` otherwise, also when it was not running.
    pub async fn stop(&self, name: &str) -> bool {
        let run = {
            let tasks = self.inner.lock();
            let Some(entry) = tasks.by_name.get(name) else {
                return false;
            };
            entry.run.clone()
        };
        if let Some(run) = run {
            run.token.cancel();
            run.ended.cancelled().await;
        }
        true
    }

    /// Stops the task, then starts it again from its stored factory.
    pub async fn restart(&self, name: &str) -> Result<(), SupervisorError> {
        if !self.stop(name).await {
            return Err(SupervisorError::Unknown(name.to_owned()));
        }
        self.start(name)
    }

    /// Stops the task and forgets it. Returns `false` if no task has that name.
    pub async fn remove(&self, name: &str) -> bool {
        // Taken out first, so nobody can start it again while it winds down.
        let Some(entry) = self.inner.lock().by_name.remove(name) else {
            return false;
        };
        if let Some(run) = entry.run {
            run.token.cancel();
            run.ended.cancelled().await;
        }
        true
    }

    /// Whether a task of that name is running.
    pub fn is_running(&self, name: &str) -> bool {
        self.inner.lock().by_name.get(name).is_some_and(|entry| entry.run.is_some())
    }

    /// Where the task stands, or `None` if no task has that name.
    pub fn state(&self, name: &str) -> Option<TaskState> {
        self.inner.lock().by_name.get(name).map(|entry| entry.state.clone())
    }

    /// The names of all tasks, running or not, in name order.
    pub fn names(&self) -> Vec<String> {
        self.inner.lock().by_name.keys().cloned().collect()
    }

    /// Cancels every task, refuses new ones, and waits until all have ended. While it waits it
    /// names, every [`STILL_WAITING_EVERY`], the tasks that have not ended yet: a shutdown that
    /// hangs says on what.
    pub async fn shutdown(&self) {
        self.inner.root.cancel();
        self.inner.tracker.close();
        while tokio::time::timeout(STILL_WAITING_EVERY, self.inner.tracker.wait()).await.is_err() {
            tracing::warn!(tasks = ?self.running(), "shutdown is still waiting for these tasks to end");
        }
    }

    /// The names of the tasks running now, in name order.
    pub fn running(&self) -> Vec<String> {
        self.inner
            .lock()
            .by_name
            .iter()
            .filter(|(_, entry)| entry.run.is_some())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Starts one run of `name`. The factory is called inside the spawned task, not under the lock,
    /// so a factory may use the supervisor, and a factory that panics is reported like a task that
    /// panics.
    fn launch(&self, tasks: &mut Tasks, name: &str, factory: TaskFactory) -> Result<(), SupervisorError> {
        if self.inner.root.is_cancelled() {
            return Err(SupervisorError::ShutDown(name.to_owned()));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SupervisorError::NoRuntime(name.to_owned()));
        };
        let run = Run { id: tasks.next_run, token: self.inner.root.child_token(), ended: CancellationToken::new() };
        tasks.next_run += 1;
        let entry = Entry { factory: factory.clone(), state: TaskState::Running, run: Some(run.clone()) };
        tasks.by_name.insert(name.to_owned(), entry);

        let inner = Arc::downgrade(&self.inner);
        let name = name.to_owned();
        let name_for_span = name.clone();
        let task = async move {
            let token = run.token.clone();
            let outcome = CatchUnwind(Box::pin(async move { factory(token).await })).await;
            let state = match outcome {
                Ok(()) if run.token.is_cancelled() => TaskState::Stopped,
                Ok(()) => {
                    tracing::info!(task = %name, "task ended by itself");
                    TaskState::Finished
                }
                Err(message) => {
                    tracing::error!(task = %name, "task panicked: {message}");
                    TaskState::Panicked(message)
                }
            };
            if let Some(inner) = inner.upgrade() {
                let mut tasks = inner.lock();
                if let Some(entry) = tasks.by_name.get_mut(&name)
                    && entry.run.as_ref().is_some_and(|current| current.id == run.id)
                {
                    entry.run = None;
                    entry.state = state;
                }
            }
            run.ended.cancel();
        };
        // Every line the task logs names it (a consumer's task is named after its plugin).
        let span = tracing::info_span!("task", task = %name_for_span);
        self.inner.tracker.spawn_on(tracing::Instrument::instrument(task, span), &runtime);
        Ok(())
    }
}

impl Inner {
    /// No user code runs under this lock, so a poisoned lock still holds consistent data.
    fn lock(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs a future, turning a panic in any of its polls into `Err(message)`.
struct CatchUnwind(BoxFuture);

impl Future for CatchUnwind {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// A task that waits for its token, then takes a while to clean up and marks `cleaned`.
    fn slow_cleanup(started: Arc<AtomicUsize>, cleaned: Arc<AtomicBool>) -> impl Fn(CancellationToken) -> BoxFuture {
        move |token| {
            started.fetch_add(1, Ordering::SeqCst);
            let cleaned = cleaned.clone();
            Box::pin(async move {
                token.cancelled().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                cleaned.store(true, Ordering::SeqCst);
            })
        }
    }

    fn forever() -> impl Fn(CancellationToken) -> BoxFuture {
        |token| Box::pin(async move { token.cancelled().await })
    }

    async fn explode() {
        panic!("boom at offset 7")
    }

    async fn wait_until_ended(supervisor: &Supervisor, name: &str) -> TaskState {
        for _ in 0..200 {
            match supervisor.state(name) {
                Some(TaskState::Running) => tokio::time::sleep(Duration::from_millis(5)).await,
                Some(state) => return state,
                None => panic!("no task named {name}"),
            }
        }
        panic!("task {name} did not end");
    }

    #[tokio::test]
    async fn stop_waits_for_the_tasks_cleanup() {
        let supervisor = Supervisor::new();
        let (started, cleaned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        supervisor.spawn("relay", slow_cleanup(started, cleaned.clone())).expect("spawn");
        assert!(supervisor.is_running("relay"));
        assert_eq!(supervisor.state("relay"), Some(TaskState::Running));

        assert!(supervisor.stop("relay").await);
        assert!(cleaned.load(Ordering::SeqCst), "stop returned before the cleanup ran");
        assert!(!supervisor.is_running("relay"));
        assert_eq!(supervisor.state("relay"), Some(TaskState::Stopped));
        // Stopping a stopped task is fine; an unknown one is reported.
        assert!(supervisor.stop("relay").await);
        assert!(!supervisor.stop("nobody").await);
    }

    #[tokio::test]
    async fn stopping_one_task_leaves_the_others_running() {
        let supervisor = Supervisor::new();
        supervisor.spawn("a", forever()).expect("spawn a");
        supervisor.spawn("b", forever()).expect("spawn b");
        assert!(supervisor.stop("a").await);
        assert!(!supervisor.is_running("a"));
        assert!(supervisor.is_running("b"));
        assert_eq!(supervisor.names(), ["a", "b"]);
    }

    #[tokio::test]
    async fn restart_runs_the_factory_again() {
        let supervisor = Supervisor::new();
        let (started, cleaned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        supervisor.spawn("projection", slow_cleanup(started.clone(), cleaned.clone())).expect("spawn");
        tokio::task::yield_now().await;
        supervisor.restart("projection").await.expect("restart");
        assert!(cleaned.load(Ordering::SeqCst), "the first run was not stopped before the second");
        assert!(supervisor.is_running("projection"));
        // The factory runs on the task's first poll.
        for _ in 0..100 {
            if started.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert!(matches!(supervisor.restart("nobody").await, Err(SupervisorError::Unknown(_))));
    }

    #[tokio::test]
    async fn a_stopped_task_starts_again_and_a_running_one_is_not_spawned_twice() {
        let supervisor = Supervisor::new();
        supervisor.spawn("watcher", forever()).expect("spawn");
        assert!(matches!(supervisor.spawn("watcher", forever()), Err(SupervisorError::AlreadyRunning(_))));
        assert!(matches!(supervisor.start("watcher"), Err(SupervisorError::AlreadyRunning(_))));
        assert!(supervisor.stop("watcher").await);
        supervisor.start("watcher").expect("start");
        assert!(supervisor.is_running("watcher"));
        assert!(matches!(supervisor.start("nobody"), Err(SupervisorError::Unknown(_))));
        // A stopped name may be spawned again, with a new factory.
        assert!(supervisor.stop("watcher").await);
        supervisor.spawn("watcher", forever()).expect("spawn again");
        assert!(supervisor.is_running("watcher"));
    }

    #[tokio::test]
    async fn remove_stops_and_forgets() {
        let supervisor = Supervisor::new();
        let (started, cleaned) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        supervisor.spawn("gone", slow_cleanup(started, cleaned.clone())).expect("spawn");
        assert!(supervisor.remove("gone").await);
        assert!(cleaned.load(Ordering::SeqCst));
        assert_eq!(supervisor.state("gone"), None);
        assert!(supervisor.names().is_empty());
        assert!(!supervisor.remove("gone").await);
    }

    #[tokio::test]
    async fn shutdown_waits_for_every_task_and_refuses_new_ones() {
        let supervisor = Supervisor::new();
        let cleaned: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
        for (i, flag) in cleaned.iter().enumerate() {
            let factory = slow_cleanup(Arc::new(AtomicUsize::new(0)), flag.clone());
            supervisor.spawn(format!("task-{i}"), factory).expect("spawn");
        }
        supervisor.clone().shutdown().await;
        assert!(cleaned.iter().all(|flag| flag.load(Ordering::SeqCst)), "shutdown returned before a cleanup ran");
        for i in 0..3 {
            assert_eq!(supervisor.state(&format!("task-{i}")), Some(TaskState::Stopped));
        }
        assert!(matches!(supervisor.spawn("late", forever()), Err(SupervisorError::ShutDown(_))));
        assert!(matches!(supervisor.start("task-0"), Err(SupervisorError::ShutDown(_))));
    }

    #[tokio::test]
    async fn a_task_slow_to_end_is_named_while_shutdown_waits_for_it() {
        let supervisor = Supervisor::new();
        supervisor.spawn("quick", forever()).expect("spawn quick");
        // Ends only once the test lets it, however long after its cancel that is.
        let release = CancellationToken::new();
        let slow = {
            let release = release.clone();
            move |token: CancellationToken| -> BoxFuture {
                let release = release.clone();
                Box::pin(async move {
                    token.cancelled().await;
                    release.cancelled().await;
                })
            }
        };
        supervisor.spawn("slow", slow).expect("spawn slow");
        assert_eq!(supervisor.running(), vec!["quick".to_owned(), "slow".to_owned()]);
        let shutdown = tokio::spawn({
            let supervisor = supervisor.clone();
            async move { supervisor.shutdown().await }
        });
        for _ in 0..500 {
            if supervisor.running() == ["slow"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(supervisor.running(), vec!["slow".to_owned()], "the quick one ends on its cancel");
        assert!(!shutdown.is_finished(), "shutdown returned with a task still running");
        release.cancel();
        shutdown.await.expect("shutdown");
        assert!(supervisor.running().is_empty());
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_and_the_others_carry_on() {
        let supervisor = Supervisor::new();
        supervisor.spawn("steady", forever()).expect("spawn steady");
        supervisor.spawn("fragile", |_token| Box::pin(explode()) as BoxFuture).expect("spawn fragile");
        assert_eq!(wait_until_ended(&supervisor, "fragile").await, TaskState::Panicked("boom at offset 7".into()));
        assert!(!supervisor.is_running("fragile"));
        assert!(supervisor.is_running("steady"));
        // A panicked task can be started again.
        supervisor.start("fragile").expect("start again");
        assert!(matches!(wait_until_ended(&supervisor, "fragile").await, TaskState::Panicked(_)));
        supervisor.shutdown().await;
        assert_eq!(supervisor.state("steady"), Some(TaskState::Stopped));
    }

    #[tokio::test]
    async fn a_factory_that_panics_is_reported_like_a_task_that_panics() {
        let supervisor = Supervisor::new();
        supervisor.spawn("broken", |_token| -> BoxFuture { panic!("no config") }).expect("spawn");
        assert_eq!(wait_until_ended(&supervisor, "broken").await, TaskState::Panicked("no config".into()));
    }

    #[tokio::test]
    async fn a_task_that_returns_by_itself_is_finished() {
        let supervisor = Supervisor::new();
        supervisor.spawn("once", |_token| Box::pin(async {}) as BoxFuture).expect("spawn");
        assert_eq!(wait_until_ended(&supervisor, "once").await, TaskState::Finished);
        assert!(!supervisor.is_running("once"));
        assert!(supervisor.stop("once").await);
    }

    #[test]
    fn spawning_outside_a_runtime_is_an_error() {
        let supervisor = Supervisor::new();
        assert!(matches!(supervisor.spawn("early", forever()), Err(SupervisorError::NoRuntime(_))));
        // Nothing was registered.
        assert_eq!(supervisor.state("early"), None);
    }
}
