//! Bearer-token authentication: an admin token and per-user tokens, compared in constant time.

use axum::http::HeaderMap;
use lancesync_config::ApiSettings;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token, or anyone when no token is configured (then the server listens on
    /// loopback only).
    Admin,
    /// A user token: only this user's data.
    User(String),
}

impl Principal {
    /// The user a request acts for: a user token acts for its own user only (403 for
    /// another); the admin names one, or acts for `default`.
    pub fn user_for(&self, requested: Option<&str>) -> Result<String, ApiError> {
        let user = match (self, requested) {
            (Principal::User(own), Some(asked)) if asked != own => {
                return Err(ApiError::forbidden(format!(
                    "this token is for user {own}; it cannot act for {asked}"
                )));
            }
            (Principal::User(own), _) => own.clone(),
            (Principal::Admin, Some(asked)) => asked.to_string(),
            (Principal::Admin, None) => "default".to_string(),
        };
        lancesync_engine::ids::validate_user_id(&user).map_err(ApiError::from)?;
        Ok(user)
    }

    /// Admin only.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self {
            Principal::Admin => Ok(()),
            Principal::User(_) => Err(ApiError::forbidden("this endpoint needs the admin token")),
        }
    }

    /// A key for rate limiting that never holds the token itself.
    pub(crate) fn limit_key(&self) -> String {
        match self {
            Principal::Admin => "admin".into(),
            Principal::User(u) => format!("user:{u}"),
        }
    }
}

/// The configured tokens, kept as BLAKE3 hashes: comparing two hashes is constant-time
/// (`blake3::Hash`'s equality), and the tokens themselves are not kept in memory twice.
#[derive(Clone)]
pub struct Auth {
    admin: Option<blake3::Hash>,
    users: Vec<(String, blake3::Hash)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("admin", &self.admin.is_some())
            .field(
                "users",
                &self.users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn digest(token: &SecretString) -> blake3::Hash {
    blake3::hash(token.expose_secret().as_bytes())
}

impl Auth {
    /// From API_ADMIN_TOKEN and API_USER_TOKENS.
    pub fn from_settings(api: &ApiSettings) -> Self {
        Self {
            admin: api.admin_token.as_ref().map(digest),
            users: api
                .user_tokens
                .iter()
                .map(|(user, token)| (user.clone(), digest(token)))
                .collect(),
        }
    }

    /// No tokens: every caller is admin (the server must then listen on loopback only).
    pub fn open() -> Self {
        Self {
            admin: None,
            users: Vec::new(),
        }
    }

    /// Whether any token is configured.
    pub fn is_enabled(&self) -> bool {
        self.admin.is_some() || !self.users.is_empty()
    }

    /// Who `token` belongs to, if anyone (the dashboard's sign-in takes the API's tokens).
    pub fn principal_for_token(&self, token: &str) -> Option<Principal> {
        let presented = blake3::hash(token.as_bytes());
        // Compare against every token, so timing does not tell which (if any) matched.
        let mut found = None;
        if self.admin.is_some_and(|a| a == presented) {
            found = Some(Principal::Admin);
        }
        for (user, hash) in &self.users {
            if *hash == presented && found.is_none() {
                found = Some(Principal::User(user.clone()));
            }
        }
        found
    }

    /// Who the request's `Authorization: Bearer` token belongs to.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, ApiError> {
        if !self.is_enabled() {
            return Ok(Principal::Admin);
        }
        let unauthorized = |m: &str| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, m);
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an Authorization: Bearer <token> header"))?
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be Bearer <token>"))?;
        self.principal_for_token(token)
            .ok_or_else(|| unauthorized("the token is not valid"))
    }
}
