//! What the JSON API and the dashboard both do, in one place: the rules that go with an
//! action (who may add what) are the API's, whichever front end asks.

use lancesync_orchestrator::SourceInfo;
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
    pub fn add_source(
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
        Ok(self.orchestrator.add_source(user, spec)?)
    }
}
