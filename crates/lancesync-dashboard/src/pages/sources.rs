//! Sources: the list, a form per type to add one, a source's page with its last report,
//! "sync now", removal behind a confirmation, and every source's runs.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use lancesync_api::{ApiError, NewSource};
use lancesync_engine::{CheckOptions, SyncReport};
use lancesync_orchestrator::SourceInfo;
use lancesync_sources::SourceType;
use maud::{Markup, html};
use serde::Deserialize;

use super::{CsrfOnly, PageResult, done, failed, to_job};
use crate::Ui;
use crate::layout::{Scope, Section, badge, percent_encode, when};
use crate::schema_form::{self, Field, Kind};

/// `{source_type}/{source_id}`.
#[derive(Debug, Deserialize)]
pub(crate) struct SourcePath {
    source_type: String,
    source_id: String,
}

impl SourcePath {
    pub(crate) fn new(source_type: &str, source_id: &str) -> Self {
        Self {
            source_type: source_type.into(),
            source_id: source_id.into(),
        }
    }

    pub(crate) fn page(&self) -> String {
        format!(
            "/ui/sources/{}/{}",
            percent_encode(&self.source_type),
            percent_encode(&self.source_id)
        )
    }
}

fn source_href(scope: &Scope, s: &SourceInfo) -> String {
    scope.link(&format!(
        "/ui/sources/{}/{}",
        percent_encode(&s.source_type),
        percent_encode(&s.source_id)
    ))
}

fn every(seconds: u64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("every {} h", s / 3600),
        s if s % 60 == 0 => format!("every {} min", s / 60),
        s => format!("every {s} s"),
    }
}

/// A report in one line: what changed, how long it took.
fn outcome(report: &SyncReport) -> String {
    format!(
        "{} new, {} changed, {} moved, {} touched, {} deleted, {} failed in {:.1} s",
        report.created,
        report.updated,
        report.moved,
        report.touched,
        report.deleted,
        report.failed,
        report.duration_ms as f64 / 1000.0
    )
}

fn last_run(s: &SourceInfo) -> Markup {
    html! {
        @if s.running {
            (badge("running"))
            @if let Some(p) = s.progress {
                @match p.total { Some(total) if total > 0 => { " " (p.done) " of " (total) " documents" }, _ => { " listing…" } }
            }
        }
        @else if s.pending { (badge("queued")) }
        @else if let Some(e) = &s.last_error { (badge("failed")) " " (e) }
        @else if let Some(r) = &s.last_report {
            @if r.failed > 0 { (badge("failed")) } @else { (badge("succeeded")) }
            " " (outcome(r))
            @if let Some(at) = &s.last_run_at { br; span.muted { (when(at)) } }
        }
        @else { span.muted { "not run yet" } }
    }
}

pub(crate) async fn list(State(ui): State<Ui>, scope: Scope) -> PageResult {
    let sources = ui.api.orchestrator().sources(Some(&scope.user));
    let running = ui.api.orchestrator().is_running();
    let content = html! {
        div.actions { a.button href=(scope.link("/ui/sources/new")) #add-source { "Add a source" } }
        @if sources.is_empty() {
            p.muted #no-sources { "No sources yet. Add one: a folder, an S3 bucket, Dropbox, Google Drive or Notion." }
        } @else {
            div.table-wrap { table #sources {
                thead { tr { th { "Source" } th { "Type" } th { "Schedule" } th { "Last run" } th { "Next run" } th { "" } } }
                tbody {
                    @for s in &sources {
                        tr data-source=(s.source_id) {
                            td { a href=(source_href(&scope, s)) { (s.source_id) } }
                            td { (s.source_type) }
                            td { @if s.enabled { (every(s.poll_interval_seconds)) } @else { span.muted { "disabled" } } }
                            td { (last_run(s)) }
                            td {
                                @if !s.enabled { span.muted { "only by hand" } }
                                @else if !running { span.muted { "when the pipeline resumes" } }
                                @else if s.running { span.muted { "after this one" } }
                                @else if let Some(at) = &s.next_run_at { (when(at)) }
                                @else { span.muted { "now" } }
                            }
                            td {
                                form.inline method="post" action=(scope.link(&format!("{}/scan", source_href_path(s)))) {
                                    (scope.csrf_field())
                                    button.secondary type="submit" { "Sync now" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(scope
        .page("Sources", Section::Sources, content)
        .into_response())
}

fn source_href_path(s: &SourceInfo) -> String {
    format!(
        "/ui/sources/{}/{}",
        percent_encode(&s.source_type),
        percent_encode(&s.source_id)
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct NewQuery {
    #[serde(rename = "type")]
    source_type: Option<String>,
}

/// What the form holds, and what was wrong with it.
#[derive(Debug, Default)]
struct Filled {
    values: BTreeMap<String, String>,
    errors: BTreeMap<String, String>,
    general: Option<String>,
}

impl Filled {
    /// Say `message` beside the field it names, else above the form.
    fn place(&mut self, message: String, fields: &[Field]) {
        match schema_form::field_named(&message, fields) {
            Some(key) => {
                self.errors.insert(key.to_string(), message);
            }
            None => self.general = Some(message),
        }
    }
}

/// What a source form sent, as far as the form itself can check it.
struct SentForm {
    /// The settings, typed by the schema.
    config: toml::Table,
    /// Seconds between runs; `None` when left empty.
    poll_interval: Option<u64>,
    /// The schedule box ticked.
    enabled: bool,
    /// The form to show again, should the server refuse it (secrets left out).
    filled: Filled,
}

/// Read a source form: the settings and the poll interval typed, or the form to show again
/// with the error beside its field. Secrets are never sent back into the page.
fn read_form(fields: &[Field], sent: &BTreeMap<String, String>) -> Result<SentForm, Filled> {
    let mut filled = Filled {
        values: sent.clone(),
        ..Filled::default()
    };
    for f in fields.iter().filter(|f| f.kind == Kind::Secret) {
        filled.values.remove(&format!("cfg.{}", f.key));
    }
    let config = match schema_form::settings(fields, sent) {
        Ok(config) => config,
        Err((key, message)) => {
            filled.errors.insert(key, message);
            return Err(filled);
        }
    };
    let poll_interval = match sent.get("poll_interval").map(|p| p.trim()) {
        None | Some("") => None,
        Some(p) => match p.parse::<u64>() {
            Ok(p) => Some(p),
            Err(_) => {
                filled.errors.insert(
                    "poll_interval".into(),
                    "a whole number of seconds, 0 or more".into(),
                );
                return Err(filled);
            }
        },
    };
    Ok(SentForm {
        config,
        poll_interval,
        enabled: sent.contains_key("enabled"),
        filled,
    })
}

fn type_label(ty: SourceType) -> &'static str {
    match ty {
        SourceType::LocalFilesystem => "Local folder",
        SourceType::S3 => "S3 bucket",
        SourceType::Dropbox => "Dropbox",
        SourceType::GoogleDrive => "Google Drive",
        SourceType::Notion => "Notion",
    }
}

/// Adding a source, or changing one (its id and type fixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FormFor<'a> {
    Adding,
    Changing(&'a str),
}

fn source_form(
    scope: &Scope,
    ui: &Ui,
    ty: SourceType,
    filled: &Filled,
    purpose: FormFor<'_>,
) -> Markup {
    let fields = schema_form::fields(ty);
    let value = |k: &str| filled.values.get(k).map(String::as_str).unwrap_or("");
    let enabled_default = ui.api.orchestrator().settings().sync.enabled_by_default;
    let enabled = if filled.values.is_empty() {
        enabled_default
    } else {
        filled.values.contains_key("enabled")
    };
    let error_of = |k: &str| filled.errors.get(k);
    let (action, save) = match purpose {
        FormFor::Adding => (scope.link("/ui/sources"), "Add source"),
        FormFor::Changing(id) => (
            scope.link(&format!("{}/edit", SourcePath::new(ty.as_str(), id).page())),
            "Save changes",
        ),
    };
    html! {
        @if purpose == FormFor::Adding {
            nav.tabs aria-label="Source types" {
                @for t in SourceType::all() {
                    a href=(scope.link(&format!("/ui/sources/new?type={}", t.as_str()))) aria-current=[(t == ty).then_some("page")] { (type_label(t)) }
                }
            }
        }
        @if ty == SourceType::LocalFilesystem && !scope.viewer.is_admin() {
            p.flash.error { "Folder sources read the server's disk: only the admin may add them." }
        }
        form.stack method="post" action=(action) #source-form novalidate {
            (scope.csrf_field())
            input type="hidden" name="source_type" value=(ty.as_str());
            @if let Some(general) = &filled.general {
                p.flash.error role="alert" #form-error { (general) }
            }
            @if let FormFor::Changing(id) = purpose {
                p { "Source " strong { (id) } " (" (type_label(ty)) "). New settings make its next run list it in full." }
            } @else {
                (text_field("source_id", "Source id", "Unique for the user: letters, digits, _, - and . (not first).", value("source_id"), error_of("source_id"), true, false))
            }
            @for field in &fields {
                (setting_field(field, value(&format!("cfg.{}", field.key)), error_of(&field.key), matches!(purpose, FormFor::Changing(_))))
            }
            (text_field("poll_interval", "Seconds between runs", "Empty: DEFAULT_POLL_INTERVAL.", value("poll_interval"), error_of("poll_interval"), false, false))
            label.check { input #field-enabled type="checkbox" name="enabled" checked[enabled]; "Run on a schedule (the first run starts at once)" }
            div.actions { button type="submit" #save-source { (save) } a.button.secondary href=(scope.link("/ui/sources")) { "Cancel" } }
        }
    }
}

fn text_field(
    name: &str,
    label: &str,
    hint: &str,
    value: &str,
    error: Option<&String>,
    required: bool,
    secret: bool,
) -> Markup {
    let id = format!("field-{}", name.replace('.', "-"));
    html! {
        label for=(id) {
            (label) @if required { " *" }
            span.hint { (hint) }
            @if secret {
                input #(id) type="password" name=(name) autocomplete="off" aria-invalid=[error.map(|_| "true")];
            } @else {
                input #(id) type="text" name=(name) value=(value) aria-invalid=[error.map(|_| "true")];
            }
            @if let Some(e) = error { span.field-error role="alert" { (e) } }
        }
    }
}

fn setting_field(field: &Field, value: &str, error: Option<&String>, changing: bool) -> Markup {
    let name = format!("cfg.{}", field.key);
    let id = format!("field-cfg-{}", field.key);
    match field.kind {
        Kind::Boolean => html! {
            label.check for=(id) {
                input #(id) type="checkbox" name=(name) checked[!value.is_empty()];
                (field.key) span.hint { " " (field.description) }
                @if let Some(e) = error { span.field-error role="alert" { (e) } }
            }
        },
        Kind::Lines | Kind::Json => html! {
            label for=(id) {
                (field.key) @if field.required { " *" }
                span.hint {
                    (field.description)
                    @if field.kind == Kind::Lines { " One a line." } @else { " As JSON." }
                }
                textarea #(id) name=(name) aria-invalid=[error.map(|_| "true")] { (value) }
                @if let Some(e) = error { span.field-error role="alert" { (e) } }
            }
        },
        Kind::Secret if changing => text_field(
            &name,
            &field.key,
            &format!("{} Leave empty to keep the one stored.", field.description),
            "",
            error,
            false,
            true,
        ),
        Kind::Text | Kind::Secret | Kind::Integer | Kind::Number => text_field(
            &name,
            &field.key,
            &field.description,
            value,
            error,
            field.required,
            field.kind == Kind::Secret,
        ),
    }
}

pub(crate) async fn new_form(
    State(ui): State<Ui>,
    scope: Scope,
    Query(query): Query<NewQuery>,
) -> PageResult {
    let ty = match query.source_type.as_deref() {
        None | Some("") => SourceType::LocalFilesystem,
        Some(t) => SourceType::parse(t).map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let content = source_form(&scope, &ui, ty, &Filled::default(), FormFor::Adding);
    Ok(scope
        .page("Add a source", Section::Sources, content)
        .into_response())
}

pub(crate) async fn add(
    State(ui): State<Ui>,
    scope: Scope,
    Form(sent): Form<Vec<(String, String)>>,
) -> PageResult {
    let sent: BTreeMap<String, String> = sent.into_iter().collect();
    scope
        .viewer
        .check_csrf(sent.get("csrf").map(String::as_str).unwrap_or(""))?;
    let ty = SourceType::parse(sent.get("source_type").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = schema_form::fields(ty);
    let again = |filled: Filled| {
        let content = source_form(&scope, &ui, ty, &filled, FormFor::Adding);
        Ok((
            StatusCode::BAD_REQUEST,
            scope.page("Add a source", Section::Sources, content),
        )
            .into_response())
    };
    let form = match read_form(&fields, &sent) {
        Ok(form) => form,
        Err(filled) => return again(filled),
    };
    let mut filled = form.filled;
    let source_id = sent
        .get("source_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    if source_id.is_empty() {
        filled
            .errors
            .insert("source_id".into(), "give the source an id".into());
        return again(filled);
    }
    let added = ui
        .api
        .add_source(
            scope.viewer.principal(),
            &scope.user,
            NewSource {
                source_id: source_id.clone(),
                source_type: ty.as_str().to_string(),
                config: form.config,
                enabled: Some(form.enabled),
                poll_interval: form.poll_interval,
            },
        )
        .await;
    match added {
        Ok(info) => Ok(done(
            &scope,
            true,
            format!(
                "Source {} added. Sync it now, or let its schedule run it.",
                info.source_id
            ),
            &source_href_path(&info),
        )),
        Err(e) => {
            if e.message.contains("source id") || e.message.contains("taken") {
                filled.errors.insert("source_id".into(), e.message);
            } else {
                filled.place(e.message, &fields);
            }
            again(filled)
        }
    }
}

/// The source at `path` and how many documents (failure records included) it has indexed.
async fn source_and_documents(
    ui: &Ui,
    scope: &Scope,
    path: &SourcePath,
) -> Result<(SourceInfo, usize), crate::Error> {
    let o = ui.api.orchestrator();
    let s = o.source(&scope.user, &path.source_type, &path.source_id)?;
    let documents = o
        .engine()
        .status(&scope.user)
        .await?
        .by_source
        .get(&s.source_id)
        .copied()
        .unwrap_or(0);
    Ok((s, documents))
}

pub(crate) async fn show(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
) -> PageResult {
    let (s, documents) = source_and_documents(&ui, &scope, &path).await?;
    let settings = toml::to_string_pretty(&s.config).unwrap_or_default();
    let content = html! {
        div.actions {
            form.inline method="post" action=(scope.link(&format!("{}/scan", path.page()))) {
                (scope.csrf_field())
                button type="submit" #sync-now { "Sync now" }
            }
            a.button.secondary href=(scope.link(&format!("/ui/documents?source={}", percent_encode(&s.source_id)))) { "Documents" }
            a.button.secondary href=(scope.link(&format!("{}/edit", path.page()))) #edit-source { "Change settings" }
            form.inline method="post" action=(scope.link(&format!("{}/schedule", path.page()))) {
                (scope.csrf_field())
                input type="hidden" name="schedule" value=(if s.enabled { "off" } else { "on" });
                button.secondary type="submit" #toggle-schedule { @if s.enabled { "Disable schedule" } @else { "Enable schedule" } }
            }
            a.button.secondary href=(scope.link(&format!("{}/remove", path.page()))) #remove-source { "Remove" }
        }
        dl.facts {
            dt { "Type" } dd { (s.source_type) }
            dt { "Documents" } dd #source-documents { (documents) }
            dt { "Schedule" } dd { @if s.enabled { (every(s.poll_interval_seconds)) } @else { "disabled: runs only by hand" } }
            dt { "Runs since start" } dd { (s.runs) }
            dt { "Last run" } dd #last-run { (last_run(&s)) }
        }
        @if let Some(r) = &s.last_report { (report(&scope, &path, r)) }
        h2 { "Settings" }
        pre.chunk { (settings) }
    };
    Ok(scope
        .page(
            &format!("Source {}", s.source_id),
            Section::Sources,
            content,
        )
        .into_response())
}

/// A run's report: every count, the failures, withheld deletions and how to confirm them.
pub(crate) fn report(scope: &Scope, path: &SourcePath, r: &SyncReport) -> Markup {
    html! {
        div.table-wrap { table.report {
            thead { tr {
                th.num { "created" } th.num { "updated" } th.num { "touched" } th.num { "moved" }
                th.num { "deleted" } th.num { "unchanged" } th.num { "failed" } th.num.hide-narrow { "chunks written" } th.num { "seconds" }
            } }
            tbody { tr {
                td.num { (r.created) } td.num { (r.updated) } td.num { (r.touched) } td.num { (r.moved) }
                td.num { (r.deleted) } td.num { (r.unchanged) } td.num { (r.failed) } td.num.hide-narrow { (r.chunks_written) }
                td.num { (format!("{:.1}", r.duration_ms as f64 / 1000.0)) }
            } }
        } }
        @if let Some(blocked) = &r.mass_delete_blocked {
            div.flash.error role="alert" {
                p { "Deletions withheld: the source no longer lists " (blocked.would_delete) " of its " (blocked.documents)
                    " documents, more than the " (format!("{:.0}", blocked.max_share * 100.0)) "% a run deletes on its own (MASS_DELETE_MAX_SHARE). "
                    "If the documents really are gone, confirm the deletions; if the source is only unreachable or misconfigured, fix it instead." }
                form.inline method="post" action=(scope.link(&format!("{}/confirm-deletions", path.page()))) {
                    (scope.csrf_field())
                    button.danger type="submit" { "Delete the " (blocked.would_delete) " documents" }
                }
            }
        }
        @if !r.failures.is_empty() {
            h2 { "Failed in this run" }
            div.table-wrap { table {
                thead { tr { th { "Document" } th { "Why" } } }
                tbody { @for f in &r.failures { tr { td { (f.uri) } td { (f.reason) } } } }
            } }
        }
        @if !r.issues.is_empty() {
            h2 { "Not looked at" }
            ul { @for issue in &r.issues { li { (serde_json::to_string(issue).unwrap_or_default()) } } }
        }
    }
}

pub(crate) async fn scan(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    match ui
        .api
        .orchestrator()
        .scan(&scope.user, &path.source_type, &path.source_id)
    {
        Ok(job) => Ok(to_job(&scope, &job)),
        Err(e) => Ok(failed(&scope, e, &path.page())),
    }
}

pub(crate) async fn confirm_deletions(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    let options = CheckOptions {
        deep: false,
        repair: true,
        allow_mass_delete: true,
    };
    match ui
        .api
        .orchestrator()
        .check(&scope.user, Some(&path.source_id), options)
        .await
    {
        Ok(report) => {
            scope.viewer.session.flash(
                report.consistent(),
                if report.consistent() {
                    "The withheld deletions were applied: the index now matches the source. A sync runs now, so its report says so too."
                } else {
                    "Repaired what could be repaired; some differences remain (sync-cli check lists them). A sync runs now."
                },
            );
            // A fresh run replaces the report that withheld them.
            let scan = ui
                .api
                .orchestrator()
                .scan(&scope.user, &path.source_type, &path.source_id);
            Ok(match scan {
                Ok(job) => to_job(&scope, &job),
                Err(_) => Redirect::to(&scope.link(&path.page())).into_response(),
            })
        }
        Err(e) => Ok(failed(&scope, e, &path.page())),
    }
}

pub(crate) async fn confirm_remove(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
) -> PageResult {
    let (s, documents) = source_and_documents(&ui, &scope, &path).await?;
    let content = html! {
        div.flash.error role="alert" #remove-warning {
            "Removing " strong { (s.source_id) } " also removes its " strong { (documents) " document" @if documents != 1 { "s" } }
            " from the index. The documents themselves (files, objects, pages) are not touched."
        }
        form.inline method="post" action=(scope.link(&format!("{}/remove", path.page()))) {
            (scope.csrf_field())
            div.actions {
                button.danger type="submit" #confirm-remove { "Remove the source and its " (documents) " documents" }
                a.button.secondary href=(scope.link(&path.page())) { "Keep it" }
            }
        }
    };
    Ok(scope
        .page(
            &format!("Remove {}?", s.source_id),
            Section::Sources,
            content,
        )
        .into_response())
}

pub(crate) async fn remove(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    match ui
        .api
        .orchestrator()
        .remove_source(&scope.user, &path.source_type, &path.source_id)
        .await
    {
        Ok(documents) => Ok(done(
            &scope,
            true,
            format!(
                "Source {} removed, with its {documents} documents.",
                path.source_id
            ),
            "/ui/sources",
        )),
        Err(e) => Ok(failed(&scope, e, &path.page())),
    }
}

/// Runs of a source listed on the runs page, newest first.
const RUNS_SHOWN: usize = 20;

pub(crate) async fn runs(State(ui): State<Ui>, scope: Scope) -> PageResult {
    let o = ui.api.orchestrator();
    let sources = o.sources(Some(&scope.user));
    let history = o.run_history(&scope.user).await?;
    let content = html! {
        p.muted { "Each source's runs, newest first, then its last run's full report. Runs in progress show on the overview." }
        @if sources.is_empty() { p.muted { "No sources yet." } }
        @for s in &sources {
            @let path = SourcePath { source_type: s.source_type.clone(), source_id: s.source_id.clone() };
            @let runs: Vec<_> = history.iter().rev().filter(|r| r.source_id == s.source_id).take(RUNS_SHOWN).collect();
            section.run data-source=(s.source_id) {
                h2 { a href=(source_href(&scope, s)) { (s.source_id) } " " span.muted { (s.source_type) } }
                p { (last_run(s)) }
                @if !runs.is_empty() {
                    div.table-wrap { table.history {
                        thead { tr {
                            th { "finished" } th.num { "created" } th.num { "updated" } th.num { "touched" } th.num { "moved" }
                            th.num { "deleted" } th.num { "failed" } th.num { "withheld" } th.num.hide-narrow { "seconds" }
                        } }
                        tbody {
                            @for r in &runs {
                                tr {
                                    td { (when(&r.finished_at)) }
                                    td.num { (r.created) } td.num { (r.updated) } td.num { (r.touched) } td.num { (r.moved) }
                                    td.num { (r.deleted) } td.num { (r.failed) } td.num { (r.withheld) }
                                    td.num.hide-narrow { (format!("{:.1}", r.duration_ms as f64 / 1000.0)) }
                                }
                            }
                        }
                    } }
                }
                @if let Some(r) = &s.last_report { h2 { "Last run" } (report(&scope, &path, r)) }
            }
        }
    };
    Ok(scope.page("Runs", Section::Runs, content).into_response())
}

/// The form's fields as a stored source fills them (credentials are never shown back).
fn filled_from(s: &SourceInfo, fields: &[Field], default_poll: u64) -> Filled {
    let mut values = BTreeMap::new();
    for field in fields {
        let Some(value) = s.config.get(&field.key) else {
            continue;
        };
        let text = match (field.kind, value) {
            (Kind::Secret, _) => continue,
            (Kind::Boolean, toml::Value::Boolean(false)) => continue,
            (Kind::Boolean, _) => "on".to_string(),
            (Kind::Lines, toml::Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| i.to_string())
                })
                .collect::<Vec<_>>()
                .join("\n"),
            (_, toml::Value::String(text)) => text.clone(),
            (Kind::Json, other) => serde_json::to_string(other).unwrap_or_default(),
            (_, other) => other.to_string(),
        };
        values.insert(format!("cfg.{}", field.key), text);
    }
    if s.enabled {
        values.insert("enabled".into(), "on".into());
    }
    if s.poll_interval_seconds != default_poll {
        values.insert("poll_interval".into(), s.poll_interval_seconds.to_string());
    }
    // Marks the form as filled, so an unticked schedule box reads as "disabled".
    values.insert("source_id".into(), s.source_id.clone());
    Filled {
        values,
        ..Filled::default()
    }
}

pub(crate) async fn edit_form(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
) -> PageResult {
    let o = ui.api.orchestrator();
    let s = o.source(&scope.user, &path.source_type, &path.source_id)?;
    let ty = SourceType::parse(&s.source_type).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = schema_form::fields(ty);
    let default_poll = o.settings().monitoring.default_poll_interval.as_secs();
    let filled = filled_from(&s, &fields, default_poll);
    let content = source_form(&scope, &ui, ty, &filled, FormFor::Changing(&s.source_id));
    Ok(scope
        .page(
            &format!("Change {}", s.source_id),
            Section::Sources,
            content,
        )
        .into_response())
}

pub(crate) async fn edit(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
    Form(sent): Form<Vec<(String, String)>>,
) -> PageResult {
    let sent: BTreeMap<String, String> = sent.into_iter().collect();
    scope
        .viewer
        .check_csrf(sent.get("csrf").map(String::as_str).unwrap_or(""))?;
    let ty =
        SourceType::parse(&path.source_type).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = schema_form::fields(ty);
    let again = |mut filled: Filled| {
        filled
            .values
            .insert("source_id".into(), path.source_id.clone());
        let content = source_form(&scope, &ui, ty, &filled, FormFor::Changing(&path.source_id));
        Ok((
            StatusCode::BAD_REQUEST,
            scope.page(
                &format!("Change {}", path.source_id),
                Section::Sources,
                content,
            ),
        )
            .into_response())
    };
    let form = match read_form(&fields, &sent) {
        Ok(form) => form,
        Err(filled) => return again(filled),
    };
    let mut filled = form.filled;
    let changed = ui
        .api
        .update_source(
            scope.viewer.principal(),
            &scope.user,
            &path.source_type,
            &path.source_id,
            lancesync_api::SourceEdit {
                enabled: Some(form.enabled),
                // Empty: back to DEFAULT_POLL_INTERVAL.
                poll_interval: Some(form.poll_interval.unwrap_or(0)),
                config: Some(form.config),
            },
        )
        .await;
    match changed {
        Ok(info) => Ok(done(
            &scope,
            true,
            format!("Source {} changed.", info.source_id),
            &path.page(),
        )),
        Err(e) => {
            filled.place(e.message, &fields);
            again(filled)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ScheduleForm {
    csrf: String,
    /// `on` or `off`.
    schedule: String,
}

pub(crate) async fn set_schedule(
    State(ui): State<Ui>,
    scope: Scope,
    Path(path): Path<SourcePath>,
    Form(form): Form<ScheduleForm>,
) -> PageResult {
    scope.viewer.check_csrf(&form.csrf)?;
    let enabled = form.schedule == "on";
    let changed = ui
        .api
        .update_source(
            scope.viewer.principal(),
            &scope.user,
            &path.source_type,
            &path.source_id,
            lancesync_api::SourceEdit {
                enabled: Some(enabled),
                ..lancesync_api::SourceEdit::default()
            },
        )
        .await;
    match changed {
        Ok(info) if enabled => Ok(done(
            &scope,
            true,
            format!("{} runs on its schedule again.", info.source_id),
            &path.page(),
        )),
        Ok(info) => Ok(done(
            &scope,
            true,
            format!(
                "{} is disabled: it runs only when synced by hand.",
                info.source_id
            ),
            &path.page(),
        )),
        Err(e) => Ok(failed(&scope, crate::Error::Api(e), &path.page())),
    }
}
