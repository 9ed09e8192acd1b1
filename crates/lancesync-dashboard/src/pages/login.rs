//! Signing in with an API token, and out.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::{CsrfOnly, PageResult};
use crate::Ui;
use crate::assets::CSS_PATH;
use crate::session::{self, Viewer};

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    signed_out: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

fn login_page(message: Option<(bool, &str)>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · lancesync" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body {
                main.narrow {
                    h1 { "Sign in to lancesync" }
                    @if let Some((ok, text)) = message {
                        p.flash.ok[ok].error[!ok] role=(if ok { "status" } else { "alert" }) #login-message { (text) }
                    }
                    form.stack method="post" action="/ui/login" {
                        label {
                            "API token"
                            span.hint { "The admin token (API_ADMIN_TOKEN) or a user's token (API_USER_TOKENS)." }
                            input #token type="password" name="token" autocomplete="current-password" required autofocus;
                        }
                        button type="submit" #sign-in { "Sign in" }
                    }
                }
            }
        }
    }
}

pub(crate) async fn form(
    State(ui): State<Ui>,
    viewer: Option<Viewer>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if viewer.is_some() || !ui.api.auth().is_enabled() {
        return Redirect::to("/ui").into_response();
    }
    let message = query.signed_out.map(|_| (true, "You are signed out."));
    login_page(message).into_response()
}

pub(crate) async fn sign_in(
    State(ui): State<Ui>,
    headers: axum::http::HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !ui.api.auth().is_enabled() {
        return Redirect::to("/ui").into_response();
    }
    let Some(principal) = ui.api.auth().principal_for_token(form.token.trim()) else {
        tracing::info!("dashboard sign-in refused: the token is not valid");
        return (
            StatusCode::UNAUTHORIZED,
            login_page(Some((
                false,
                "That token is not valid. Check it (the admin token or a user's token) and try again.",
            ))),
        )
            .into_response();
    };
    let (id, _) = ui.sessions.create(principal);
    let mut response = Redirect::to("/ui").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::cookie(&id, &headers));
    response
}

pub(crate) async fn sign_out(
    State(ui): State<Ui>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> PageResult {
    viewer.check_csrf(&form.csrf)?;
    if let Some(id) = session::presented_id(&headers) {
        ui.sessions.remove(&id);
    }
    let mut response = Redirect::to("/ui/login?signed_out=1").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::expired_cookie());
    Ok(response)
}
