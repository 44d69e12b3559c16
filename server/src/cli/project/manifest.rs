//! `processor.toml`: what a processor project is (its name and language) and how it deploys.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The manifest's file name, at the root of a processor project.
pub const MANIFEST_FILE: &str = "processor.toml";

/// A language `weir processor new` and `build` know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    #[value(alias = "javascript")]
    #[serde(alias = "javascript")]
    Js,
    C,
    Zig,
    #[value(alias = "as")]
    #[serde(alias = "as")]
    Assemblyscript,
}

impl Language {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
            Self::C => "c",
            Self::Zig => "zig",
            Self::Assemblyscript => "assemblyscript",
        }
    }
}

/// `processor.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The processor's name: the built file's name and the deployment's default name.
    pub name: String,
    pub language: Language,
    /// Defaults for `weir processor deploy` run in the project (its flags override them).
    #[serde(default, skip_serializing_if = "Deploy::is_empty")]
    pub deploy: Deploy,
}

/// The `[deploy]` table: the fields of `PUT /v1/processors/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_topic: Option<String>,
    /// `earliest`, `latest` or an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_records_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes_max: Option<usize>,
    /// Keyed state stores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stores: Vec<String>,
    /// Tables (topics read as the latest value per key) the processor looks up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    /// `exactly_once` or `at_least_once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_interval_ms: Option<u64>,
}

impl Deploy {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Manifest {
    /// Reads and checks `dir/processor.toml`; errors name the file and the field.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: run this in a processor project, or create one with `weir processor new NAME --lang LANG`",
                path.display()
            )
        })?;
        Self::parse(&text).with_context(|| format!("{} is not a valid manifest", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let de = toml::Deserializer::parse(text)?;
        let manifest: Self =
            serde_path_to_error::deserialize(de).map_err(|e| anyhow::anyhow!("{}: {}", e.path(), e.inner()))?;
        crate::topic::spec::validate_name(&manifest.name)
            .map_err(|e| anyhow::anyhow!("name: {}", e.replace("topic name", "processor name")))?;
        Ok(manifest)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a manifest serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_names_bad_fields() {
        let text = "name = \"redact\"\nlanguage = \"python\"\n\n[deploy]\ninput = \"in\"\noutputs = [\"out\"]\n\n[deploy.config]\nfields = \"email\"\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.language, Language::Python);
        assert_eq!(m.deploy.config["fields"], "email");
        assert_eq!(Manifest::parse(&m.to_toml()).unwrap(), m);

        let err = Manifest::parse("name = \"x\"\nlanguage = \"cobol\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("language"), "{err}");
        let err = Manifest::parse("name = \"x\"\nlanguage = \"c\"\n[deploy]\ninputs = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inputs"), "{err}");
        let err = Manifest::parse("name = \"../x\"\nlanguage = \"c\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("processor name"), "{err}");
        assert_eq!(
            Manifest::parse("name = \"x\"\nlanguage = \"as\"\n").unwrap().language,
            Language::Assemblyscript
        );
    }
}
