//! Storage: where primary, cache and backups live, the S3 backlog, each user's last backup;
//! back up now, restore behind a confirmation.

use axum::Form;
use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;

use super::{CsrfOnly, PageResult, failed, to_job};
use crate::Ui;
use crate::layout::{Scope, Section, badge, when};

pub(crate) async fn show(State(ui): State<Ui>, scope: Scope) -> PageResult {
    let o = ui.api.orchestrator();
    let status = o.storage_status().await?;
    let backups = status.backup.is_some() || status.mode.contains("s3");
    let users: Vec<_> = status
        .users
        .iter()
        .filter(|u| scope.viewer.is_admin() || u.user_id == scope.user)
        .collect();
    let content = html! {
        dl.facts #storage {
            dt { "Mode" } dd { (status.mode) }
            // Where the server keeps data, and other users' backlog, are the admin's business
            // (as /api/v1/storage/status is admin only).
            @if scope.viewer.is_admin() {
                dt { "Primary" } dd { (status.primary) }
                @if let Some(cache) = &status.cache { dt { "Cache" } dd { (cache) } }
                @if let Some(backup) = &status.backup { dt { "Backups" } dd { (backup) } }
                dt { "Users with changes not yet in S3" } dd { (status.backlog) }
            } @else {
                dt { "Backups" } dd { @if backups { "to S3" } @else { "none" } }
            }
        }
        h2 { @if scope.viewer.is_admin() { "Users" } @else { "Your index" } }
        div.table-wrap { table #storage-users {
            thead { tr { th { "User" } th.num { "Local size" } th { "Last backup" } th { "Waiting for S3" } th { "Problems" } } }
            tbody {
                @for u in &users {
                    tr data-user=(u.user_id) {
                        td { (u.user_id) }
                        td.num { (format!("{:.1} MB", u.local_bytes as f64 / 1e6)) }
                        td { @match &u.state.last_backup { Some(b) => { (backup_line(b)) }, None => { span.muted { "none" } } } }
                        td { @match &u.state.pending_since { Some(at) => { "since " (when(at)) }, None => { "nothing" } } }
                        td {
                            @if let Some(c) = &u.state.conflict { (badge("failed")) " conflict: " (c) br; }
                            @if let Some(e) = &u.state.last_error { (badge("degraded")) " " (e) " (" (u.state.attempts) " attempts)" }
                        }
                    }
                }
            }
        } }
        @if backups {
            h2 { "Back up and restore " (scope.user) }
            div.actions {
                form.inline method="post" action=(scope.link("/ui/storage/backup")) {
                    (scope.csrf_field())
                    button type="submit" #backup-now { "Back up now" }
                }
                a.button.secondary href=(scope.link("/ui/storage/restore")) #restore { "Restore…" }
            }
        } @else {
            p.muted { "This storage mode keeps no copies in S3: there is nothing to back up to or restore from." }
        }
    };
    Ok(scope
        .page("Storage", Section::Storage, content)
        .into_response())
}

pub(crate) async fn backup(
    State(ui): State<Ui>,
    scope: Scope,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    match ui.api.orchestrator().backup(&scope.user) {
        Ok(job) => Ok(to_job(&scope, &job)),
        Err(e) => Ok(failed(&scope, e, "/ui/storage")),
    }
}

pub(crate) async fn confirm_restore(scope: Scope) -> PageResult {
    let content = html! {
        div.flash.error role="alert" {
            "Restoring replaces " strong { (scope.user) } "'s tables with a backup. Changes made since that backup are lost until the next runs of the user's sources bring them back."
        }
        form.stack method="post" action=(scope.link("/ui/storage/restore")) {
            (scope.csrf_field())
            label {
                "Version" span.hint { "Empty: the latest copy on S3 (every write is copied there, so it holds the last change). Otherwise the documents table's version to bring back (the storage page shows the last backup's, processed_documents vN)." }
                input type="number" name="version" min="0";
            }
            div.actions {
                button.danger type="submit" #confirm-restore { "Restore" }
                a.button.secondary href=(scope.link("/ui/storage")) { "Cancel" }
            }
        }
    };
    Ok(scope
        .page(
            &format!("Restore {}?", scope.user),
            Section::Storage,
            content,
        )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct RestoreForm {
    csrf: String,
    version: Option<String>,
}

pub(crate) async fn restore(
    State(ui): State<Ui>,
    scope: Scope,
    Form(form): Form<RestoreForm>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    let version = match form.version.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(v) => match v.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return Ok(super::done(
                    &scope,
                    false,
                    "The version is a whole number (or empty for the latest backup).",
                    "/ui/storage/restore",
                ));
            }
        },
    };
    match ui.api.orchestrator().restore(&scope.user, version) {
        Ok(job) => Ok(to_job(&scope, &job)),
        Err(e) => Ok(failed(&scope, e, "/ui/storage")),
    }
}

fn backup_line(b: &lancesync_storage::BackupRecord) -> maud::Markup {
    let versions = b
        .versions
        .iter()
        .map(|(table, v)| format!("{table} v{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    html! { (when(&b.at)) br; span.muted { (versions) } }
}
