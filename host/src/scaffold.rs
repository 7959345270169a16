//! `sluice new KIND NAME --lang LANG`: a plugin skeleton that builds and passes its own
//! given/when/then tests, for plugin authors to start from.
//!
//! The templates live in `host/templates/` and are embedded in the binary ([`TEMPLATES`]), so
//! the command works from an installed `sluice` alone. Each is a list of files whose paths and
//! contents carry placeholders (`{{name}}`, `{{snake}}`, `{{Pascal}}`, `{{camel}}`, and for Rust
//! `{{sdk_dir}}`, the `plugins/` folder of a Sluice checkout holding the guest SDKs). The
//! JavaScript and Python skeletons carry their toolchain's pinned manifest, their build script,
//! (projections) the in-memory `sql` their tests run on, and the WIT package of their world
//! (`wit/v0.1` for projections, `wit/v0.2` for aggregates and reactors), all taken from
//! `plugins/` and `wit/` at compile time, so they stay the same as the repository's own plugins.
//! Each keeps its logic in a plain module its tests (`node --test`, `python -m unittest`) run
//! natively, apart from the component glue (`component.js`, `app.py`).
//!
//! A new plugin kind or language is one more [`Kind`] or [`Lang`] variant and its entries in
//! [`TEMPLATES`].

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of plugin to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Decides on commands and evolves from events (world `executing-aggregate-plugin`, WIT 0.3,
    /// in Rust; `upcasting-aggregate-plugin`, WIT 0.2, in JavaScript and Python).
    Aggregate,
    /// Turns events into rows and answers queries (world `projection-plugin`: WIT 0.2 in Rust,
    /// 0.1 in JavaScript and Python).
    Projection,
    /// Sends messages through channels the operator grants (world `reactor-plugin`, WIT 0.2).
    Reactor,
}

/// The language the plugin is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Aggregate => "aggregate",
            Self::Projection => "projection",
            Self::Reactor => "reactor",
        })
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rust => "rust",
            Self::Js => "js",
            Self::Python => "python",
        })
    }
}

/// Why no skeleton was written. All are the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("plugin name {0:?} must be lower case: a letter, then letters, digits, `-` or `_` (at most 40)")]
    InvalidName(String),
    #[error("there is no {lang} template of the {kind} kind yet (templates: {known})")]
    NoTemplate { kind: Kind, lang: Lang, known: String },
    #[error("{0} exists and is not empty: choose another --dir")]
    NotEmpty(PathBuf),
    #[error(
        "a Rust plugin needs the Sluice guest SDKs: pass --sdk DIR (the plugins/ folder of a Sluice checkout) or set SLUICE_SDK_DIR"
    )]
    NoSdk,
    #[error("{path} does not hold the SDKs (no sdk/Cargo.toml and projection-sdk/Cargo.toml)")]
    NotAnSdk { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// One file of a template: its path and contents, both with placeholders.
type File = (&'static str, &'static str);

/// A skeleton of one kind in one language.
pub struct Template {
    pub kind: Kind,
    pub lang: Lang,
    files: &'static [File],
    /// How to build and test it, printed after it is written.
    pub next_steps: &'static str,
}

/// The WIT package the JavaScript and Python projection skeletons build against (`wit/` in the
/// skeleton).
const WIT_V0_1: &[File] = &[
    ("wit/aggregate.wit", include_str!("../../wit/v0.1/aggregate.wit")),
    ("wit/projection.wit", include_str!("../../wit/v0.1/projection.wit")),
    ("wit/sql.wit", include_str!("../../wit/v0.1/sql.wit")),
    ("wit/types.wit", include_str!("../../wit/v0.1/types.wit")),
    ("wit/worlds.wit", include_str!("../../wit/v0.1/worlds.wit")),
];

/// The WIT package the JavaScript and Python aggregate and reactor skeletons build against
/// (worlds `upcasting-aggregate-plugin` and `reactor-plugin`): all of 0.2.0, since its
/// `worlds.wit` names every interface of the package.
const WIT_V0_2: &[File] = &[
    ("wit/aggregate.wit", include_str!("../../wit/v0.2/aggregate.wit")),
    ("wit/log.wit", include_str!("../../wit/v0.2/log.wit")),
    ("wit/projection.wit", include_str!("../../wit/v0.2/projection.wit")),
    ("wit/reactor.wit", include_str!("../../wit/v0.2/reactor.wit")),
    ("wit/sql.wit", include_str!("../../wit/v0.2/sql.wit")),
    ("wit/types.wit", include_str!("../../wit/v0.2/types.wit")),
    ("wit/worlds.wit", include_str!("../../wit/v0.2/worlds.wit")),
];

const RUST_AGGREGATE: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust-aggregate/Cargo.toml")),
    (".cargo/config.toml", include_str!("../templates/rust-aggregate/.cargo/config.toml")),
    ("src/lib.rs", include_str!("../templates/rust-aggregate/src/lib.rs")),
    ("tests/{{snake}}.rs", include_str!("../templates/rust-aggregate/tests/{{snake}}.rs")),
];

const RUST_PROJECTION: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust-projection/Cargo.toml")),
    (".cargo/config.toml", include_str!("../templates/rust-projection/.cargo/config.toml")),
    ("src/lib.rs", include_str!("../templates/rust-projection/src/lib.rs")),
    ("tests/{{snake}}.rs", include_str!("../templates/rust-projection/tests/{{snake}}.rs")),
];

const RUST_REACTOR: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust-reactor/Cargo.toml")),
    (".cargo/config.toml", include_str!("../templates/rust-reactor/.cargo/config.toml")),
    ("src/lib.rs", include_str!("../templates/rust-reactor/src/lib.rs")),
    ("tests/{{snake}}.rs", include_str!("../templates/rust-reactor/tests/{{snake}}.rs")),
];

const JS_PROJECTION: &[File] = &[
    ("package.json", include_str!("../../plugins/js/package.json")),
    ("package-lock.json", include_str!("../../plugins/js/package-lock.json")),
    (".gitignore", include_str!("../../plugins/js/.gitignore")),
    ("build.mjs", include_str!("../../plugins/js/build.mjs")),
    ("memory-sql.js", include_str!("../../plugins/js/memory-sql.js")),
    ("component.js", include_str!("../templates/js-projection/component.js")),
    ("projection.js", include_str!("../templates/js-projection/projection.js")),
    ("projection.test.js", include_str!("../templates/js-projection/projection.test.js")),
];

const JS_AGGREGATE: &[File] = &[
    ("package.json", include_str!("../../plugins/js/package.json")),
    ("package-lock.json", include_str!("../../plugins/js/package-lock.json")),
    (".gitignore", include_str!("../../plugins/js/.gitignore")),
    ("build.mjs", include_str!("../../plugins/js/build.mjs")),
    ("component.js", include_str!("../templates/js-aggregate/component.js")),
    ("aggregate.js", include_str!("../templates/js-aggregate/aggregate.js")),
    ("aggregate.test.js", include_str!("../templates/js-aggregate/aggregate.test.js")),
];

const PYTHON_AGGREGATE: &[File] = &[
    ("requirements.txt", include_str!("../../plugins/python/requirements.txt")),
    (".gitignore", include_str!("../../plugins/python/.gitignore")),
    ("build.sh", include_str!("../../plugins/python/build.sh")),
    ("app.py", include_str!("../templates/python-aggregate/app.py")),
    ("aggregate.py", include_str!("../templates/python-aggregate/aggregate.py")),
    ("test_aggregate.py", include_str!("../templates/python-aggregate/test_aggregate.py")),
];

const JS_REACTOR: &[File] = &[
    ("package.json", include_str!("../../plugins/js/package.json")),
    ("package-lock.json", include_str!("../../plugins/js/package-lock.json")),
    (".gitignore", include_str!("../../plugins/js/.gitignore")),
    ("build.mjs", include_str!("../../plugins/js/build.mjs")),
    ("component.js", include_str!("../templates/js-reactor/component.js")),
    ("reactor.js", include_str!("../templates/js-reactor/reactor.js")),
    ("reactor.test.js", include_str!("../templates/js-reactor/reactor.test.js")),
];

const PYTHON_REACTOR: &[File] = &[
    ("requirements.txt", include_str!("../../plugins/python/requirements.txt")),
    (".gitignore", include_str!("../../plugins/python/.gitignore")),
    ("build.sh", include_str!("../../plugins/python/build.sh")),
    ("app.py", include_str!("../templates/python-reactor/app.py")),
    ("reactor.py", include_str!("../templates/python-reactor/reactor.py")),
    ("test_reactor.py", include_str!("../templates/python-reactor/test_reactor.py")),
];

const PYTHON_PROJECTION: &[File] = &[
    ("requirements.txt", include_str!("../../plugins/python/requirements.txt")),
    (".gitignore", include_str!("../../plugins/python/.gitignore")),
    ("build.sh", include_str!("../../plugins/python/build.sh")),
    ("memory_sql.py", include_str!("../../plugins/python/memory_sql.py")),
    ("app.py", include_str!("../templates/python-projection/app.py")),
    ("projection.py", include_str!("../templates/python-projection/projection.py")),
    ("test_projection.py", include_str!("../templates/python-projection/test_projection.py")),
];

/// Every skeleton `sluice new` writes.
pub const TEMPLATES: &[Template] = &[
    Template {
        kind: Kind::Aggregate,
        lang: Lang::Rust,
        files: RUST_AGGREGATE,
        next_steps: "cargo test                  # the given/when/then tests, natively\n\
                     cargo component-build       # target/wasm32-wasip2/release/{{snake}}.wasm",
    },
    Template {
        kind: Kind::Projection,
        lang: Lang::Rust,
        files: RUST_PROJECTION,
        next_steps: "cargo test                  # the given/when/then tests, natively\n\
                     cargo component-build       # target/wasm32-wasip2/release/{{snake}}.wasm",
    },
    Template {
        kind: Kind::Reactor,
        lang: Lang::Rust,
        files: RUST_REACTOR,
        next_steps: "cargo test                  # the given/when/then tests, natively\n\
                     cargo component-build       # target/wasm32-wasip2/release/{{snake}}.wasm\n\
                     # grant its channel in the host's config: [channels.{{snake}}] webhook = \"http://…\"",
    },
    Template {
        kind: Kind::Projection,
        lang: Lang::Js,
        files: JS_PROJECTION,
        next_steps: "npm ci                      # the pinned toolchain (componentize-js)\n\
                     node --test                 # the given/when/then tests, natively\n\
                     node build.mjs component.js {{snake}}.wasm",
    },
    Template {
        kind: Kind::Aggregate,
        lang: Lang::Js,
        files: JS_AGGREGATE,
        next_steps: "npm ci                      # the pinned toolchain (componentize-js)\n\
                     node --test                 # the given/when/then tests, natively\n\
                     node build.mjs component.js {{snake}}.wasm upcasting-aggregate-plugin",
    },
    Template {
        kind: Kind::Aggregate,
        lang: Lang::Python,
        files: PYTHON_AGGREGATE,
        next_steps: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n\
                     export SLUICE_WORLD=upcasting-aggregate-plugin PATH=.venv/bin:$PATH\n\
                     ./build.sh test .                 # the given/when/then tests, natively\n\
                     ./build.sh build . {{snake}}.wasm",
    },
    Template {
        kind: Kind::Reactor,
        lang: Lang::Js,
        files: JS_REACTOR,
        next_steps: "npm ci                      # the pinned toolchain (componentize-js)\n\
                     node --test                 # the given/when/then tests, natively\n\
                     node build.mjs component.js {{snake}}.wasm reactor-plugin\n\
                     # grant its channel in the host's config: [channels.{{snake}}] webhook = \"http://…\"",
    },
    Template {
        kind: Kind::Reactor,
        lang: Lang::Python,
        files: PYTHON_REACTOR,
        next_steps: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n\
                     export SLUICE_WORLD=reactor-plugin PATH=.venv/bin:$PATH\n\
                     ./build.sh test .                 # the given/when/then tests, natively\n\
                     ./build.sh build . {{snake}}.wasm\n\
                     # grant its channel in the host's config: [channels.{{snake}}] webhook = \"http://…\"",
    },
    Template {
        kind: Kind::Projection,
        lang: Lang::Python,
        files: PYTHON_PROJECTION,
        next_steps: "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n\
                     PATH=.venv/bin:$PATH ./build.sh test .                 # the tests, natively\n\
                     PATH=.venv/bin:$PATH ./build.sh build . {{snake}}.wasm",
    },
];

/// The names a plugin name is spelled in, as the templates use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// As given: `order-lines` (a crate or folder name).
    pub name: String,
    /// `order_lines` (a projection, table or Rust crate name).
    pub snake: String,
    /// `OrderLines` (a type or aggregate type).
    pub pascal: String,
    /// `orderLines` (a route segment).
    pub camel: String,
}

impl Names {
    pub fn new(name: &str) -> Result<Self, ScaffoldError> {
        let valid = name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && !name.ends_with(['-', '_']);
        if !valid {
            return Err(ScaffoldError::InvalidName(name.to_owned()));
        }
        let words: Vec<&str> = name.split(['-', '_']).filter(|w| !w.is_empty()).collect();
        let pascal: String = words
            .iter()
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect();
        let mut camel = pascal.clone();
        if let Some(first) = camel.get_mut(0..1) {
            first.make_ascii_lowercase();
        }
        Ok(Self { name: name.to_owned(), snake: words.join("_"), pascal, camel })
    }

    fn fill(&self, text: &str, sdk_dir: &str) -> String {
        text.replace("{{name}}", &self.name)
            .replace("{{snake}}", &self.snake)
            .replace("{{Pascal}}", &self.pascal)
            .replace("{{camel}}", &self.camel)
            .replace("{{sdk_dir}}", sdk_dir)
    }
}

/// The template of `kind` in `lang`.
pub fn template(kind: Kind, lang: Lang) -> Result<&'static Template, ScaffoldError> {
    TEMPLATES.iter().find(|t| t.kind == kind && t.lang == lang).ok_or_else(|| ScaffoldError::NoTemplate {
        kind,
        lang,
        known: TEMPLATES.iter().map(|t| format!("{} {}", t.kind, t.lang)).collect::<Vec<_>>().join(", "),
    })
}

/// The guest SDKs' folder for a Rust skeleton: `sdk`, else `$SLUICE_SDK_DIR`, else the
/// `plugins/` folder of the checkout this binary was built from, if it is still there.
pub fn find_sdk(sdk: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let from_env = std::env::var_os("SLUICE_SDK_DIR").filter(|v| !v.is_empty()).map(PathBuf::from);
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let explicit = sdk.map(Path::to_path_buf).or(from_env);
    let candidate = match explicit {
        Some(dir) => dir,
        None if built_from.join("sdk/Cargo.toml").is_file() => built_from,
        None => return Err(ScaffoldError::NoSdk),
    };
    let holds_sdks = ["sdk/Cargo.toml", "projection-sdk/Cargo.toml"].iter().all(|f| candidate.join(f).is_file());
    if !holds_sdks {
        return Err(ScaffoldError::NotAnSdk { path: candidate });
    }
    std::path::absolute(&candidate).map_err(|source| ScaffoldError::Write { path: candidate, source })
}

/// Write the skeleton of `kind` in `lang` named `name` into `dir` (which must not exist or be
/// empty); `sdk_dir` is needed for Rust. Answers the files written, and the next steps.
pub fn create(
    kind: Kind,
    lang: Lang,
    name: &str,
    dir: &Path,
    sdk_dir: Option<&Path>,
) -> Result<(Vec<PathBuf>, String), ScaffoldError> {
    let names = Names::new(name)?;
    let template = template(kind, lang)?;
    let sdk_dir = match lang {
        Lang::Rust => find_sdk(sdk_dir)?.display().to_string(),
        Lang::Js | Lang::Python => String::new(),
    };
    let not_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if not_empty {
        return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
    }
    let wit: &[File] = match (lang, kind) {
        (Lang::Rust, _) => &[],
        (_, Kind::Projection) => WIT_V0_1,
        (_, Kind::Aggregate | Kind::Reactor) => WIT_V0_2,
    };
    let mut written = Vec::new();
    for (path, contents) in template.files.iter().chain(wit) {
        let path = dir.join(names.fill(path, &sdk_dir));
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, names.fill(contents, &sdk_dir))
        };
        write(&path).map_err(|source| ScaffoldError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    make_executable(dir.join("build.sh"))?;
    Ok((written, names.fill(template.next_steps, &sdk_dir)))
}

/// `build.sh` of a Python skeleton runs as `./build.sh`.
fn make_executable(path: PathBuf) -> Result<(), ScaffoldError> {
    #[cfg(unix)]
    if path.is_file() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_spelled_every_way_the_templates_need() {
        let names = Names::new("order-lines_2").expect("valid");
        assert_eq!(
            (names.snake.as_str(), names.pascal.as_str(), names.camel.as_str()),
            ("order_lines_2", "OrderLines2", "orderLines2")
        );
        for bad in ["", "Order", "1st", "a b", "trailing-", "a".repeat(41).as_str()] {
            assert!(matches!(Names::new(bad), Err(ScaffoldError::InvalidName(_))), "{bad:?}");
        }
    }

    #[test]
    fn every_template_is_filled_without_a_placeholder_left() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        for template in TEMPLATES {
            let target = dir.path().join(format!("{}-{}", template.kind, template.lang));
            let (files, next) =
                create(template.kind, template.lang, "tide-gauge", &target, Some(&sdk)).expect("written");
            assert!(!files.is_empty() && !next.contains("{{"), "{next}");
            for file in files {
                let text = std::fs::read_to_string(&file).expect("read");
                assert!(!text.contains("{{") && !file.display().to_string().contains("{{"), "{}", file.display());
            }
        }
        let again = create(Kind::Projection, Lang::Js, "tide-gauge", &dir.path().join("projection-js"), None);
        assert!(matches!(again, Err(ScaffoldError::NotEmpty(_))), "{again:?}");
    }

    #[test]
    fn every_kind_has_a_template_in_every_language() {
        for kind in [Kind::Aggregate, Kind::Projection, Kind::Reactor] {
            for lang in [Lang::Rust, Lang::Js, Lang::Python] {
                let found = template(kind, lang).map(|t| (t.kind, t.lang)).ok();
                assert_eq!(found, Some((kind, lang)), "{kind} {lang}");
            }
        }
        assert_eq!(TEMPLATES.len(), 9, "one template per kind and language");
    }

    #[test]
    fn a_skeleton_carries_the_wit_of_its_world() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (kind, world) in [
            (Kind::Aggregate, "world upcasting-aggregate-plugin"),
            (Kind::Reactor, "world reactor-plugin"),
            (Kind::Projection, "world projection-plugin"),
        ] {
            let target = dir.path().join(kind.to_string());
            create(kind, Lang::Python, "tide-gauge", &target, None).expect("written");
            let worlds = std::fs::read_to_string(target.join("wit/worlds.wit")).expect("worlds.wit");
            assert!(worlds.contains(world), "{kind}: {worlds}");
            // Every interface a world names is declared in the skeleton's package, or the
            // toolchains cannot even parse it.
            let mut declared = Vec::new();
            for entry in std::fs::read_dir(target.join("wit")).expect("wit dir") {
                let text = std::fs::read_to_string(entry.expect("entry").path()).expect("wit file");
                declared.extend(
                    text.lines()
                        .filter_map(|l| l.trim().strip_prefix("interface "))
                        .filter_map(|l| l.split_whitespace().next())
                        .map(str::to_owned),
                );
            }
            for named in worlds.lines().filter_map(|l| {
                let l = l.trim();
                l.strip_prefix("import ").or_else(|| l.strip_prefix("export ")).map(|n| n.trim_end_matches(';'))
            }) {
                assert!(declared.iter().any(|d| d == named), "{kind}: {named} is not declared in {declared:?}");
            }
        }
    }
}
