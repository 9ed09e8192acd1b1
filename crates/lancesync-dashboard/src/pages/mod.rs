//! The pages, a file a section: [`overview`] (and the pipeline), [`login`], [`sources`] (and
//! their runs), [`jobs`], [`failures`], [`documents`], [`search`] and [`storage`].

pub(crate) mod documents;
pub(crate) mod failures;
pub(crate) mod jobs;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod search;
pub(crate) mod sources;
pub(crate) mod storage;

use axum::response::{IntoResponse, Redirect, Response};
use lancesync_api::ApiError;
use serde::Deserialize;

use crate::error::Error;
use crate::layout::Scope;

pub(crate) type PageResult = Result<Response, Error>;

/// A form that changes something and carries nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    pub(crate) csrf: String,
}

/// After an action: its outcome said on the next page, which is `to`.
pub(crate) fn done(scope: &Scope, ok: bool, text: impl Into<String>, to: &str) -> Response {
    scope.viewer.session.flash(ok, text);
    Redirect::to(&scope.link(to)).into_response()
}

/// After starting a job: its page, which follows it to its end.
pub(crate) fn to_job(scope: &Scope, job: &lancesync_orchestrator::Job) -> Response {
    Redirect::to(&scope.link(&format!("/ui/jobs/{}", job.id))).into_response()
}

/// An action's error said on the page it returns to.
pub(crate) fn failed(scope: &Scope, error: impl Into<Error>, to: &str) -> Response {
    let error: Error = error.into();
    if matches!(error, Error::Csrf | Error::SignInNeeded) {
        return error.into_response();
    }
    done(scope, false, error.to_string(), to)
}

pub(crate) async fn not_found() -> Error {
    Error::Api(ApiError::not_found(
        "there is no such page in the dashboard",
    ))
}
