//! What goes wrong on a page, said to a person: a page with the server's message, never a JSON
//! dump or a blank page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use lancesync_api::ApiError;
use maud::html;

/// Why a page could not be shown or an action not done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No session: the browser must sign in first.
    #[error("sign in first")]
    SignInNeeded,
    /// A form without this session's token, or from another site.
    #[error("this form is out of date or came from another site; reload the page and try again")]
    Csrf,
    /// What the API would have answered.
    #[error("{}", .0.message)]
    Api(#[from] ApiError),
}

impl Error {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::SignInNeeded => StatusCode::UNAUTHORIZED,
            Error::Csrf => StatusCode::FORBIDDEN,
            Error::Api(e) => e.status,
        }
    }
}

impl From<lancesync_orchestrator::Error> for Error {
    fn from(e: lancesync_orchestrator::Error) -> Self {
        Error::Api(e.into())
    }
}

impl From<lancesync_engine::Error> for Error {
    fn from(e: lancesync_engine::Error) -> Self {
        Error::Api(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if matches!(self, Error::SignInNeeded) {
            return Redirect::to("/ui/login").into_response();
        }
        let status = self.status();
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "That did not work",
            StatusCode::CONFLICT => "Busy",
            _ => "Something went wrong",
        };
        let page = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · lancesync" }
                    link rel="stylesheet" href=(crate::assets::CSS_PATH);
                }
                body.bare {
                    main.narrow {
                        h1 { (title) }
                        p.flash.error role="alert" { (self.to_string()) }
                        p { a href="/ui" { "Back to the dashboard" } }
                    }
                }
            }
        };
        (status, page).into_response()
    }
}
