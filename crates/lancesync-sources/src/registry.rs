//! A user's configured sources, persisted as TOML, and the factory that turns a spec into a
//! [`DocumentSource`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DocumentSource, Error, LocalFsConfig, LocalFsSource, Result};

/// Source types this build can create.
pub const SOURCE_TYPES: &[&str] = &["local_filesystem"];

/// One configured source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique per user.
    pub id: String,
    /// One of [`SOURCE_TYPES`].
    pub source_type: String,
    /// Synced by schedules and `sync` without a source named.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between polls; `None` means DEFAULT_POLL_INTERVAL.
    #[serde(default)]
    pub poll_interval: Option<u64>,
    /// The type's own settings (for local_filesystem: watch_paths, file_patterns, ...).
    pub config: toml::Table,
}

fn yes() -> bool {
    true
}

impl SourceSpec {
    /// A local folder source.
    pub fn local(id: impl Into<String>, config: &LocalFsConfig) -> Self {
        let config = toml::Table::try_from(config).expect("a LocalFsConfig is a TOML table");
        Self {
            id: id.into(),
            source_type: "local_filesystem".into(),
            enabled: true,
            poll_interval: None,
            config,
        }
    }

    /// Build the source. `env` expands `~` and `${VAR}` in paths.
    pub fn build(&self, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        match self.source_type.as_str() {
            "local_filesystem" => {
                let config: LocalFsConfig = self
                    .config
                    .clone()
                    .try_into()
                    .map_err(|e| Error::InvalidConfig(format!("source {}: {e}", self.id)))?;
                Ok(Arc::new(LocalFsSource::new(self.id.clone(), config, env)?))
            }
            other => Err(Error::InvalidConfig(format!(
                "source {}: unknown source type {other:?}; this build supports: {}",
                self.id,
                SOURCE_TYPES.join(", ")
            ))),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "source")]
    sources: Vec<SourceSpec>,
}

/// The sources of one user, in one TOML file. Writes replace the file atomically.
#[derive(Debug, Clone)]
pub struct SourceRegistry {
    path: PathBuf,
}

impl SourceRegistry {
    /// The registry stored at `path` (created on first add).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where it is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every source, in the order added.
    pub fn list(&self) -> Result<Vec<SourceSpec>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        let file: File = toml::from_str(&text)
            .map_err(|e| Error::InvalidConfig(format!("{}: {e}", self.path.display())))?;
        Ok(file.sources)
    }

    /// One source by id.
    pub fn get(&self, id: &str) -> Result<Option<SourceSpec>> {
        Ok(self.list()?.into_iter().find(|s| s.id == id))
    }

    /// Add a source; its id must be new and it must build.
    pub fn add(&self, spec: SourceSpec, env: &BTreeMap<String, String>) -> Result<()> {
        spec.build(env)?;
        let mut sources = self.list()?;
        if sources.iter().any(|s| s.id == spec.id) {
            return Err(Error::InvalidConfig(format!(
                "a source with id {:?} exists already; remove it first or pick another id",
                spec.id
            )));
        }
        sources.push(spec);
        self.save(sources)
    }

    /// Remove a source; returns it.
    pub fn remove(&self, id: &str) -> Result<SourceSpec> {
        let mut sources = self.list()?;
        let index = sources
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| Error::InvalidConfig(format!("no source with id {id:?}")))?;
        let removed = sources.remove(index);
        self.save(sources)?;
        Ok(removed)
    }

    fn save(&self, sources: Vec<SourceSpec>) -> Result<()> {
        let text = toml::to_string_pretty(&File { sources })
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let tmp = self.path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> Error {
        Error::Read {
            uri: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_list_remove_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u/sources.toml");
        let env = BTreeMap::new();
        let reg = SourceRegistry::at(&path);
        assert!(reg.list().unwrap().is_empty());
        let docs = dir.path().join("docs");
        reg.add(
            SourceSpec::local("docs", &LocalFsConfig::new([docs.to_str().unwrap()])),
            &env,
        )
        .unwrap();
        let dup = reg
            .add(SourceSpec::local("docs", &LocalFsConfig::new(["/x"])), &env)
            .unwrap_err();
        assert!(dup.to_string().contains("exists already"));
        let reopened = SourceRegistry::at(&path);
        let listed = reopened.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].build(&env).unwrap().id(), "docs");
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("[[source]]")
        );
        reopened.remove("docs").unwrap();
        assert!(reg.list().unwrap().is_empty());
        assert!(
            reg.remove("docs")
                .unwrap_err()
                .to_string()
                .contains("no source")
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let env = BTreeMap::new();
        let mut spec = SourceSpec::local("n", &LocalFsConfig::new(["/x"]));
        spec.source_type = "notion".into();
        assert!(
            spec.build(&env)
                .unwrap_err()
                .to_string()
                .contains("unknown source type \"notion\"")
        );
        let mut spec = SourceSpec::local("n", &LocalFsConfig::new(["/x"]));
        spec.config.insert("watch_path".into(), "typo".into());
        assert!(
            spec.build(&env)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
    }
}
