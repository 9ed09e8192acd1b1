//! The page around every page: navigation, the user a page is about, sign-out, messages.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use maud::{DOCTYPE, Markup, html};

use crate::Ui;
use crate::assets::{CSS_PATH, JS_PATH};
use crate::error::Error;
use crate::session::Viewer;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Sources,
    Runs,
    Failures,
    Documents,
    Search,
    Storage,
}

const SECTIONS: [(Section, &str, &str); 7] = [
    (Section::Overview, "Overview", "/ui"),
    (Section::Sources, "Sources", "/ui/sources"),
    (Section::Runs, "Runs", "/ui/runs"),
    (Section::Failures, "Failures", "/ui/failures"),
    (Section::Documents, "Documents", "/ui/documents"),
    (Section::Search, "Search", "/ui/search"),
    (Section::Storage, "Storage", "/ui/storage"),
];

/// A signed-in viewer and the user the page is about: a user token's own user, or the one the
/// admin picked (`?user=`, default `default`).
#[derive(Clone)]
pub(crate) struct Scope {
    pub(crate) viewer: Viewer,
    pub(crate) user: String,
    users: Vec<String>,
}

impl FromRequestParts<Ui> for Scope {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, ui: &Ui) -> Result<Self, Error> {
        let viewer = Viewer::from_request_parts(parts, ui).await?;
        let asked = parts.uri.query().and_then(|q| query_value(q, "user"));
        let asked = asked.filter(|u| !u.is_empty());
        let user = viewer.principal().user_for(asked.as_deref())?;
        let mut users = Vec::new();
        if viewer.is_admin() {
            users = ui.api.orchestrator().users().into_iter().collect();
            for must in ["default", user.as_str()] {
                if !users.iter().any(|u| u == must) {
                    users.push(must.to_string());
                }
            }
            users.sort();
        }
        Ok(Scope {
            viewer,
            user,
            users,
        })
    }
}

impl Scope {
    /// `path` for the same user: the admin's pages carry `?user=`.
    pub(crate) fn link(&self, path: &str) -> String {
        if !self.viewer.is_admin() {
            return path.to_string();
        }
        let joiner = if path.contains('?') { '&' } else { '?' };
        format!("{path}{joiner}user={}", percent_encode(&self.user))
    }

    /// The CSRF token for this session's forms.
    pub(crate) fn csrf(&self) -> &str {
        &self.viewer.session.csrf
    }

    /// A form's hidden CSRF field.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf()); }
    }

    /// A page: `title`, in `section`, around `content`, with the messages waiting.
    pub(crate) fn page(&self, title: &str, section: Section, content: Markup) -> Markup {
        let flashes = self.viewer.session.take_flashes();
        let who = match self.viewer.principal() {
            lancesync_api::Principal::Admin => "admin".to_string(),
            lancesync_api::Principal::User(u) => u.clone(),
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · lancesync" }
                    link rel="stylesheet" href=(CSS_PATH);
                    script src=(JS_PATH) defer {}
                }
                body {
                    header.top {
                        a.brand href=(self.link("/ui")) { "lancesync" }
                        nav.main aria-label="Sections" {
                            @for (s, name, path) in SECTIONS {
                                a href=(self.link(path)) aria-current=[(s == section).then_some("page")] { (name) }
                            }
                        }
                        div.who {
                            @if self.viewer.is_admin() {
                                form method="get" action="" {
                                    label.check for="user-picker" { span.muted { "User" } }
                                    select #user-picker name="user" data-autosubmit {
                                        @for u in &self.users {
                                            option value=(u) selected[*u == self.user] { (u) }
                                        }
                                    }
                                    button.secondary type="submit" data-noscript-only { "Show" }
                                }
                            } @else {
                                span { "User " strong { (self.user) } }
                            }
                            @if self.viewer.signed_in {
                                form.inline method="post" action="/ui/logout" {
                                    (self.csrf_field())
                                    span.muted { "Signed in as " (who) " " }
                                    button.secondary type="submit" #sign-out { "Sign out" }
                                }
                            }
                        }
                    }
                    main {
                        @for f in &flashes {
                            p.flash.ok[f.ok].error[!f.ok] role=(if f.ok { "status" } else { "alert" }) { (f.text) }
                        }
                        h1 { (title) }
                        (content)
                    }
                }
            }
        }
    }
}

/// The value of `name` in a query string, decoded.
pub(crate) fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A value made safe for a query string or a path segment.
pub(crate) fn percent_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A status word as a coloured badge.
pub(crate) fn badge(status: &str) -> Markup {
    html! { span.status.(status) { (status) } }
}

/// An RFC 3339 time, shortened to what a person reads ("2026-12-07 15:04:05 UTC").
pub(crate) fn when(rfc3339: &str) -> String {
    if rfc3339.len() >= 19 && rfc3339.as_bytes()[10] == b'T' {
        format!("{} {} UTC", &rfc3339[..10], &rfc3339[11..19])
    } else {
        rfc3339.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip() {
        for v in ["alice", "bob@example.com", "a b&c=d", "ü"] {
            let query = format!("x=1&user={}", percent_encode(v));
            assert_eq!(query_value(&query, "user").as_deref(), Some(v));
        }
        assert_eq!(query_value("user=a+b%2", "user").as_deref(), Some("a b%2"));
    }

    #[test]
    fn times_read_as_people_write_them() {
        assert_eq!(when("2026-12-07T15:04:05.123Z"), "2026-12-07 15:04:05 UTC");
        assert_eq!(when("soon"), "soon");
    }
}
