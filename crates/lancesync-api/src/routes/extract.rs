//! Extractors: the authenticated caller, and the user a request acts for together with its
//! parameters (query string or JSON body), so no handler repeats "authenticate, parse, resolve
//! the user".

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::IntoParams;

use crate::Api;
use crate::auth::Principal;
use crate::error::ApiError;

/// The authenticated caller.
pub(crate) struct Caller(pub Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        api.auth.authenticate(&parts.headers).map(Caller)
    }
}

/// A caller holding the admin token (403 for any other).
pub(crate) struct Admin;

impl FromRequestParts<Api> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, api).await?;
        caller.require_admin()?;
        Ok(Admin)
    }
}

/// The user a request acts for, from its token and `?user_id=` (see
/// [`Principal::user_for`]); for endpoints whose only query parameter is `user_id`.
pub(crate) struct ForUser(pub String);

impl FromRequestParts<Api> for ForUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let scoped = UserScoped::<UserQuery>::from_request_parts(parts, api).await?;
        Ok(ForUser(scoped.user))
    }
}

/// `?user_id=`: which user an admin acts for (a user token acts for its own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserQuery {
    /// User to act for; admin only (a user token may name only itself).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    pub(super) user_id: Option<String>,
}

/// Parameters that may name the user a request acts for (`user_id`; admin only).
pub(crate) trait ActsFor {
    /// The user named, if any.
    fn user_id(&self) -> Option<&str>;
}

impl ActsFor for UserQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

/// A request's query parameters `Q` and the user it acts for (see [`Principal::user_for`]).
pub(crate) struct UserScoped<Q> {
    /// The user the request acts for.
    pub user: String,
    /// The query parameters.
    pub query: Q,
}

impl<Q> FromRequestParts<Api> for UserScoped<Q>
where
    Q: DeserializeOwned + ActsFor + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, api).await?;
        let Query(query) = Query::<Q>::from_request_parts(parts, api).await?;
        let user = caller.user_for(query.user_id())?;
        Ok(Self { user, query })
    }
}

/// A request's JSON body `B`, the user it acts for, and the caller (for checks that depend on
/// the body).
pub(crate) struct UserBody<B> {
    /// The user the request acts for.
    pub user: String,
    /// The body.
    pub body: B,
    /// Who is asking.
    pub caller: Principal,
}

impl<B> FromRequest<Api> for UserBody<B>
where
    B: DeserializeOwned + ActsFor + Send,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let Caller(caller) = Caller::from_request_parts(&mut parts, api).await?;
        let Json(body) = Json::<B>::from_request(Request::from_parts(parts, body), api).await?;
        let user = caller.user_for(body.user_id())?;
        Ok(Self { user, body, caller })
    }
}
