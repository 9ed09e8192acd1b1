//! A user's configured sources, persisted as TOML, and the factory that turns a spec into a
//! [`DocumentSource`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    DocumentSource, DropboxConfig, DropboxSource, Error, GoogleDriveConfig, GoogleDriveSource,
    LocalFsConfig, LocalFsSource, NotionConfig, NotionSource, Result, S3Source, S3SourceConfig,
};

/// Source types this build can create.
pub const SOURCE_TYPES: &[&str] = &[
    "local_filesystem",
    "s3",
    "dropbox",
    "google_drive",
    "notion",
];

/// One configured source. `Debug` masks inline credentials; show a spec with
/// [`SourceSpec::redacted_config`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("id", &self.id)
            .field("source_type", &self.source_type)
            .field("enabled", &self.enabled)
            .field("poll_interval", &self.poll_interval)
            .field("config", &self.redacted_config())
            .finish()
    }
}

/// The type's settings, typed: unknown keys are refused with the key named.
fn typed<T: serde::de::DeserializeOwned>(spec: &SourceSpec) -> Result<T> {
    spec.config
        .clone()
        .try_into()
        .map_err(|e| Error::InvalidConfig(format!("source {}: {e}", spec.id)))
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

    /// A source of another type, its settings given as TOML (`bucket = "docs"`, ...).
    pub fn new(id: impl Into<String>, source_type: impl Into<String>, config: toml::Table) -> Self {
        Self {
            id: id.into(),
            source_type: source_type.into(),
            enabled: true,
            poll_interval: None,
            config,
        }
    }

    /// The settings with inline credentials masked, for status, the API and the CLI.
    pub fn redacted_config(&self) -> toml::Table {
        crate::secret::redact(&self.config)
    }

    /// Refuse what only the operator may configure, for a spec from an API caller that is not
    /// the admin: `env:VAR` references (the server's environment is the operator's), endpoint
    /// overrides (requests to other hosts from the server), files on the server
    /// (`service_account_key_file`), and S3 sources without their own credentials (they would
    /// read with the server's AWS identity).
    pub fn check_untrusted(&self) -> Result<()> {
        let refuse = |why: String| Err(Error::InvalidConfig(format!("source {}: {why}", self.id)));
        for (key, value) in &self.config {
            if value.as_str().is_some_and(|v| v.starts_with("env:")) {
                return refuse(format!(
                    "{key} refers to the server's environment; only the admin may use env: references"
                ));
            }
            if [
                "endpoint",
                "api_url",
                "content_url",
                "token_url",
                "service_account_key_file",
            ]
            .contains(&key.as_str())
            {
                return refuse(format!("only the admin may set {key}"));
            }
        }
        if self.source_type == "s3"
            && !(self.config.contains_key("access_key_id")
                && self.config.contains_key("secret_access_key"))
        {
            return refuse(
                "an S3 source needs its own access_key_id and secret_access_key (the server's AWS credentials are the admin's)".into(),
            );
        }
        Ok(())
    }

    /// Build the source. `env` expands `~` and `${VAR}` in paths and resolves `env:VAR`
    /// credentials.
    pub fn build(&self, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        match self.source_type.as_str() {
            "local_filesystem" => {
                let config: LocalFsConfig = typed(self)?;
                Ok(Arc::new(LocalFsSource::new(self.id.clone(), config, env)?))
            }
            "s3" => {
                let config: S3SourceConfig = typed(self)?;
                Ok(Arc::new(S3Source::new(self.id.clone(), config, env)?))
            }
            "dropbox" => {
                let config: DropboxConfig = typed(self)?;
                Ok(Arc::new(DropboxSource::new(self.id.clone(), config, env)?))
            }
            "google_drive" => {
                let config: GoogleDriveConfig = typed(self)?;
                Ok(Arc::new(GoogleDriveSource::new(
                    self.id.clone(),
                    config,
                    env,
                )?))
            }
            "notion" => {
                let config: NotionConfig = typed(self)?;
                Ok(Arc::new(NotionSource::new(self.id.clone(), config, env)?))
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
        spec.source_type = "sharepoint".into();
        assert!(SOURCE_TYPES.contains(&"notion"));
        assert!(
            spec.build(&env)
                .unwrap_err()
                .to_string()
                .contains("unknown source type \"sharepoint\"")
        );
        let mut spec = SourceSpec::local("n", &LocalFsConfig::new(["/x"]));
        spec.config.insert("watch_path".into(), "typo".into());
        assert!(
            spec.build(&env)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let spec = SourceSpec::new(
            "b",
            "s3",
            toml::from_str("bucket = 'docs'\nregion = 'eu-west-1'\nbukket = 'typo'").unwrap(),
        );
        let err = spec.build(&env).unwrap_err().to_string();
        assert!(err.contains("unknown field `bukket`"), "{err}");
    }

    /// Every value of a spec that reaches a URL, for every source type that has one, refuses
    /// the shapes that would change where a request goes: user info (`@`), a path (`/`), a
    /// port (`:`), a fragment (`#`), a query (`?`), percent-encodings, dots and non-ASCII
    /// (IDN) look-alikes. (Dropbox's `path` travels in a JSON body, never in a URL; a
    /// local folder's paths never reach one; a Notion page's URL is accepted, but only the
    /// 32 hex digits of its id are kept, so shapes are tried after the id.)
    #[test]
    fn url_bearing_values_refuse_every_bypass_shape() {
        let env = BTreeMap::new();
        let shapes = [
            "x@127.0.0.1:19999/",
            "a/b",
            "a:1",
            "a#b",
            "a?b=c",
            "a%2eb",
            "a..b",
            "ａｂｃ",
            "a b",
            "a\nb",
        ];
        let notion_page = "1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d";
        // (source type, field, the spec's other settings, whether the field is a list, the
        // value to try with a shape in it)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            bool,
            fn(&str) -> String,
        );
        let cases: [Case; 6] = [
            ("s3", "region", "bucket = 'docs'", false, |v| v.to_string()),
            ("s3", "bucket", "", false, |v| v.to_string()),
            (
                "google_drive",
                "folder_ids",
                "access_token = 't'",
                true,
                |v| v.to_string(),
            ),
            (
                "google_drive",
                "drive_ids",
                "access_token = 't'",
                true,
                |v| v.to_string(),
            ),
            ("notion", "page_ids", "api_key = 'k'", true, |v| {
                format!("1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d{v}")
            }),
            ("notion", "database_ids", "api_key = 'k'", true, |v| {
                format!("1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d{v}")
            }),
        ];
        for (source_type, field, others, list, value) in cases {
            for shape in shapes {
                let mut config: toml::Table = toml::from_str(others).unwrap();
                let tried = toml::Value::String(value(shape));
                config.insert(
                    field.into(),
                    if list {
                        toml::Value::Array(vec![tried])
                    } else {
                        tried
                    },
                );
                let spec = SourceSpec::new("x", source_type, config);
                let err = match spec.build(&env) {
                    Ok(_) => panic!("{source_type}.{field} accepted {shape:?}"),
                    Err(e) => e.to_string(),
                };
                assert!(
                    err.contains("source x"),
                    "{source_type}.{field} {shape:?}: {err}"
                );
            }
        }
        // The ordinary values still build.
        for (source_type, text) in [
            (
                "s3",
                "bucket = 'docs.example-1'\nregion = 'eu-west-1'".to_string(),
            ),
            (
                "google_drive",
                "folder_ids = ['root', '1AbC_d-E']\naccess_token = 't'".to_string(),
            ),
            (
                "notion",
                format!("api_key = 'k'\npage_ids = ['https://www.notion.so/Plans-{notion_page}']"),
            ),
        ] {
            SourceSpec::new("x", source_type, toml::from_str(&text).unwrap())
                .build(&env)
                .unwrap_or_else(|e| panic!("{source_type}: {e}"));
        }
    }

    #[test]
    fn untrusted_specs_cannot_use_the_server_s_environment_or_identity() {
        let spec = |ty: &str, text: &str| SourceSpec::new("x", ty, toml::from_str(text).unwrap());
        let refused = |s: SourceSpec| s.check_untrusted().unwrap_err().to_string();
        assert!(
            refused(spec("dropbox", "access_token = 'env:API_ADMIN_TOKEN'"))
                .contains("env: references")
        );
        assert!(
            refused(spec(
                "dropbox",
                "access_token = 't'\napi_url = 'http://10.0.0.1'"
            ))
            .contains("api_url")
        );
        assert!(refused(spec("s3", "bucket = 'b'")).contains("its own access_key_id"));
        assert!(refused(spec("s3", "bucket = 'b'\naccess_key_id = 'k'\nsecret_access_key = 's'\nendpoint = 'http://127.0.0.1:1'")).contains("endpoint"));
        spec(
            "s3",
            "bucket = 'b'\naccess_key_id = 'k'\nsecret_access_key = 's'",
        )
        .check_untrusted()
        .unwrap();
        spec("dropbox", "access_token = 't'")
            .check_untrusted()
            .unwrap();
        assert!(
            refused(spec(
                "google_drive",
                "folder_ids = ['root']\nservice_account_key_file = '/etc/key.json'"
            ))
            .contains("service_account_key_file")
        );
        assert!(
            refused(spec(
                "google_drive",
                "folder_ids = ['root']\naccess_token = 't'\ntoken_url = 'http://169.254.169.254/'"
            ))
            .contains("token_url")
        );
        spec(
            "notion",
            "api_key = 'secret_x'\ndatabase_ids = ['1a2b3c4d5e6f4a8b9c0d1e2f3a4b5c6d']",
        )
        .check_untrusted()
        .unwrap();
    }

    #[test]
    fn credentials_never_show_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let reg = SourceRegistry::at(dir.path().join("sources.toml"));
        let config: toml::Table = toml::from_str(
            "path = '/Work'\naccess_token = 'sl.secret-token'\napi_url = 'http://127.0.0.1:9'",
        )
        .unwrap();
        let spec = SourceSpec::new("dbx", "dropbox", config);
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
        let listed = SourceRegistry::at(reg.path()).list().unwrap();
        assert_eq!(
            listed[0].config["access_token"].as_str(),
            Some("sl.secret-token")
        );
    }
}
