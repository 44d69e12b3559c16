//! `weir processor new`: a buildable project per language whose processor passes records through
//! unchanged, so it runs as soon as it is built.

use std::path::Path;

use anyhow::bail;

use super::manifest::{Language, MANIFEST_FILE, Manifest};
use super::tools;

const RUST_LIB: &str = r#"//! A Weir processor. It passes every record through unchanged: edit `process` to transform,
//! filter, route or split records (docs/processors/rust.md).

use weir_sdk::{Config, Emitter, Error, Processor, Record};

pub struct Passthrough;

impl Processor for Passthrough {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn process(&mut self, record: &Record<'_>, out: &mut Emitter) -> Result<(), Error> {
        out.forward(record);
        Ok(())
    }
}

weir_sdk::export_processor!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{TestRecord, run};

    #[test]
    fn passes_records_through() {
        let out = run::<Passthrough>(&[], &[TestRecord::value("hello").key("k")]).unwrap();
        assert_eq!(out[0].value, b"hello");
    }
}
"#;

const PYTHON: &str = r#""""A Weir processor. It passes every record through unchanged: edit process() to
transform, filter, route or split records (docs/processors/python.md)."""

import weir


def init(config):
    """Called once per instance with the deployment's config (a dict of str); raise to reject it."""


def process(record, out):
    """Called for every record; raise to fail this record (it goes to the dead-letter topic)."""
    out.forward(record)
"#;

const JS: &str = r#"// A Weir processor. It passes every record through unchanged: edit process() to transform,
// filter, route or split records (docs/processors/js.md).

// Called once per instance with the deployment's config (an object of strings); throw to reject it.
export function init(config) {}

// Called for every record; throw to fail this record (it goes to the dead-letter topic).
export function process(record, out) {
  out.forward(record);
}
"#;

const C: &str = r#"/* A Weir processor. It passes every record through unchanged: edit weir_process to
 * transform, filter, route or split records (docs/processors/c.md). */
#include "weir.h"

/* Called for every record. Return NULL when done, or a message to fail this record. */
const char *weir_process(const weir_record *record, weir_output *out) {
    weir_forward(out, record);
    return NULL;
}
"#;

const ZIG: &str = r#"//! A Weir processor. It passes every record through unchanged: edit `process` to transform,
//! filter, route or split records (docs/processors/zig.md).
const weir = @import("weir");

/// Called for every record; an error fails this record (it goes to the dead-letter topic).
pub fn process(record: weir.Record, out: weir.Output) !void {
    out.forward(record);
}

comptime {
    weir.exportProcessor(@This());
}
"#;

const ASSEMBLYSCRIPT: &str = r#"// A Weir processor. It passes every record through unchanged: edit process() to transform,
// filter, route or split records (docs/processors/assemblyscript.md).
import { Output, Record } from "weir";

// Called for every record. Return null when done, or a message to fail this record.
export function process(record: Record, out: Output): string | null {
  out.forward(record);
  return null;
}
"#;

const GITIGNORE: &str =
    "# Written by `weir processor build` and the language tools.\n.weir/\ntarget/\nnode_modules/\n__pycache__/\n";

fn rust_manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
# The Weir SDK, written by `weir processor new` and refreshed by `weir processor build`.
weir-sdk = {{ path = ".weir/weir-sdk" }}

# A project of its own, even inside another Cargo workspace.
[workspace]
"#
    )
}

fn package_json(name: &str, package: &str) -> String {
    let json = serde_json::json!({
        "name": name,
        "private": true,
        "description": "A Weir processor: `weir processor build` builds it, `weir processor deploy` deploys it.",
        "devDependencies": { package: tools::npm_version(package) },
    });
    serde_json::to_string_pretty(&json).expect("JSON") + "\n"
}

fn readme(name: &str, lang: Language) -> String {
    let setup = match lang {
        Language::Rust => "rustup target add wasm32-wasip2".to_owned(),
        Language::Python => format!("pip install componentize-py=={}", tools::pip_version("componentize-py")),
        Language::C | Language::Zig => format!("pip install ziglang=={}", tools::pip_version("ziglang")),
        Language::Js | Language::Assemblyscript => "npm install".to_owned(),
    };
    format!(
        "# {name}\n\nA Weir processor in {lang}. It passes every record through unchanged.\n\n\
         ```sh\n{setup}                      # once\n\
         weir processor build                # prints the path of the .wasm\n\
         echo '{{\"value\":\"hello\"}}' | weir processor test $(weir processor build)\n\
         weir processor deploy --input IN --output OUT   # settings also come from processor.toml\n```\n\n\
         `processor.toml` names the processor and holds its deploy settings (`[deploy]`: input,\n\
         outputs, config, on_error). `.weir/` holds the SDK and bindings that `weir processor\n\
         build` writes at every build; do not edit it.\n",
        lang = lang.name()
    )
}

/// Writes a new project for processor `name` into `dir` (which must not exist or be empty).
pub fn new(name: &str, lang: Language, dir: &Path) -> anyhow::Result<()> {
    crate::topic::spec::validate_name(name).map_err(|e| anyhow::anyhow!(e.replace("topic name", "processor name")))?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty: choose another directory with --dir",
            dir.display()
        );
    }
    let manifest = Manifest {
        name: name.to_owned(),
        language: lang,
        deploy: Default::default(),
    };
    let package = name.replace('.', "-");
    let mut files: Vec<(&str, String)> = vec![
        (MANIFEST_FILE, manifest.to_toml()),
        (".gitignore", GITIGNORE.to_owned()),
        ("README.md", readme(name, lang)),
    ];
    match lang {
        Language::Rust => {
            files.push(("Cargo.toml", rust_manifest(&package)));
            files.push(("src/lib.rs", RUST_LIB.to_owned()));
        }
        Language::Python => files.push(("processor.py", PYTHON.to_owned())),
        Language::Js => {
            files.push(("processor.js", JS.to_owned()));
            files.push(("package.json", package_json(&package, "componentize-qjs")));
        }
        Language::C => files.push(("processor.c", C.to_owned())),
        Language::Zig => files.push(("processor.zig", ZIG.to_owned())),
        Language::Assemblyscript => {
            files.push(("processor.ts", ASSEMBLYSCRIPT.to_owned()));
            files.push(("package.json", package_json(&package, "assemblyscript")));
        }
    }
    for (file, contents) in files {
        tools::write_if_changed(&dir.join(file), contents.as_bytes())?;
    }
    if lang == Language::Rust {
        // So that `cargo test` works before the first `weir processor build`.
        super::sdk::write_rust(dir)?;
    }
    Ok(())
}
