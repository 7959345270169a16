//! The versions the host has run of each plugin, kept on disk by sha256 so an operator can see
//! what ran when and roll back to an earlier build without having kept the file.
//!
//! Layout, under the folder the caller chooses (`<data-dir>/versions`):
//!
//! ```text
//! <dir>/<plugin>/<sha256>.wasm   the component's bytes, named by their sha256
//! <dir>/<plugin>/index.json      {"versions": [...]}, most recently activated first
//! ```
//!
//! Every file is written to a temporary name, synced, then renamed into place, so a crash leaves
//! either the old file or the new one, never a torn one. The index's order is the activation order
//! (timestamps are for people; a clock stepping back cannot reorder it). Only the last `keep`
//! versions by activation are kept (5 unless set), and never the one just recorded is pruned.
//!
//! Plugin names are checked (letters, digits, `-`, `_`, at most 100) and sha256s must be 64
//! lower-case hex digits, so no argument can reach outside the folder. All I/O is blocking and
//! updates are serialised by a lock shared by clones: call it from `spawn_blocking` in async code.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::plugin::sha256_hex;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How many versions per plugin are kept unless [`VersionStore::with_keep`] says otherwise.
pub const DEFAULT_KEEP: usize = 5;

/// The longest plugin name accepted.
const MAX_PLUGIN_NAME: usize = 100;

const INDEX_FILE: &str = "index.json";

/// One stored version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredVersion {
    /// The lower-case hex sha256 of the component's bytes; also its file name.
    pub sha256: String,
    /// The component's size in bytes.
    pub size: u64,
    /// Where these bytes came from when first stored (a path, `upload`, …), as the caller said.
    pub source: String,
    /// When these bytes were first recorded (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub first_seen: DateTime<Utc>,
    /// When these bytes were last made the running version (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub last_activated: DateTime<Utc>,
    /// Installed with `force` over stored events it cannot read: a restart loads it again
    /// (with its mismatch listed) rather than refusing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// Why a version could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// The caller's fault: a plugin name with characters outside `[A-Za-z0-9_-]`, empty or too
    /// long. Answered as a bad request.
    #[error("invalid plugin name {0:?}: use 1 to 100 letters, digits, '-' or '_'")]
    InvalidPluginName(String),
    /// The caller's fault: not 64 lower-case hex digits. Answered as a bad request.
    #[error("invalid sha256 {0:?}: expected 64 lower-case hex digits")]
    InvalidSha256(String),
    /// The disk's fault (permissions, space, a vanished folder).
    #[error("failed to {action} {}", path.display())]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    /// Someone edited or damaged an index file; it is left as found for an operator to look at.
    #[error("the version index {} is damaged", path.display())]
    CorruptIndex { path: PathBuf, source: serde_json::Error },
    /// A stored component's bytes no longer hash to its name: the disk or someone changed them.
    #[error("stored version {sha256} of plugin {plugin} is damaged: its bytes hash to {actual}")]
    CorruptVersion { plugin: String, sha256: String, actual: String },
}

/// The on-disk index of one plugin.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    /// Most recently activated first.
    versions: Vec<StoredVersion>,
}

/// The versions folder. Cheap to clone; clones share the lock that serialises updates.
#[derive(Debug, Clone)]
pub struct VersionStore {
    dir: PathBuf,
    keep: usize,
    updates: Arc<Mutex<()>>,
}

impl VersionStore {
    /// A store in `dir` (created on first record), keeping [`DEFAULT_KEEP`] versions per plugin.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VersionStore { dir: dir.into(), keep: DEFAULT_KEEP, updates: Arc::new(Mutex::new(())) }
    }

    /// Keeps the last `keep` versions per plugin (at least one: the one just recorded).
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep.max(1);
        self
    }

    /// The folder the versions live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` as a version of `plugin` unless already stored, and marks it the most
    /// recently activated; then prunes the plugin's versions to the last `keep` by activation.
    /// `source` is kept from the first time these bytes are recorded.
    pub fn record(&self, plugin: &str, bytes: &[u8], source: &str) -> Result<StoredVersion, VersionError> {
        check_plugin_name(plugin)?;
        // No code that can panic holds this lock in a way that leaves files half-updated: the
        // files themselves are replaced atomically, so a poisoned lock is still safe to take.
        let _update = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let plugin_dir = self.dir.join(plugin);
        fs::create_dir_all(&plugin_dir).map_err(io_error("create", &plugin_dir))?;

        let sha256 = sha256_hex(bytes);
        let file = plugin_dir.join(format!("{sha256}.wasm"));
        if !holds(&file, &sha256)? {
            write_atomically(&file, bytes)?;
        }

        let mut index = self.load_index(plugin)?;
        let now = Utc::now();
        let version = match index.versions.iter().position(|version| version.sha256 == sha256) {
            Some(at) => StoredVersion { last_activated: now, ..index.versions.remove(at) },
            None => StoredVersion {
                sha256,
                size: bytes.len() as u64,
                source: source.to_owned(),
                first_seen: now,
                last_activated: now,
                forced: false,
            },
        };
        index.versions.insert(0, version.clone());
        let pruned = index.versions.split_off(self.keep.min(index.versions.len()));

        self.save_index(plugin, &index)?;

        // The index no longer names them, so a failure here only leaves a file behind, which
        // the next record sweeps up.
        for old in pruned {
            remove_if_present(&plugin_dir.join(format!("{}.wasm", old.sha256)));
        }
        sweep(&plugin_dir, &index);
        Ok(version)
    }

    /// Mark the stored version `sha256` of `plugin` as installed by force. Nothing when it is not
    /// stored.
    pub fn mark_forced(&self, plugin: &str, sha256: &str) -> Result<(), VersionError> {
        check_plugin_name(plugin)?;
        check_sha256(sha256)?;
        let _update = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let mut index = self.load_index(plugin)?;
        let Some(version) = index.versions.iter_mut().find(|v| v.sha256 == sha256) else { return Ok(()) };
        if version.forced {
            return Ok(());
        }
        version.forced = true;
        self.save_index(plugin, &index)
    }

    /// Whether version `sha256` of `plugin` was installed by force (false when it is not stored).
    pub fn was_forced(&self, plugin: &str, sha256: &str) -> Result<bool, VersionError> {
        Ok(self.list(plugin)?.iter().any(|v| v.sha256 == sha256 && v.forced))
    }

    /// The stored versions of `plugin`, most recently activated first; none if it has none.
    pub fn list(&self, plugin: &str) -> Result<Vec<StoredVersion>, VersionError> {
        check_plugin_name(plugin)?;
        Ok(self.load_index(plugin)?.versions)
    }

    /// The plugins that have stored versions, in name order.
    pub fn plugins(&self) -> Result<Vec<String>, VersionError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error("list", &self.dir)(error)),
        };
        let mut plugins = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if check_plugin_name(&name).is_ok() && entry.path().join(INDEX_FILE).is_file() {
                plugins.push(name);
            }
        }
        plugins.sort();
        Ok(plugins)
    }

    /// The bytes of one stored version, checked against their sha256; `None` if not stored.
    pub fn read(&self, plugin: &str, sha256: &str) -> Result<Option<Vec<u8>>, VersionError> {
        check_plugin_name(plugin)?;
        check_sha256(sha256)?;
        let path = self.dir.join(plugin).join(format!("{sha256}.wasm"));
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("read", &path)(error)),
        };
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(VersionError::CorruptVersion { plugin: plugin.to_owned(), sha256: sha256.to_owned(), actual });
        }
        Ok(Some(bytes))
    }

    /// Replace `plugin`'s index with `index`, whole or not at all.
    fn save_index(&self, plugin: &str, index: &Index) -> Result<(), VersionError> {
        let path = self.dir.join(plugin).join(INDEX_FILE);
        let encoded = serde_json::to_vec_pretty(index).map_err(|error| VersionError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(error),
        })?;
        write_atomically(&path, &encoded)
    }

    fn load_index(&self, plugin: &str) -> Result<Index, VersionError> {
        let path = self.dir.join(plugin).join(INDEX_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| VersionError::CorruptIndex { path, source }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(error) => Err(io_error("read", &path)(error)),
        }
    }
}

fn check_plugin_name(name: &str) -> Result<(), VersionError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if valid { Ok(()) } else { Err(VersionError::InvalidPluginName(name.to_owned())) }
}

fn check_sha256(sha256: &str) -> Result<(), VersionError> {
    if is_sha256(sha256) { Ok(()) } else { Err(VersionError::InvalidSha256(sha256.to_owned())) }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> VersionError {
    let path = path.to_owned();
    move |source| VersionError::Io { action, path, source }
}

/// Whether `file` exists and holds bytes hashing to `sha256` (a damaged copy gets rewritten).
fn holds(file: &Path, sha256: &str) -> Result<bool, VersionError> {
    match fs::read(file) {
        Ok(bytes) => Ok(sha256_hex(&bytes) == sha256),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(io_error("read", file)(error)),
    }
}

/// Writes `bytes` to `path` through a synced temporary file renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), VersionError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        remove_if_present(&temporary);
        return Err(io_error("write", &temporary)(error));
    }
    if let Err(error) = fs::rename(&temporary, path) {
        remove_if_present(&temporary);
        return Err(io_error("rename into place", path)(error));
    }
    // Makes the rename itself durable. Directories cannot be opened for this on every platform,
    // and the data is already safe under either name, so a failure is not an error.
    #[cfg(unix)]
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn remove_if_present(path: &Path) {
    if let Err(error) = fs::remove_file(path)
        && error.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "failed to remove a file from the versions folder");
    }
}

/// Removes what a crash may have left in a plugin's folder: components the index no longer names
/// and temporary files (all writes happen under the update lock, so none is in progress).
fn sweep(plugin_dir: &Path, index: &Index) {
    let Ok(entries) = fs::read_dir(plugin_dir) else { return };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        let orphan = name
            .strip_suffix(".wasm")
            .is_some_and(|sha256| is_sha256(sha256) && !index.versions.iter().any(|version| version.sha256 == sha256));
        let temporary = name.starts_with('.') && name.ends_with(".tmp");
        if orphan || temporary {
            remove_if_present(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, VersionStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = VersionStore::new(dir.path().join("versions"));
        (dir, store)
    }

    fn shas(versions: &[StoredVersion]) -> Vec<String> {
        versions.iter().map(|version| version.sha256.clone()).collect()
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("list")
            .map(|entry| entry.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn record_stores_the_bytes_and_lists_newest_activation_first() {
        let (_dir, store) = store();
        let first = store.record("alpha", b"one", "plugins/alpha.wasm").expect("record");
        let second = store.record("alpha", b"two", "upload").expect("record");
        assert_eq!(first.sha256, sha256_hex(b"one"));
        assert_eq!(first.size, 3);
        assert_eq!(first.source, "plugins/alpha.wasm");
        assert_eq!(first.first_seen, first.last_activated);

        assert_eq!(store.list("alpha").expect("list"), [second.clone(), first.clone()]);
        assert_eq!(store.read("alpha", &first.sha256).expect("read"), Some(b"one".to_vec()));
        let mut expected =
            vec![format!("{}.wasm", first.sha256), format!("{}.wasm", second.sha256), "index.json".into()];
        expected.sort();
        assert_eq!(files_in(&store.dir().join("alpha")), expected);
        assert_eq!(store.plugins().expect("plugins"), ["alpha"]);
        assert!(store.list("never-recorded").expect("list").is_empty());
    }

    #[test]
    fn recording_the_same_bytes_again_moves_them_to_the_front_without_a_copy() {
        let (_dir, store) = store();
        let first = store.record("alpha", b"one", "plugins/alpha.wasm").expect("record");
        store.record("alpha", b"two", "upload").expect("record");
        let again = store.record("alpha", b"one", "rollback").expect("record again");

        assert_eq!(again.sha256, first.sha256);
        assert_eq!(again.first_seen, first.first_seen);
        assert_eq!(again.source, "plugins/alpha.wasm", "the source of the first record stays");
        assert!(again.last_activated >= first.last_activated);
        assert_eq!(shas(&store.list("alpha").expect("list")), [sha256_hex(b"one"), sha256_hex(b"two")]);
        assert_eq!(files_in(&store.dir().join("alpha")).len(), 3, "two components and the index");
    }

    #[test]
    fn a_forced_version_stays_forced_when_recorded_again_and_others_do_not() {
        let (_dir, store) = store();
        let one = store.record("alpha", b"one", "upload").expect("record");
        store.record("alpha", b"two", "upload").expect("record");
        assert!(!store.was_forced("alpha", &one.sha256).expect("read"));
        store.mark_forced("alpha", &one.sha256).expect("mark");
        store.record("alpha", b"one", "rollback").expect("record again");
        assert!(store.was_forced("alpha", &one.sha256).expect("read"));
        assert!(!store.was_forced("alpha", &sha256_hex(b"two")).expect("read"));
        // Unknown versions are not forced, and marking one changes nothing.
        store.mark_forced("alpha", &sha256_hex(b"three")).expect("mark");
        assert!(!store.was_forced("alpha", &sha256_hex(b"three")).expect("read"));
        assert_eq!(store.list("alpha").expect("list").len(), 2);
    }

    #[test]
    fn versions_are_pruned_to_the_last_five_activated() {
        let (_dir, store) = store();
        for n in 0..7 {
            store.record("alpha", format!("build {n}").as_bytes(), "test").expect("record");
        }
        let kept = store.list("alpha").expect("list");
        let expected: Vec<String> = (2..7).rev().map(|n| sha256_hex(format!("build {n}").as_bytes())).collect();
        assert_eq!(shas(&kept), expected);
        assert_eq!(store.read("alpha", &sha256_hex(b"build 0")).expect("read"), None, "pruned bytes are deleted");
        assert_eq!(files_in(&store.dir().join("alpha")).len(), 6, "five components and the index");

        // Reactivating an old one keeps it and prunes the oldest other one instead.
        store.record("alpha", b"build 2", "rollback").expect("record");
        store.record("alpha", b"build 7", "test").expect("record");
        let kept = shas(&store.list("alpha").expect("list"));
        assert_eq!(kept[..2], [sha256_hex(b"build 7"), sha256_hex(b"build 2")]);
        assert!(!kept.contains(&sha256_hex(b"build 3")));
    }

    #[test]
    fn the_one_just_recorded_is_never_pruned() {
        let (_dir, store) = store();
        let store = store.with_keep(0);
        store.record("alpha", b"one", "test").expect("record");
        let latest = store.record("alpha", b"two", "test").expect("record");
        assert_eq!(store.list("alpha").expect("list"), std::slice::from_ref(&latest));
        assert_eq!(store.read("alpha", &latest.sha256).expect("read"), Some(b"two".to_vec()));
    }

    #[test]
    fn read_verifies_the_bytes() {
        let (_dir, store) = store();
        let version = store.record("alpha", b"original", "test").expect("record");
        let path = store.dir().join("alpha").join(format!("{}.wasm", version.sha256));
        fs::write(&path, b"tampered").expect("tamper");
        match store.read("alpha", &version.sha256) {
            Err(VersionError::CorruptVersion { actual, .. }) => assert_eq!(actual, sha256_hex(b"tampered")),
            other => panic!("expected a damaged version, got {other:?}"),
        }
        // Recording the same bytes again repairs the copy.
        store.record("alpha", b"original", "test").expect("record");
        assert_eq!(store.read("alpha", &version.sha256).expect("read"), Some(b"original".to_vec()));
        assert_eq!(store.read("alpha", &sha256_hex(b"unknown")).expect("read"), None);
    }

    #[test]
    fn bad_names_and_hashes_are_refused() {
        let (_dir, store) = store();
        let long = "x".repeat(101);
        for name in ["", "..", "../escape", "a/b", "a\\b", "name.wasm", "with space", "ünï", long.as_str()] {
            assert!(
                matches!(store.record(name, b"x", "test"), Err(VersionError::InvalidPluginName(_))),
                "{name:?} was accepted"
            );
            assert!(matches!(store.list(name), Err(VersionError::InvalidPluginName(_))));
        }
        store.record(&"x".repeat(100), b"x", "test").expect("100 characters are fine");
        store.record("Alpha_v2-beta", b"x", "test").expect("letters, digits, '-' and '_' are fine");

        let (upper, not_hex) = (sha256_hex(b"x").to_uppercase(), "g".repeat(64));
        for sha256 in ["", "abc", "../../etc/passwd", upper.as_str(), not_hex.as_str()] {
            assert!(
                matches!(store.read("alpha", sha256), Err(VersionError::InvalidSha256(_))),
                "{sha256:?} was accepted"
            );
        }
        assert!(!store.dir().join("escape").exists());
    }

    #[test]
    fn the_index_is_camel_case_rfc3339_json() {
        let (_dir, store) = store();
        store.record("alpha", b"one", "upload").expect("record");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(store.dir().join("alpha").join(INDEX_FILE)).expect("read index"))
                .expect("json");
        let version = &index["versions"][0];
        assert_eq!(version["sha256"], sha256_hex(b"one"));
        assert_eq!(version["size"], 3);
        assert_eq!(version["source"], "upload");
        for field in ["firstSeen", "lastActivated"] {
            let text = version[field].as_str().expect("a string");
            assert!(text.ends_with('Z'), "{field} is not UTC: {text}");
            DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        }
    }

    #[test]
    fn a_damaged_index_is_reported_not_overwritten() {
        let (_dir, store) = store();
        store.record("alpha", b"one", "test").expect("record");
        let index = store.dir().join("alpha").join(INDEX_FILE);
        fs::write(&index, b"{ not json").expect("damage");
        assert!(matches!(store.list("alpha"), Err(VersionError::CorruptIndex { .. })));
        assert!(matches!(store.record("alpha", b"two", "test"), Err(VersionError::CorruptIndex { .. })));
        assert_eq!(fs::read(&index).expect("read"), b"{ not json");
    }

    #[test]
    fn leftovers_of_a_crash_are_swept_on_the_next_record() {
        let (_dir, store) = store();
        store.record("alpha", b"one", "test").expect("record");
        let plugin_dir = store.dir().join("alpha");
        fs::write(plugin_dir.join(".index.json.1.2.tmp"), b"{").expect("write");
        fs::write(plugin_dir.join(format!("{}.wasm", sha256_hex(b"orphan"))), b"orphan").expect("write");
        store.record("alpha", b"two", "test").expect("record");
        let mut expected =
            vec![format!("{}.wasm", sha256_hex(b"one")), format!("{}.wasm", sha256_hex(b"two")), "index.json".into()];
        expected.sort();
        assert_eq!(files_in(&plugin_dir), expected);
    }
}
