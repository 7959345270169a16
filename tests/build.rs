//! Builds the plugin components before the end-to-end tests compile, so the tests always
//! exercise the current plugin code (the pattern of wasmtime's `test-programs/artifacts`).
//!
//! `plugins/` is its own cargo workspace for `wasm32-wasip2`; we run a nested
//! `cargo build --release --target wasm32-wasip2` on it and hand the folder holding the `.wasm`
//! files to the tests as `SLUICE_TEST_PLUGINS`. The nested build uses
//! `$SLUICE_PLUGINS_TARGET_DIR`, else `plugins/target`, the same folder `scripts/run` and
//! `scripts/test` build into, so nothing is compiled twice.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "wasm32-wasip2";
/// Components the tests load; the build fails if one is missing after the nested build.
const COMPONENTS: &[&str] = &[
    "bank_account.wasm",
    "faulty.wasm",
    "post.wasm",
    "accounts_projection.wasm",
    "posts_projection.wasm",
    "snoop_projection.wasm",
    "accounts_projection_v2.wasm",
    "squatter_projection.wasm",
    "squatter_aggregate.wasm",
    "trapping_describe.wasm",
    "reserved_route.wasm",
    "hostile_projection.wasm",
    "hostile_projection_fixed.wasm",
    "accounts_projection_shouting.wasm",
    "accounts_projection_brittle.wasm",
    "account_notifier.wasm",
    "snoop_reactor.wasm",
    "chatty_projection.wasm",
];

/// Variables cargo sets for this build script (or a wrapper sets for the outer build) that
/// would send the nested build somewhere else, with other flags, or through clippy.
const INHERITED: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
];
/// Prefixes of the same kind: package metadata, cfg and feature flags of this crate, and
/// cargo's private variables (`cargo fix`, `cargo clippy --fix`).
const INHERITED_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_CFG_", "CARGO_FEATURE_", "__CARGO"];

fn main() -> ExitCode {
    match build_plugins() {
        Ok(dir) => {
            println!("cargo:rustc-env=SLUICE_TEST_PLUGINS={}", dir.display());
            // The JavaScript and Python components: `scripts/polyglot build` (a step of
            // `scripts/test`) writes them to `polyglot/` of the same target folder; the tests that
            // load them say so if they are missing.
            if let Some(target_dir) = dir.ancestors().nth(2) {
                println!("cargo:rustc-env=SLUICE_TEST_POLYGLOT_PLUGINS={}", target_dir.join("polyglot").display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("\nerror: failed to build the plugin components for the end-to-end tests\n");
            eprintln!("{message}\n");
            ExitCode::FAILURE
        }
    }
}

fn build_plugins() -> Result<PathBuf, String> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let repo = manifest_dir.parent().ok_or("tests/ has no parent folder")?;
    let plugins = repo.join("plugins");
    let manifest = plugins.join("Cargo.toml");

    watch_inputs(repo, &plugins)?;

    println!("cargo:rerun-if-env-changed=SLUICE_PLUGINS_TARGET_DIR");
    let target_dir = match env::var_os("SLUICE_PLUGINS_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => plugins.join("target"),
    };

    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        // Cargo reads `.cargo/config.toml` from the working directory, not the manifest's.
        .current_dir(&plugins)
        // Our stdout is cargo's instruction channel: keep the nested build's chatter off it.
        .stdout(std::io::stderr());
    for name in INHERITED {
        cmd.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        let text = name.to_string_lossy();
        if INHERITED_PREFIXES.iter().any(|prefix| text.starts_with(prefix)) {
            cmd.env_remove(&name);
        }
    }

    eprintln!("running: {cmd:?}");
    let status = cmd.status().map_err(|e| format!("could not run cargo for {}: {e}", manifest.display()))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release --target {TARGET} --manifest-path {}` failed ({status}); its \
             output is above.\nIf the target is missing, run `rustup target add {TARGET}` (or \
             `scripts/test`, which installs it).",
            manifest.display()
        ));
    }

    let out = target_dir.join(TARGET).join("release");
    let missing: Vec<&str> = COMPONENTS.iter().copied().filter(|name| !out.join(name).is_file()).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the plugin build succeeded but {} is missing from {} (is the crate still `cdylib`?)",
            missing.join(", "),
            out.display()
        ));
    }
    Ok(out)
}

/// Rerun when the WIT package or any plugin source, manifest, lock file or cargo config changes.
fn watch_inputs(repo: &Path, plugins: &Path) -> Result<(), String> {
    rerun_if_changed(&repo.join("wit"));
    for file in ["Cargo.toml", "Cargo.lock", ".cargo"] {
        rerun_if_changed(&plugins.join(file));
    }
    let entries = fs::read_dir(plugins).map_err(|e| format!("cannot list {}: {e}", plugins.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", plugins.display()))?;
        let path = entry.path();
        let is_crate = path.is_dir() && path.join("Cargo.toml").is_file();
        if is_crate && entry.file_name() != "target" {
            // A folder is scanned recursively by cargo.
            rerun_if_changed(&path);
        }
    }
    Ok(())
}

fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}
