//! What the JSON API and the dashboard both do, in one place: the rules that go with an
//! action (who may add what) are the API's, whichever front end asks.

use lancesync_orchestrator::{SourceChange, SourceInfo};
use lancesync_sources::SourceSpec;

use crate::Api;
use crate::auth::Principal;
use crate::error::ApiError;

/// A source to add, as a front end collected it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSource {
    /// Unique per user.
    pub source_id: String,
    /// `local_filesystem`, `s3`, `dropbox`, `google_drive` or `notion`.
    pub source_type: String,
    /// The type's settings.
    pub config: toml::Table,
    /// Scheduled (default SYNC_ENABLED_BY_DEFAULT).
    pub enabled: Option<bool>,
    /// Seconds between polls (`None` or 0: DEFAULT_POLL_INTERVAL).
    pub poll_interval: Option<u64>,
}

impl Api {
    /// Add `source` for `user` on behalf of `caller`: its settings are checked as the source
    /// type reads them (400 naming the key), and what acts as the server (folders on its
    /// disk, `env:` references, endpoint overrides, S3 without its own keys) is the admin's
    /// alone (403).
    pub async fn add_source(
        &self,
        caller: &Principal,
        user: &str,
        source: NewSource,
    ) -> Result<SourceInfo, ApiError> {
        let mut spec = SourceSpec::from_table(source.source_id, &source.source_type, source.config)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        spec.enabled = source
            .enabled
            .unwrap_or(self.orchestrator.settings().sync.enabled_by_default);
        spec.poll_interval = source.poll_interval;
        if caller.require_admin().is_err() {
            spec.check_untrusted()
                .map_err(|e| ApiError::forbidden(e.to_string()))?;
        }
        Ok(self.orchestrator.add_source(user, spec).await?)
    }
}

/// A change to a source, as a front end collected it; `None` keeps what is there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceEdit {
    /// Scheduled or not.
    pub enabled: Option<bool>,
    /// Seconds between runs (0: DEFAULT_POLL_INTERVAL).
    pub poll_interval: Option<u64>,
    /// The type's settings, whole; credentials left out keep their stored values.
    pub config: Option<toml::Table>,
}

impl Api {
    /// Change `user`'s source on behalf of `caller`, by the rules of [`Api::add_source`]
    /// (a user token may not set what acts as the server).
    pub async fn update_source(
        &self,
        caller: &Principal,
        user: &str,
        source_type: &str,
        source_id: &str,
        edit: SourceEdit,
    ) -> Result<SourceInfo, ApiError> {
        let untrusted = caller.require_admin().is_err();
        let change = SourceChange {
            enabled: edit.enabled,
            poll_interval: edit.poll_interval,
            settings: edit.config,
            check: untrusted.then(|| -> lancesync_orchestrator::SourceCheck {
                Box::new(|spec: &lancesync_sources::SourceSpec| {
                    spec.check_untrusted()
                        .map_err(|e| lancesync_orchestrator::Error::Forbidden(e.to_string()))
                })
            }),
        };
        Ok(self
            .orchestrator
            .update_source(user, source_type, source_id, change)
            .await?)
    }
}
