//! A user's configured sources, persisted as TOML. Entries are kept as stored and typed on
//! the way out, so one entry that no longer checks (a hand edit, a setting a newer version
//! dropped) is reported by [`SourceRegistry::load`] and kept in the file, never lost, while the
//! others are served.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, SourceSpec, StoredSource};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "source")]
    sources: Vec<StoredSource>,
}

/// What a registry holds: the sources that check, and those that do not with why.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Entries that check, in the order added.
    pub sources: Vec<SourceSpec>,
    /// Entries that do not, as stored, with the reason.
    pub invalid: Vec<(StoredSource, Error)>,
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

    /// Every entry as stored, in the order added.
    pub fn stored(&self) -> Result<Vec<StoredSource>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        let file: File = toml::from_str(&text)
            .map_err(|e| Error::InvalidConfig(format!("{}: {e}", self.path.display())))?;
        Ok(file.sources)
    }

    /// Every entry, typed: those that check and those that do not.
    pub fn load(&self) -> Result<Loaded> {
        let mut loaded = Loaded::default();
        for stored in self.stored()? {
            match SourceSpec::try_from(stored.clone()) {
                Ok(spec) => loaded.sources.push(spec),
                Err(e) => loaded.invalid.push((stored, e)),
            }
        }
        Ok(loaded)
    }

    /// Every source, in the order added; an entry that does not check is an error that names
    /// it.
    pub fn list(&self) -> Result<Vec<SourceSpec>> {
        let loaded = self.load()?;
        match loaded.invalid.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(loaded.sources),
        }
    }

    /// Whether an entry (checking or not) has this id.
    pub fn contains(&self, id: &str) -> Result<bool> {
        Ok(self.stored()?.iter().any(|s| s.id == id))
    }

    /// One source by id.
    pub fn get(&self, id: &str) -> Result<Option<SourceSpec>> {
        self.stored()?
            .into_iter()
            .find(|s| s.id == id)
            .map(SourceSpec::try_from)
            .transpose()
    }

    /// Add a source; its id must be new and it must build.
    pub fn add(&self, spec: SourceSpec, env: &BTreeMap<String, String>) -> Result<()> {
        spec.build(env)?;
        let mut sources = self.stored()?;
        if sources.iter().any(|s| s.id == spec.id) {
            return Err(Error::InvalidConfig(format!(
                "a source with id {:?} exists already; remove it first or pick another id",
                spec.id
            )));
        }
        sources.push(spec.into());
        self.save(sources)
    }

    /// Replace the entry with `spec`'s id, in its place in the file (one atomic write: a crash
    /// leaves the old entry or the new one, never neither); the new spec must build.
    pub fn replace(&self, spec: SourceSpec, env: &BTreeMap<String, String>) -> Result<()> {
        spec.build(env)?;
        let mut sources = self.stored()?;
        let entry = sources
            .iter_mut()
            .find(|s| s.id == spec.id)
            .ok_or_else(|| Error::InvalidConfig(format!("no source with id {:?}", spec.id)))?;
        *entry = spec.into();
        self.save(sources)
    }

    /// Remove an entry (checking or not); returns it as it was stored.
    pub fn remove(&self, id: &str) -> Result<StoredSource> {
        let mut sources = self.stored()?;
        let index = sources
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| Error::InvalidConfig(format!("no source with id {id:?}")))?;
        let removed = sources.remove(index);
        self.save(sources)?;
        Ok(removed)
    }

    /// Replace every entry with `sources`, in one atomic write (what another instance's
    /// registry says, when a coordinator shares it).
    pub fn store(&self, sources: Vec<StoredSource>) -> Result<()> {
        self.save(sources)
    }

    fn save(&self, sources: Vec<StoredSource>) -> Result<()> {
        let text = toml::to_string_pretty(&File { sources })
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let tmp = self.path.with_extension("toml.tmp");
        // The file may hold credentials: readable by its owner only.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        std::io::Write::write_all(
            &mut options.open(&tmp).map_err(|e| self.error(e))?,
            text.as_bytes(),
        )
        .map_err(|e| self.error(e))?;
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
    use crate::{LocalFsConfig, SourceType};

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
        let table = |text: &str| -> toml::Table { toml::from_str(text).unwrap() };
        let err = SourceSpec::from_table("n", "sharepoint", table("watch_paths = ['/x']"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source n: unknown source type \"sharepoint\""),
            "{err}"
        );
        assert!(err.contains("notion"), "{err}");
        let err = SourceSpec::from_table(
            "n",
            "local_filesystem",
            table("watch_paths = ['/x']\nwatch_path = 'typo'"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `watch_path`"), "{err}");
        let err = SourceSpec::from_table(
            "b",
            "s3",
            table("bucket = 'docs'\nregion = 'eu-west-1'\nbukket = 'typo'"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `bukket`"), "{err}");
        let err =
            SourceSpec::from_table("d", "dropbox", table("access_token = 't'\nrate_limt = 3"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("rate_limt"), "{err}");
        let err = SourceSpec::from_table("g", "google_drive", table("folder_ids = 'root'"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source g") && err.contains("sequence"),
            "{err}"
        );
    }

    /// An entry that no longer checks is reported with why, kept in the file through adds
    /// and removes of others, and can itself be removed; the others are served meanwhile.
    #[test]
    fn a_broken_entry_is_reported_and_kept_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.toml");
        std::fs::write(
            &path,
            "[[source]]\nid = 'old'\nsource_type = 'sharepoint'\n[source.config]\nsite = 'x'\n\n\
             [[source]]\nid = 'docs'\nsource_type = 'local_filesystem'\n[source.config]\nwatch_paths = ['/x']\n",
        )
        .unwrap();
        let reg = SourceRegistry::at(&path);
        let loaded = reg.load().unwrap();
        assert_eq!(loaded.sources.len(), 1);
        assert_eq!(loaded.sources[0].source_type(), SourceType::LocalFilesystem);
        assert_eq!(loaded.invalid.len(), 1);
        assert_eq!(loaded.invalid[0].0.id, "old");
        assert!(loaded.invalid[0].1.to_string().contains("sharepoint"));
        assert!(reg.list().unwrap_err().to_string().contains("source old"));
        assert!(reg.contains("old").unwrap());
        let env = BTreeMap::new();
        reg.add(SourceSpec::local("more", &LocalFsConfig::new(["/y"])), &env)
            .unwrap();
        assert_eq!(reg.stored().unwrap().len(), 3);
        assert_eq!(reg.remove("old").unwrap().source_type, "sharepoint");
        let ids: Vec<String> = reg.list().unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["docs", "more"]);
    }

    #[test]
    fn credentials_never_show_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let reg = SourceRegistry::at(dir.path().join("sources.toml"));
        let config: toml::Table = toml::from_str(
            "path = '/Work'\naccess_token = 'sl.secret-token'\napi_url = 'http://127.0.0.1:9'",
        )
        .unwrap();
        let spec = SourceSpec::from_table("dbx", "dropbox", config).unwrap();
        assert!(!format!("{spec:?}").contains("sl.secret-token"));
        assert!(
            !format!("{:?}", spec.build(&BTreeMap::new()).unwrap()).contains("sl.secret-token")
        );
        assert_eq!(
            spec.redacted_config()["access_token"].as_str(),
            Some("********")
        );
        reg.add(spec, &BTreeMap::new()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(reg.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // What is stored is what was given: the source builds again after a reopen.
        SourceRegistry::at(reg.path()).list().unwrap()[0]
            .build(&BTreeMap::new())
            .unwrap();
        let stored = SourceRegistry::at(reg.path()).stored().unwrap();
        assert_eq!(
            stored[0].config["access_token"].as_str(),
            Some("sl.secret-token")
        );
    }
}
