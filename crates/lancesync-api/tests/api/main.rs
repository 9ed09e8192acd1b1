//! Every endpoint through the router, on real LanceDB tables in temp dirs: the common flows,
//! auth and cross-user isolation, and bad input (malformed JSON, wrong types, huge bodies,
//! unknown types, injection attempts) answered with a clear 4xx that changes nothing.
//! Run: cargo test --workspace --test api

mod access;
mod cluster;
mod documents;
mod flows;
mod sources;
mod storage;

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::*;
use lancesync_config::{Config, EnvFile, LoadOptions};
use serde_json::json;
use tower::ServiceExt;
