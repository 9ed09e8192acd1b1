//! A configured source, typed: [`SourceConfig`] is the one list of source types, each arm the
//! settings of one type. A sixth source type is one arm here and one module that implements
//! [`Settings`] for its configuration.
//!
//! On disk (and in the API and the CLI's JSON) a spec keeps the shape it always had: `id`,
//! `source_type`, `enabled`, `poll_interval` and the type's settings as a `config` table,
//! which [`StoredSource`] mirrors. Typing happens on the way in, so an unknown type or key is
//! refused with the source named, and a registry with one broken entry still serves the rest
//! ([`crate::SourceRegistry::load`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    DocumentSource, DropboxConfig, Error, GoogleDriveConfig, LocalFsConfig, NotionConfig, Result,
    S3SourceConfig,
};

/// What every source type's settings can do: build the source, say where it reads, and say
/// which of its settings only the operator may give.
pub(crate) trait Settings {
    /// The source these settings describe. `env` expands paths and resolves `env:VAR`
    /// credentials.
    fn build(&self, id: &str, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>>;

    /// Where the source reads, in a few words (`s3://docs/reports`).
    fn describe(&self) -> String;

    /// Why an API caller that is not the admin may not configure this, if they may not:
    /// settings that send the server's requests elsewhere or read the server's files, or a
    /// missing credential that would make the server use its own identity.
    fn refused_for_untrusted(&self) -> Option<String>;
}

/// `scheme: folders a, b; drives c` for sources that read lists of ids, or what they read
/// without any.
pub(crate) fn described_ids<const N: usize>(
    scheme: &str,
    lists: [(&str, &Vec<String>); N],
) -> String {
    let parts: Vec<String> = lists
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(what, ids)| format!("{what} {}", ids.join(", ")))
        .collect();
    if parts.is_empty() {
        format!("{scheme}: everything shared with the integration")
    } else {
        format!("{scheme}: {}", parts.join("; "))
    }
}

/// A source type and its settings: the one list of source types this build can create.
///
/// Serialized as `source_type` (snake case) with the settings under `config`, the shape of a
/// `[[source]]` entry of a sources file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "source_type", content = "config", rename_all = "snake_case")]
#[strum_discriminants(
    name(SourceType),
    derive(
        Hash,
        PartialOrd,
        Ord,
        strum::VariantNames,
        strum::IntoStaticStr,
        strum::EnumString,
        strum::Display,
        strum::EnumIter,
        Serialize,
        Deserialize,
        utoipa::ToSchema
    ),
    strum(serialize_all = "snake_case"),
    serde(rename_all = "snake_case")
)]
pub enum SourceConfig {
    /// Local folders (`local_filesystem`).
    LocalFilesystem(LocalFsConfig),
    /// Objects under a prefix of an S3 bucket (`s3`).
    S3(S3SourceConfig),
    /// A folder of a Dropbox account (`dropbox`).
    Dropbox(DropboxConfig),
    /// Google Drive folders and shared drives (`google_drive`).
    GoogleDrive(GoogleDriveConfig),
    /// Notion pages and databases (`notion`).
    Notion(NotionConfig),
}

impl SourceType {
    /// The type's name as configured (`local_filesystem`, `s3`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Every name, for help texts and errors.
    pub fn names() -> &'static [&'static str] {
        <Self as strum::VariantNames>::VARIANTS
    }

    /// Every type, in the order of [`SourceConfig`]'s arms.
    pub fn all() -> impl Iterator<Item = Self> {
        <Self as strum::IntoEnumIterator>::iter()
    }

    /// The type named `name`, or an error naming the types this build has.
    pub fn parse(name: &str) -> Result<Self> {
        name.parse().map_err(|_| {
            Error::InvalidConfig(format!(
                "unknown source type {name:?}; this build supports: {}",
                Self::names().join(", ")
            ))
        })
    }
}

/// The OpenAPI schemas a settings type needs: its own, pushed with those it refers to.
type Schemas = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

fn schema_of<T: utoipa::ToSchema>(out: &mut Schemas) -> String {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
    T::name().into_owned()
}

impl SourceType {
    /// The name of the OpenAPI schema of this type's settings (`S3SourceConfig`); that
    /// schema and those it refers to are pushed into `out`.
    pub fn settings_schema(self, out: &mut Schemas) -> String {
        match self {
            Self::LocalFilesystem => schema_of::<LocalFsConfig>(out),
            Self::S3 => schema_of::<S3SourceConfig>(out),
            Self::Dropbox => schema_of::<DropboxConfig>(out),
            Self::GoogleDrive => schema_of::<GoogleDriveConfig>(out),
            Self::Notion => schema_of::<NotionConfig>(out),
        }
    }
}

impl SourceConfig {
    /// Its type.
    pub fn source_type(&self) -> SourceType {
        self.into()
    }

    fn settings(&self) -> &dyn Settings {
        match self {
            Self::LocalFilesystem(c) => c,
            Self::S3(c) => c,
            Self::Dropbox(c) => c,
            Self::GoogleDrive(c) => c,
            Self::Notion(c) => c,
        }
    }

    /// Type `table` as the settings of `source_type`: unknown keys and wrong shapes are
    /// refused with the key named.
    pub fn from_table(source_type: &str, table: toml::Table) -> Result<Self> {
        let source_type = SourceType::parse(source_type)?;
        let tagged = toml::Table::from_iter([
            ("source_type".to_string(), source_type.as_str().into()),
            ("config".to_string(), toml::Value::Table(table)),
        ]);
        tagged
            .try_into()
            .map_err(|e: toml::de::Error| Error::InvalidConfig(e.message().to_string()))
    }

    /// The settings as a table, the shape stored and shown.
    pub fn to_table(&self) -> toml::Table {
        let mut tagged = toml::Table::try_from(self).expect("source settings are a TOML table");
        match tagged.remove("config") {
            Some(toml::Value::Table(config)) => config,
            _ => toml::Table::new(),
        }
    }

    /// Where the source reads, in a few words.
    pub fn describe(&self) -> String {
        self.settings().describe()
    }
}

macro_rules! source_config_from {
    ($($config:ty => $arm:ident),* $(,)?) => {$(
        impl From<$config> for SourceConfig {
            fn from(config: $config) -> Self {
                Self::$arm(config)
            }
        }
    )*};
}

source_config_from! {
    LocalFsConfig => LocalFilesystem,
    S3SourceConfig => S3,
    DropboxConfig => Dropbox,
    GoogleDriveConfig => GoogleDrive,
    NotionConfig => Notion,
}

/// One configured source. `Debug` masks inline credentials; show a spec with
/// [`SourceSpec::redacted_config`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "StoredSource", into = "StoredSource")]
pub struct SourceSpec {
    /// Unique per user.
    pub id: String,
    /// Synced by schedules and `sync` without a source named.
    pub enabled: bool,
    /// Seconds between polls; `None` means DEFAULT_POLL_INTERVAL.
    pub poll_interval: Option<u64>,
    /// The type and its settings.
    pub config: SourceConfig,
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceSpec")
            .field("id", &self.id)
            .field("source_type", &self.source_type())
            .field("enabled", &self.enabled)
            .field("poll_interval", &self.poll_interval)
            .field("config", &self.redacted_config())
            .finish()
    }
}

impl SourceSpec {
    /// An enabled source with the default poll interval.
    pub fn new(id: impl Into<String>, config: impl Into<SourceConfig>) -> Self {
        Self {
            id: id.into(),
            enabled: true,
            poll_interval: None,
            config: config.into(),
        }
    }

    /// A local folder source.
    pub fn local(id: impl Into<String>, config: &LocalFsConfig) -> Self {
        Self::new(id, config.clone())
    }

    /// A source whose type is named and whose settings are given as TOML (`bucket = "docs"`,
    /// ...), as a sources file, the CLI's `--option`s or an API body give them.
    pub fn from_table(
        id: impl Into<String>,
        source_type: &str,
        config: toml::Table,
    ) -> Result<Self> {
        let id = id.into();
        let config = SourceConfig::from_table(source_type, config)
            .map_err(|e| Error::InvalidConfig(format!("source {id}: {}", bare(e))))?;
        Ok(Self::new(id, config))
    }

    /// Its type.
    pub fn source_type(&self) -> SourceType {
        self.config.source_type()
    }

    /// The settings with inline credentials masked, for status, the API and the CLI.
    pub fn redacted_config(&self) -> toml::Table {
        crate::secret::redact(&self.config.to_table())
    }

    /// Where the source reads, in a few words.
    pub fn describe(&self) -> String {
        self.config.describe()
    }

    /// Refuse what only the operator may configure, for a spec from an API caller that is not
    /// the admin: `env:VAR` references (the server's environment is the operator's), and what
    /// the type's settings refuse: folders on the server's disk, endpoint overrides, files on
    /// the server, S3 sources without their own credentials.
    pub fn check_untrusted(&self) -> Result<()> {
        let refuse = |why: String| Err(Error::InvalidConfig(format!("source {}: {why}", self.id)));
        for (key, value) in &self.config.to_table() {
            if value.as_str().is_some_and(|v| v.starts_with("env:")) {
                return refuse(format!(
                    "{key} refers to the server's environment; only the admin may use env: references"
                ));
            }
        }
        match self.config.settings().refused_for_untrusted() {
            Some(why) => refuse(why),
            None => Ok(()),
        }
    }

    /// Build the source. `env` expands `~` and `${VAR}` in paths and resolves `env:VAR`
    /// credentials.
    pub fn build(&self, env: &BTreeMap<String, String>) -> Result<Arc<dyn DocumentSource>> {
        self.config.settings().build(&self.id, env)
    }
}

fn bare(e: Error) -> String {
    match e {
        Error::InvalidConfig(why) => why,
        other => other.to_string(),
    }
}

/// A spec as a sources file stores it: the type by name and its settings as a table, not yet
/// checked. [`SourceSpec`] reads and writes through it, so the file's shape is this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredSource {
    /// Unique per user.
    pub id: String,
    /// The type's name.
    pub source_type: String,
    /// Scheduled.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between polls.
    #[serde(default)]
    pub poll_interval: Option<u64>,
    /// The type's settings.
    pub config: toml::Table,
}

fn yes() -> bool {
    true
}

impl StoredSource {
    /// The same, with inline credentials masked.
    pub fn redacted(&self) -> Self {
        Self {
            config: crate::secret::redact(&self.config),
            ..self.clone()
        }
    }
}

impl TryFrom<StoredSource> for SourceSpec {
    type Error = Error;

    fn try_from(stored: StoredSource) -> Result<Self> {
        let mut spec = SourceSpec::from_table(stored.id, &stored.source_type, stored.config)?;
        spec.enabled = stored.enabled;
        spec.poll_interval = stored.poll_interval;
        Ok(spec)
    }
}

impl From<SourceSpec> for StoredSource {
    fn from(spec: SourceSpec) -> Self {
        Self {
            source_type: spec.source_type().as_str().into(),
            config: spec.config.to_table(),
            id: spec.id,
            enabled: spec.enabled,
            poll_interval: spec.poll_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn the_type_names_are_the_serialized_tags() {
        assert_eq!(
            SourceType::names(),
            [
                "local_filesystem",
                "s3",
                "dropbox",
                "google_drive",
                "notion"
            ]
        );
        for ty in SourceType::iter() {
            assert_eq!(SourceType::parse(ty.as_str()).unwrap(), ty);
            assert_eq!(
                serde_json::to_value(ty).unwrap(),
                serde_json::Value::String(ty.as_str().into())
            );
        }
        let err = SourceType::parse("sharepoint").unwrap_err().to_string();
        assert!(err.contains("unknown source type \"sharepoint\""), "{err}");
        assert!(err.contains("google_drive"), "{err}");
    }

    #[test]
    fn a_spec_keeps_the_stored_shape() {
        let text = "id = 'b'\nsource_type = 's3'\nenabled = false\npoll_interval = 60\n\n[config]\nbucket = 'docs'\nregion = 'eu-west-1'\n";
        let spec: SourceSpec = toml::from_str(text).unwrap();
        assert_eq!(spec.source_type(), SourceType::S3);
        assert!(!spec.enabled);
        assert_eq!(spec.poll_interval, Some(60));
        let SourceConfig::S3(s3) = &spec.config else {
            panic!("{spec:?}")
        };
        assert_eq!(s3.bucket, "docs");
        let again: SourceSpec = toml::from_str(&toml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["source_type"], "s3");
        assert_eq!(json["config"]["bucket"], "docs");
        let typo = text.replace("region", "regoin");
        let err = toml::from_str::<SourceSpec>(&typo).unwrap_err().to_string();
        assert!(err.contains("source b") && err.contains("regoin"), "{err}");
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
                let built = SourceSpec::from_table("x", source_type, config)
                    .and_then(|spec| spec.build(&env));
                let err = match built {
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
            SourceSpec::from_table("x", source_type, toml::from_str(&text).unwrap())
                .and_then(|spec| spec.build(&env))
                .unwrap_or_else(|e| panic!("{source_type}: {e}"));
        }
    }

    #[test]
    fn untrusted_specs_cannot_use_the_server_s_environment_or_identity() {
        let spec = |ty: &str, text: &str| {
            SourceSpec::from_table("x", ty, toml::from_str(text).unwrap()).unwrap()
        };
        let refused = |s: SourceSpec| s.check_untrusted().unwrap_err().to_string();
        assert!(
            refused(spec("local_filesystem", "watch_paths = ['/etc']")).contains("server's disk")
        );
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
}
