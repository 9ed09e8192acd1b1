//! Whether S3 answers, and storage at a glance.

use serde::Serialize;

use crate::mirror;
use crate::state::{self, UserState};
use crate::{Error, Result, Storage, StorageMode};

/// One user's storage at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserStorageStatus {
    /// User.
    pub user_id: String,
    /// Local size in bytes (the database or its replica).
    pub local_bytes: u64,
    /// What lancesync remembers about S3 for this user.
    pub state: UserState,
}

/// Storage at a glance, for `sync-cli storage status` and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageStatus {
    /// The mode.
    pub mode: String,
    /// Where writes go (`{base}/users/U` or `s3://bucket/prefix/users/U`).
    pub primary: String,
    /// Where searches read, when not the primary.
    pub cache: Option<String>,
    /// Where copies go, in the local-primary modes with S3.
    pub backup: Option<String>,
    /// Users with changes not yet copied to S3.
    pub backlog: usize,
    /// Per user.
    pub users: Vec<UserStorageStatus>,
}

impl Storage {
    /// Check that S3 answers: the bucket exists and the credentials may list it. A clear
    /// error otherwise (missing bucket, refused credentials, unreachable endpoint).
    pub async fn probe(&self) -> Result<()> {
        let Some(t) = &self.remote else {
            return Ok(());
        };
        t.object_store()
            .await?
            .list_with_delimiter(Some(&t.users_prefix()))
            .await
            .map_err(|e| Error::probe(t, e))?;
        Ok(())
    }

    /// Mode, locations, backlog and per-user state, for `users`.
    pub async fn status(&self, users: &[String]) -> Result<StorageStatus> {
        let primary = match (&self.remote, self.s3_primary()) {
            (Some(t), true) => format!("{}/users/{{user}}", t.describe()),
            _ => format!("{}/users/{{user}}", self.local_base.display()),
        };
        let cache = (self.mode == StorageMode::S3PrimaryLocalCache)
            .then(|| format!("{}/users/{{user}}", self.local_base.display()));
        let backup = match (&self.remote, self.s3_primary()) {
            (Some(t), false) => Some(format!("{}/users/{{user}}", t.describe())),
            _ => None,
        };
        let mut all: Vec<String> = users.to_vec();
        for u in state::users(&self.state_dir) {
            if !all.contains(&u) {
                all.push(u);
            }
        }
        all.sort();
        let mut out = Vec::new();
        for user_id in all {
            let listing = mirror::local_listing(&self.local_dir(&user_id)).await?;
            out.push(UserStorageStatus {
                local_bytes: listing.values().sum(),
                state: state::load(&self.state_dir, &user_id)?,
                user_id,
            });
        }
        Ok(StorageStatus {
            mode: self.mode.to_string(),
            primary,
            cache,
            backup,
            backlog: out
                .iter()
                .filter(|u| u.state.pending_since.is_some())
                .count(),
            users: out,
        })
    }
}
