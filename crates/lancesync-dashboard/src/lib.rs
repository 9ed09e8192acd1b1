//! lancesync's web dashboard: what `sync-server` serves at `/ui` for people.
//!
//! Server-rendered pages ([`maud`] templates, escaped by default) over the same orchestrator
//! calls the JSON API makes, with a small script for what a page cannot do alone (following a
//! job's progress, dropping a file to upload). Every asset is compiled into the binary, so the
//! dashboard works offline with nothing else to install or start.
//!
//! - **Sign-in** takes the API's tokens (admin or user). The server keeps the session and
//!   gives the browser only a random id, in an `HttpOnly`, `SameSite=Strict` cookie; every
//!   form that changes something carries the session's CSRF token, and a request from another
//!   origin is refused. Without configured tokens (then the server listens on loopback only)
//!   there is no sign-in.
//! - **A user token sees only its user**; the admin picks the user a page shows.
//! - Pages send a content security policy that allows only the dashboard's own script and
//!   style sheet, no inline code, and no framing.
//!
//! ```no_run
//! # async fn run(api: lancesync_api::Api) -> std::io::Result<()> {
//! let dashboard = lancesync_dashboard::Dashboard::new(api.clone());
//! let router = api.router_with(dashboard.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! lancesync_api::serve(listener, router, std::future::pending()).await
//! # }
//! ```

mod assets;
mod error;
mod highlight;
mod layout;
mod pages;
mod schema_form;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use lancesync_api::Api;

pub use error::Error;

/// The dashboard over an [`Api`] (its orchestrator, configuration and tokens).
#[derive(Clone)]
pub struct Dashboard {
    ui: Ui,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").finish_non_exhaustive()
    }
}

/// What every page handler gets.
#[derive(Clone)]
pub(crate) struct Ui {
    pub(crate) api: Api,
    pub(crate) sessions: Arc<session::Sessions>,
}

impl Dashboard {
    /// The dashboard for `api`.
    pub fn new(api: Api) -> Self {
        Self {
            ui: Ui {
                api,
                sessions: Arc::new(session::Sessions::default()),
            },
        }
    }

    /// Its routes, all under `/ui`, for [`Api::router_with`].
    pub fn router(&self) -> Router {
        use pages::{documents, failures, jobs, login, overview, search, sources, storage};
        Router::new()
            .route("/ui", get(overview::show))
            .route("/ui/", get(overview::show))
            .route("/ui/login", get(login::form).post(login::sign_in))
            .route("/ui/logout", post(login::sign_out))
            .route("/ui/pipeline/{action}", post(overview::pipeline))
            .route("/ui/sources", get(sources::list).post(sources::add))
            .route("/ui/sources/new", get(sources::new_form))
            .route("/ui/sources/{source_type}/{source_id}", get(sources::show))
            .route(
                "/ui/sources/{source_type}/{source_id}/scan",
                post(sources::scan),
            )
            .route(
                "/ui/sources/{source_type}/{source_id}/edit",
                get(sources::edit_form).post(sources::edit),
            )
            .route(
                "/ui/sources/{source_type}/{source_id}/schedule",
                post(sources::set_schedule),
            )
            .route(
                "/ui/sources/{source_type}/{source_id}/confirm-deletions",
                post(sources::confirm_deletions),
            )
            .route(
                "/ui/sources/{source_type}/{source_id}/remove",
                get(sources::confirm_remove).post(sources::remove),
            )
            .route("/ui/jobs/{job_id}", get(jobs::show))
            .route("/ui/jobs/{job_id}/progress", get(jobs::progress))
            .route("/ui/runs", get(sources::runs))
            .route("/ui/failures", get(failures::list))
            .route("/ui/failures/retry", post(failures::retry))
            .route("/ui/failures/clear", post(failures::clear))
            .route(
                "/ui/documents",
                get(documents::list).post(documents::upload),
            )
            .route("/ui/documents/{doc_id}", get(documents::show))
            .route("/ui/documents/{doc_id}/delete", post(documents::delete))
            .route("/ui/search", get(search::show))
            .route("/ui/storage", get(storage::show))
            .route("/ui/storage/backup", post(storage::backup))
            .route(
                "/ui/storage/restore",
                get(storage::confirm_restore).post(storage::restore),
            )
            .route("/ui/assets/{name}", get(assets::serve))
            .fallback_service(
                Router::new()
                    .fallback(pages::not_found)
                    .with_state(self.ui.clone()),
            )
            .layer(axum::middleware::from_fn_with_state(
                self.ui.clone(),
                session::resolve,
            ))
            .with_state(self.ui.clone())
    }
}
