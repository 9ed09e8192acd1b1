//! Where each user's database is, by storage mode, and which user ids may name one.

use std::path::PathBuf;

use crate::{Error, Result, Storage};

/// Where one user's database is, as LanceDB should open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    /// `lancedb::connect` URI: a local folder or `s3://bucket/prefix/users/U`.
    pub uri: String,
    /// Storage options for that URI (credentials included when configured: never log).
    pub storage_options: Vec<(String, String)>,
    /// The folder, when the database is local.
    pub local_dir: Option<PathBuf>,
    /// A local folder for lock files, run markers and reports about this database.
    pub state_dir: PathBuf,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("uri", &self.uri)
            .field("local_dir", &self.local_dir)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Whether the database is on S3.
    pub fn is_remote(&self) -> bool {
        self.local_dir.is_none()
    }
}

impl Storage {
    /// Where user `user_id`'s database is written.
    pub fn database(&self, user_id: &str) -> Result<Database> {
        validate_user_id(user_id)?;
        Ok(match (&self.remote, self.s3_primary()) {
            (Some(t), true) => Database {
                uri: t.user_uri(user_id),
                storage_options: t.storage_options(),
                local_dir: None,
                state_dir: self.state_dir.join("users").join(user_id).join("engine"),
            },
            _ => {
                let dir = self.local_dir(user_id);
                Database {
                    uri: dir.to_string_lossy().into_owned(),
                    storage_options: Vec::new(),
                    state_dir: dir.join(".lancesync"),
                    local_dir: Some(dir),
                }
            }
        })
    }
}

/// Whether `user_id` may name a user: it names folders and key prefixes and appears in
/// filters, so 1 to 128 letters, digits, `-`, `_`, `.`, `@`, not starting with a dot (hidden
/// folders beside users' databases hold restores in progress). The engine uses this rule too.
pub fn is_valid_user_id(user_id: &str) -> bool {
    (1..=128).contains(&user_id.len())
        && !user_id.starts_with('.')
        && user_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

pub(crate) fn validate_user_id(user_id: &str) -> Result<()> {
    if is_valid_user_id(user_id) {
        Ok(())
    } else {
        Err(Error::InvalidUser {
            user_id: user_id.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{S3Target, StorageMode};

    #[test]
    fn each_mode_puts_the_database_where_its_table_says() {
        let t = S3Target::new("bucket", "lancedb-primary");
        let local = Storage::new(StorageMode::LocalOnly, "/db", "/state", Some(t.clone()));
        assert!(local.remote().is_none());
        let db = local.database("alice").unwrap();
        assert_eq!(db.local_dir.as_deref(), Some(Path::new("/db/users/alice")));
        assert_eq!(db.state_dir, Path::new("/db/users/alice/.lancesync"));
        let s3 = Storage::new(StorageMode::S3Only, "/db", "/state", Some(t.clone()));
        let db = s3.database("alice").unwrap();
        assert!(db.is_remote());
        assert_eq!(db.uri, "s3://bucket/lancedb-primary/users/alice");
        assert_eq!(db.state_dir, Path::new("/state/users/alice/engine"));
        let backup = Storage::new(StorageMode::LocalPrimaryS3Backup, "/db", "/state", Some(t));
        assert!(!backup.database("alice").unwrap().is_remote());
        let none = Storage::new(StorageMode::S3Only, "/db", "/state", None);
        assert_eq!(none.mode(), StorageMode::LocalOnly);
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(
                matches!(s3.database(bad), Err(Error::InvalidUser { .. })),
                "{bad}"
            );
        }
    }
}
