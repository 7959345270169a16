//! The plugins directory: the startup listing ([`scan`]) and the watcher that reports, from then
//! on, each component that appears, changes or goes ([`PluginDirWatcher`]).
//!
//! Only `*.wasm` files directly in the directory count; hidden files (a leading `.`) and the usual
//! temporary names (`#…`, `~…`, `…~`, `.part`, `.tmp`, …) are ignored, so a tool that writes a
//! temporary file and renames it into place reports once, under the final name. Whether a file
//! changed is decided by its sha256 alone: an event for a file whose content equals what was last
//! seen reports nothing.
//!
//! A half-written file is never reported. The OS events (notify) only say which files to look at,
//! and each event for a file restarts its debounce, so a file is looked at once it has been quiet
//! for the debounce time. Then it is read and must prove stable: size and modification time the
//! same before and after the read and again after a short settle, or it is looked at again later.
//! Last, the bytes must be a complete WebAssembly binary: the `\0asm` magic and a version, then
//! sections whose declared sizes add up to exactly the file's length — a copy cut short almost
//! always ends inside a section, which the stability checks alone cannot see when a writer pauses.
//! A file that holds still for [`INCOMPLETE_PATIENCE`] without becoming one is reported as it is,
//! so the host refuses it and lists the reason instead of ignoring it silently.
//!
//! The debounce is our own rather than `notify-debouncer-full`'s: that one releases events by age,
//! not after quiet, and folds a create and a remove inside its window into nothing, which would
//! lose the removal of a file this watcher had already reported from its own look at the directory
//! (at start or after a rescan). Events caused by reading (`open`, `close` without a write) are
//! ignored, so the watcher's own reads never wake it.
//!
//! notify runs the OS watcher on its thread; the checks run on one worker thread of ours, so the
//! file reads never block the async runtime. Changes arrive on a Tokio channel.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::plugin::sha256_hex;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// The first four bytes of every WebAssembly module and component.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// What changed in the plugins directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirChange {
    /// A complete component appeared, or a file's content changed: its bytes and their sha256.
    Upsert { path: PathBuf, bytes: Vec<u8>, sha256: String },
    /// A file that was reported (or was known at start) is gone: removed, or renamed away.
    Removed { path: PathBuf },
}

/// Why the plugins directory could not be listed or watched. All are the environment's fault
/// (missing directory, permissions, the OS's watch limits); the host reports them at start-up.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("failed to list the plugins directory {}", dir.display())]
    ReadDir { dir: PathBuf, source: io::Error },
    #[error("failed to read the plugin file {}", path.display())]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("failed to watch the plugins directory {}", dir.display())]
    Watch { dir: PathBuf, source: notify::Error },
    #[error("failed to start the plugins directory's worker thread")]
    Thread(#[source] io::Error),
}

/// The plugin files in `dir`, in name order, each with its bytes and their sha256. Files that are
/// not (yet) a complete WebAssembly binary are left out with a warning: the watcher reports them
/// once they are. Blocking; call it from `spawn_blocking` inside the runtime.
pub fn scan(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>, String)>, WatchError> {
    let mut names = list_plugin_names(dir).map_err(|source| WatchError::ReadDir { dir: dir.to_owned(), source })?;
    names.sort();
    let mut found = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // Gone between the listing and the read.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(WatchError::ReadFile { path, source }),
        };
        // A file that is not a whole component is returned too: the host refuses it, by name.
        let sha256 = sha256_hex(&bytes);
        found.push((path, bytes, sha256));
    }
    Ok(found)
}

/// Watches a plugins directory until dropped.
pub struct PluginDirWatcher {
    dir: PathBuf,
    watcher: Option<RecommendedWatcher>,
    to_worker: mpsc::Sender<Signal>,
    worker: Option<JoinHandle<()>>,
}

impl PluginDirWatcher {
    /// Starts watching `dir`. `known` maps each plugin file the host has loaded to the sha256 of
    /// what it loaded (as [`scan`] returned them).
    ///
    /// The first thing the watcher does is compare the directory with `known`, so whatever changed
    /// between the host's scan and now is reported too: a file not in `known` (or with another
    /// sha256) as [`DirChange::Upsert`], a known file that is gone as [`DirChange::Removed`].
    ///
    /// `debounce` is how long a file must go without events before it is looked at; the settle
    /// time of the stability check is half of it, between 10 ms and 500 ms.
    pub fn start(
        dir: &Path,
        debounce: Duration,
        known: HashMap<PathBuf, String>,
    ) -> Result<(PluginDirWatcher, UnboundedReceiver<DirChange>), WatchError> {
        let (to_worker, signals) = mpsc::channel();
        let (changes, receiver) = unbounded_channel();

        let events = to_worker.clone();
        let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
            if let Some(signal) = Signal::from_event(result) {
                // A send fails only once the worker has stopped, when nothing is listening any more.
                let _ = events.send(signal);
            }
        })
        .map_err(|source| WatchError::Watch { dir: dir.to_owned(), source })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Watch { dir: dir.to_owned(), source })?;

        let worker = Worker::new(dir, debounce, known, changes);
        let worker = std::thread::Builder::new()
            .name("sluice-plugin-dir".into())
            .spawn(move || worker.run(signals))
            .map_err(WatchError::Thread)?;

        let watcher = PluginDirWatcher { dir: dir.to_owned(), watcher: Some(watcher), to_worker, worker: Some(worker) };
        Ok((watcher, receiver))
    }

    /// The directory being watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PluginDirWatcher {
    /// Stops the OS watcher and the worker; once this returns, no further change is sent.
    fn drop(&mut self) {
        drop(self.watcher.take());
        let _ = self.to_worker.send(Signal::Stop);
        if let Some(worker) = self.worker.take() {
            // The worker never blocks for long (a read at most); a panic in it was already logged.
            let _ = worker.join();
        }
    }
}

/// What the OS watcher tells the worker.
enum Signal {
    /// Something happened to these paths (what, does not matter: the worker looks at each path).
    Paths(Vec<PathBuf>),
    /// Events may have been lost: compare the whole directory again.
    Rescan,
    Stop,
}

impl Signal {
    fn from_event(result: notify::Result<Event>) -> Option<Signal> {
        match result {
            Ok(event) if event.need_rescan() => Some(Signal::Rescan),
            // Reading a file opens and closes it; only a close after writing says anything.
            Ok(Event { kind: EventKind::Access(AccessKind::Close(AccessMode::Write)), paths, .. }) => {
                Some(Signal::Paths(paths))
            }
            Ok(Event { kind: EventKind::Access(_), .. }) => None,
            Ok(event) => Some(Signal::Paths(event.paths)),
            Err(error) => {
                tracing::warn!(%error, "the plugins directory watcher reported an error; rescanning");
                Some(Signal::Rescan)
            }
        }
    }
}

/// A file's size and modification time: if either moves, someone is still writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    modified: Option<SystemTime>,
}

/// Where a file stands between an event and its report.
enum Check {
    /// Read it and see that it holds still during the read.
    Look,
    /// It held still during the read; see that it still does after the settle time.
    Confirm { snapshot: Snapshot, bytes: Vec<u8> },
    /// It held still but is not a whole WebAssembly binary: if it still holds still after
    /// [`INCOMPLETE_PATIENCE`], it is reported as it is, so the host refuses it with a reason.
    Incomplete { snapshot: Snapshot, bytes: Vec<u8> },
}

/// How long a file that is not a whole WebAssembly binary must hold still before it is
/// reported anyway: a writer that paused has long resumed by then.
const INCOMPLETE_PATIENCE: Duration = Duration::from_secs(2);

struct Pending {
    due: Instant,
    check: Check,
}

struct Worker {
    dir: PathBuf,
    /// The directory as events may name it, if it differs from `dir`.
    canonical_dir: Option<PathBuf>,
    /// How long a file must go without events before it is looked at.
    debounce: Duration,
    settle: Duration,
    /// How soon a file that was still changing is looked at again.
    retry: Duration,
    /// The sha256 last reported (or known at start), by file name.
    seen: HashMap<OsString, String>,
    pending: HashMap<OsString, Pending>,
    changes: UnboundedSender<DirChange>,
}

impl Worker {
    fn new(
        dir: &Path,
        debounce: Duration,
        known: HashMap<PathBuf, String>,
        changes: UnboundedSender<DirChange>,
    ) -> Self {
        let canonical_dir = std::fs::canonicalize(dir).ok().filter(|canonical| canonical != dir);
        let mut worker = Worker {
            dir: dir.to_owned(),
            canonical_dir,
            debounce,
            settle: (debounce / 2).clamp(Duration::from_millis(10), Duration::from_millis(500)),
            retry: debounce.max(Duration::from_millis(10)),
            seen: HashMap::new(),
            pending: HashMap::new(),
            changes,
        };
        for (path, sha256) in known {
            if let Some(name) = worker.plugin_name(&path) {
                worker.seen.insert(name, sha256);
            }
        }
        worker
    }

    fn run(mut self, signals: mpsc::Receiver<Signal>) {
        self.rescan();
        loop {
            if self.run_due().is_err() {
                return; // Nobody is listening any more.
            }
            let wait = match self.pending.values().map(|pending| pending.due).min() {
                Some(due) => due.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(1),
            };
            match signals.recv_timeout(wait) {
                Ok(Signal::Paths(paths)) => {
                    let due = Instant::now() + self.debounce;
                    for path in paths {
                        if let Some(name) = self.plugin_name(&path) {
                            self.schedule(name, due, Check::Look);
                        }
                    }
                }
                Ok(Signal::Rescan) => self.rescan(),
                Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.changes.is_closed() {
                return;
            }
        }
    }

    /// The file name of `path` if it is a plugin file directly in the watched directory.
    fn plugin_name(&self, path: &Path) -> Option<OsString> {
        let parent = path.parent()?;
        let in_dir = parent == self.dir || self.canonical_dir.as_deref() == Some(parent);
        let name = path.file_name()?;
        (in_dir && is_plugin_file_name(name)).then(|| name.to_owned())
    }

    /// A new event restarts the checks of that file from the beginning (and so its debounce).
    fn schedule(&mut self, name: OsString, due: Instant, check: Check) {
        self.pending.insert(name, Pending { due, check });
    }

    /// Looks again at every plugin file in the directory and at every file seen so far.
    fn rescan(&mut self) {
        let mut names: HashSet<OsString> = self.seen.keys().cloned().collect();
        match list_plugin_names(&self.dir) {
            Ok(listed) => names.extend(listed),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "failed to list the plugins directory");
            }
        }
        let now = Instant::now();
        for name in names {
            self.schedule(name, now, Check::Look);
        }
    }

    /// Runs the checks that are due. Errs only when the receiving end is gone.
    fn run_due(&mut self) -> Result<(), Closed> {
        let now = Instant::now();
        let due: Vec<OsString> =
            self.pending.iter().filter(|(_, pending)| pending.due <= now).map(|(name, _)| name.clone()).collect();
        for name in due {
            if let Some(pending) = self.pending.remove(&name) {
                self.check(name, pending.check)?;
            }
        }
        Ok(())
    }

    fn check(&mut self, name: OsString, check: Check) -> Result<(), Closed> {
        let path = self.dir.join(&name);
        match check {
            Check::Look => {
                let Some(before) = self.snapshot(&name, &path)? else { return Ok(()) };
                let bytes = match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => return self.gone(name),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "failed to read a plugin file; trying again");
                        self.schedule(name, Instant::now() + self.retry, Check::Look);
                        return Ok(());
                    }
                };
                let Some(after) = self.snapshot(&name, &path)? else { return Ok(()) };
                if before != after || bytes.len() as u64 != after.len {
                    self.schedule(name, Instant::now() + self.retry, Check::Look);
                } else {
                    self.schedule(name, Instant::now() + self.settle, Check::Confirm { snapshot: after, bytes });
                }
                Ok(())
            }
            Check::Confirm { snapshot, bytes } => {
                let Some(now) = self.snapshot(&name, &path)? else { return Ok(()) };
                if now != snapshot {
                    self.schedule(name, Instant::now() + self.retry, Check::Look);
                    return Ok(());
                }
                if !is_complete_wasm(&bytes) {
                    // Most likely still being written by a writer that paused: its next write
                    // brings a new event. If none comes, the file is simply not a component.
                    tracing::debug!(path = %path.display(), "a plugin file is not a complete WebAssembly binary (yet)");
                    self.schedule(name, Instant::now() + INCOMPLETE_PATIENCE, Check::Incomplete { snapshot, bytes });
                    return Ok(());
                }
                self.settled(name, path, bytes)
            }
            Check::Incomplete { snapshot, bytes } => {
                let Some(now) = self.snapshot(&name, &path)? else { return Ok(()) };
                if now != snapshot {
                    self.schedule(name, Instant::now() + self.retry, Check::Look);
                    return Ok(());
                }
                self.settled(name, path, bytes)
            }
        }
    }

    /// The file's snapshot, or `None` when there is nothing to look at (and then it was handled:
    /// reported gone, or scheduled again after an error).
    fn snapshot(&mut self, name: &OsStr, path: &Path) -> Result<Option<Snapshot>, Closed> {
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => {
                Ok(Some(Snapshot { len: metadata.len(), modified: metadata.modified().ok() }))
            }
            // A directory or another non-file under a plugin's name counts as no plugin.
            Ok(_) => self.gone(name.to_owned()).map(|()| None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => self.gone(name.to_owned()).map(|()| None),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "failed to look at a plugin file; trying again");
                self.schedule(name.to_owned(), Instant::now() + self.retry, Check::Look);
                Ok(None)
            }
        }
    }

    /// The file held still: report it if its content is new.
    fn settled(&mut self, name: OsString, path: PathBuf, bytes: Vec<u8>) -> Result<(), Closed> {
        let sha256 = sha256_hex(&bytes);
        if self.seen.get(&name) == Some(&sha256) {
            return Ok(());
        }
        self.seen.insert(name, sha256.clone());
        self.changes.send(DirChange::Upsert { path, bytes, sha256 }).map_err(|_| Closed)
    }

    /// The file is not there: report it once, if it had been seen.
    fn gone(&mut self, name: OsString) -> Result<(), Closed> {
        self.pending.remove(&name);
        if self.seen.remove(&name).is_none() {
            return Ok(());
        }
        self.changes.send(DirChange::Removed { path: self.dir.join(name) }).map_err(|_| Closed)
    }
}

/// The receiver of changes was dropped.
struct Closed;

/// The names of the plugin files in `dir`, in no particular order.
fn list_plugin_names(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_plugin_file_name(&name) {
            continue;
        }
        // Follows symbolic links, so a link to a component counts as one.
        match std::fs::metadata(entry.path()) {
            Ok(metadata) if metadata.is_file() => names.push(name),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(names)
}

/// A `*.wasm` name that is neither hidden nor an editor's or downloader's temporary name.
fn is_plugin_file_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    let Some(stem) = name.strip_suffix(".wasm") else { return false };
    !stem.is_empty() && !name.starts_with(['.', '#', '~'])
}

/// Whether `bytes` is a whole WebAssembly binary: magic, a version (module or component layer),
/// then sections whose sizes cover the rest exactly.
fn is_complete_wasm(bytes: &[u8]) -> bool {
    let Some(rest) = bytes.strip_prefix(WASM_MAGIC) else { return false };
    let Some(mut rest) = rest.get(4..) else { return false };
    while let Some((_id, after_id)) = rest.split_first() {
        let Some((size, after_size)) = read_u32_leb128(after_id) else { return false };
        let Some(after) = usize::try_from(size).ok().and_then(|size| after_size.get(size..)) else {
            return false;
        };
        rest = after;
    }
    true
}

/// An unsigned LEB128 number of at most five bytes, and what follows it.
fn read_u32_leb128(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value = 0u32;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use tokio::time::timeout;

    use super::*;

    const DEBOUNCE: Duration = Duration::from_millis(100);
    /// Long enough for any debounced, settled change to have arrived.
    const QUIET: Duration = Duration::from_millis(800);
    const PATIENCE: Duration = Duration::from_secs(10);

    fn leb128(mut value: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    /// A valid module: the header and one custom section named `t` holding `payload`.
    fn wasm(payload: &[u8]) -> Vec<u8> {
        let mut section = vec![1, b't'];
        section.extend_from_slice(payload);
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.push(0);
        bytes.extend(leb128(section.len()));
        bytes.extend(section);
        bytes
    }

    async fn next(changes: &mut UnboundedReceiver<DirChange>) -> DirChange {
        timeout(PATIENCE, changes.recv()).await.expect("no change reported in time").expect("the watcher stopped")
    }

    async fn assert_quiet(changes: &mut UnboundedReceiver<DirChange>) {
        if let Ok(change) = timeout(QUIET, changes.recv()).await {
            panic!("expected no change, got {change:?}");
        }
    }

    fn upserted(change: DirChange) -> (PathBuf, Vec<u8>, String) {
        match change {
            DirChange::Upsert { path, bytes, sha256 } => (path, bytes, sha256),
            other => panic!("expected an upsert, got {other:?}"),
        }
    }

    fn watch(dir: &Path) -> (PluginDirWatcher, UnboundedReceiver<DirChange>) {
        PluginDirWatcher::start(dir, DEBOUNCE, HashMap::new()).expect("start the watcher")
    }

    #[test]
    fn sha256_hex_is_lower_case_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn plugin_file_names() {
        for name in ["alpha.wasm", "a-b_c.wasm", "x.y.wasm"] {
            assert!(is_plugin_file_name(OsStr::new(name)), "{name}");
        }
        for name in [
            ".alpha.wasm",
            "#alpha.wasm#",
            "~alpha.wasm",
            "alpha.wasm~",
            "alpha.wasm.tmp",
            "alpha.wasm.part",
            ".wasm",
            "alpha.WASM",
            "alpha.txt",
        ] {
            assert!(!is_plugin_file_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn a_complete_binary_is_told_from_a_cut_one() {
        let whole = wasm(&[7; 300]);
        assert!(is_complete_wasm(&whole));
        assert!(is_complete_wasm(b"\0asm\x0d\0\x01\0"), "an empty component");
        for cut in [4, 9, 10, 11, 100, whole.len() - 1] {
            assert!(!is_complete_wasm(&whole[..cut]), "cut at {cut}");
        }
        assert!(!is_complete_wasm(b"\x7fELF\x02\x01\x01\0"));
        let mut trailing = whole.clone();
        trailing.push(0);
        assert!(!is_complete_wasm(&trailing), "a section id without a size");
    }

    #[test]
    fn scan_lists_plugin_files_in_name_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (b, a) = (wasm(b"b"), wasm(b"a"));
        fs::write(dir.path().join("b.wasm"), &b).expect("write");
        fs::write(dir.path().join("a.wasm"), &a).expect("write");
        fs::write(dir.path().join(".hidden.wasm"), &a).expect("write");
        fs::write(dir.path().join("c.wasm.tmp"), &a).expect("write");
        fs::write(dir.path().join("notes.txt"), "hello").expect("write");
        fs::write(dir.path().join("cut.wasm"), &b[..b.len() - 1]).expect("write");
        fs::write(dir.path().join("text.wasm"), "not wasm").expect("write");
        fs::create_dir(dir.path().join("sub.wasm")).expect("mkdir");
        fs::write(dir.path().join("sub.wasm").join("d.wasm"), &a).expect("write");

        let found = scan(dir.path()).expect("scan");
        let listed: Vec<_> = found.iter().map(|(path, _, _)| path.clone()).collect();
        // Files that are not whole components are listed too: the host refuses them by name.
        let names = ["a.wasm", "b.wasm", "cut.wasm", "text.wasm"];
        assert_eq!(listed, names.map(|n| dir.path().join(n)));
        assert_eq!(found[0].1, a);
        assert_eq!(found[0].2, sha256_hex(&a));
        assert!(matches!(scan(&dir.path().join("missing")), Err(WatchError::ReadDir { .. })));
    }

    #[tokio::test]
    async fn a_new_file_is_reported_and_other_names_are_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_watcher, mut changes) = watch(dir.path());
        let bytes = wasm(b"first");
        fs::write(dir.path().join(".hidden.wasm"), &bytes).expect("write");
        fs::write(dir.path().join("alpha.wasm.tmp"), &bytes).expect("write");
        fs::write(dir.path().join("notes.txt"), "hello").expect("write");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(dir.path().join("sub").join("deep.wasm"), &bytes).expect("write");
        fs::write(dir.path().join("alpha.wasm"), &bytes).expect("write");

        let (path, read, sha256) = upserted(next(&mut changes).await);
        assert_eq!(path, dir.path().join("alpha.wasm"));
        assert_eq!(read, bytes);
        assert_eq!(sha256, sha256_hex(&bytes));
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn a_rewrite_reports_new_content_and_identical_content_reports_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("alpha.wasm");
        let (_watcher, mut changes) = watch(dir.path());
        fs::write(&path, wasm(b"one")).expect("write");
        assert_eq!(upserted(next(&mut changes).await).1, wasm(b"one"));

        fs::write(&path, wasm(b"two")).expect("rewrite");
        let (changed, bytes, _) = upserted(next(&mut changes).await);
        assert_eq!(changed, path);
        assert_eq!(bytes, wasm(b"two"));

        fs::write(&path, wasm(b"two")).expect("rewrite the same");
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn a_file_renamed_in_from_a_temporary_name_is_reported_once_under_its_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_watcher, mut changes) = watch(dir.path());
        let temporary = dir.path().join(".alpha.wasm.part");
        fs::write(&temporary, wasm(b"renamed")).expect("write");
        fs::rename(&temporary, dir.path().join("alpha.wasm")).expect("rename");

        let (path, bytes, _) = upserted(next(&mut changes).await);
        assert_eq!(path, dir.path().join("alpha.wasm"));
        assert_eq!(bytes, wasm(b"renamed"));
        assert_quiet(&mut changes).await;

        // And replaced by a rename over it, with new content.
        fs::write(&temporary, wasm(b"replaced")).expect("write");
        fs::rename(&temporary, dir.path().join("alpha.wasm")).expect("rename over");
        assert_eq!(upserted(next(&mut changes).await).1, wasm(b"replaced"));
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn removal_and_rename_away_are_reported_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_watcher, mut changes) = watch(dir.path());
        let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
        fs::write(&a, wasm(b"a")).expect("write");
        fs::write(&b, wasm(b"b")).expect("write");
        let mut reported = vec![upserted(next(&mut changes).await).0, upserted(next(&mut changes).await).0];
        reported.sort();
        assert_eq!(reported, [a.clone(), b.clone()]);

        fs::remove_file(&a).expect("remove");
        assert_eq!(next(&mut changes).await, DirChange::Removed { path: a });
        assert_quiet(&mut changes).await;

        fs::rename(&b, dir.path().join("b.wasm.bak")).expect("rename away");
        assert_eq!(next(&mut changes).await, DirChange::Removed { path: b });
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn a_file_written_as_the_watcher_starts_and_removed_at_once_is_reported_removed() {
        // The first look at the directory may report the file before its events are through;
        // its removal right after must still come (a debouncer that folds create + remove into
        // nothing would swallow it).
        for round in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("brief.wasm");
            let (_watcher, mut changes) = watch(dir.path());
            fs::write(&path, wasm(b"brief")).expect("write");
            assert_eq!(upserted(next(&mut changes).await).0, path, "round {round}");
            fs::remove_file(&path).expect("remove");
            assert_eq!(next(&mut changes).await, DirChange::Removed { path }, "round {round}");
        }
    }

    #[tokio::test]
    async fn a_file_written_slowly_is_reported_once_complete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("slow.wasm");
        let (_watcher, mut changes) = watch(dir.path());
        let bytes = wasm(&[42; 4000]);

        // 20 chunks 30 ms apart: 600 ms of writing, six times the debounce.
        let writer = {
            let (path, bytes) = (path.clone(), bytes.clone());
            tokio::task::spawn_blocking(move || {
                let mut file = fs::File::create(&path).expect("create");
                for chunk in bytes.chunks(bytes.len().div_ceil(20)) {
                    file.write_all(chunk).expect("write a chunk");
                    file.flush().expect("flush");
                    std::thread::sleep(Duration::from_millis(30));
                }
            })
        };
        let (reported, read, sha256) = upserted(next(&mut changes).await);
        writer.await.expect("writer");
        assert_eq!(reported, path);
        assert_eq!(read.len(), bytes.len());
        assert_eq!(read, bytes);
        assert_eq!(sha256, sha256_hex(&bytes));
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn a_file_growing_by_whole_sections_when_the_watcher_starts_is_reported_once_it_holds_still() {
        // The watcher starts while the file is being written, so its first look at the directory
        // comes with no event to wait for; and every prefix at a section boundary is a complete
        // binary. Only the stability checks keep the partial file back here. The 400 ms debounce
        // gives a 200 ms settle, well above the writer's 40 ms pauses even on a busy machine.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("growing.wasm");
        let section = wasm(&[9; 100])[8..].to_vec();
        let mut whole = b"\0asm\x01\0\0\0".to_vec();
        for _ in 0..25 {
            whole.extend_from_slice(&section);
        }
        assert!(is_complete_wasm(&whole));

        let writer = {
            let (path, section) = (path.clone(), section.clone());
            tokio::task::spawn_blocking(move || {
                let mut file = fs::File::create(&path).expect("create");
                file.write_all(b"\0asm\x01\0\0\0").expect("write the header");
                for _ in 0..25 {
                    file.write_all(&section).expect("write a section");
                    std::thread::sleep(Duration::from_millis(40));
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        let (_watcher, mut changes) =
            PluginDirWatcher::start(dir.path(), Duration::from_millis(400), HashMap::new()).expect("start");
        let (reported, read, _) = upserted(next(&mut changes).await);
        writer.await.expect("writer");
        assert_eq!(reported, path);
        assert_eq!(read.len(), whole.len(), "a partial file was reported");
        assert_eq!(read, whole);
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn a_file_that_is_not_webassembly_is_reported_once_it_has_held_still_long_enough() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_watcher, mut changes) = watch(dir.path());
        let path = dir.path().join("text.wasm");
        fs::write(&path, "certainly not a component").expect("write");
        // Not before its patience is up: a paused writer would have resumed.
        let early = tokio::time::timeout(INCOMPLETE_PATIENCE / 2, changes.recv()).await;
        assert!(early.is_err(), "reported too early: {early:?}");
        let DirChange::Upsert { path: reported, bytes, .. } = next(&mut changes).await else {
            panic!("expected an upsert")
        };
        assert_eq!((reported, bytes), (path, b"certainly not a component".to_vec()));
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn start_reports_what_changed_since_the_scan() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (same, changed, gone, new) = (
            dir.path().join("same.wasm"),
            dir.path().join("changed.wasm"),
            dir.path().join("gone.wasm"),
            dir.path().join("new.wasm"),
        );
        fs::write(&same, wasm(b"same")).expect("write");
        fs::write(&changed, wasm(b"changed")).expect("write");
        fs::write(&new, wasm(b"new")).expect("write");
        let known = HashMap::from([
            (same.clone(), sha256_hex(&wasm(b"same"))),
            (changed.clone(), sha256_hex(&wasm(b"before"))),
            (gone.clone(), sha256_hex(&wasm(b"gone"))),
        ]);

        let (_watcher, mut changes) = PluginDirWatcher::start(dir.path(), DEBOUNCE, known).expect("start");
        let mut reported = vec![next(&mut changes).await, next(&mut changes).await, next(&mut changes).await];
        reported.sort_by_key(|change| match change {
            DirChange::Upsert { path, .. } | DirChange::Removed { path } => path.clone(),
        });
        assert_eq!(
            reported,
            [
                DirChange::Upsert { path: changed, bytes: wasm(b"changed"), sha256: sha256_hex(&wasm(b"changed")) },
                DirChange::Removed { path: gone },
                DirChange::Upsert { path: new, bytes: wasm(b"new"), sha256: sha256_hex(&wasm(b"new")) },
            ]
        );
        assert_quiet(&mut changes).await;
    }

    #[tokio::test]
    async fn dropping_the_watcher_stops_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (watcher, mut changes) = watch(dir.path());
        assert_eq!(watcher.dir(), dir.path());
        drop(watcher);
        fs::write(dir.path().join("late.wasm"), wasm(b"late")).expect("write");
        assert_eq!(timeout(PATIENCE, changes.recv()).await.expect("the channel closes"), None);
    }

    #[test]
    fn watching_a_missing_directory_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing");
        assert!(matches!(PluginDirWatcher::start(&missing, DEBOUNCE, HashMap::new()), Err(WatchError::Watch { .. })));
    }
}
