//! Loading, layers, validation and redaction, through the public API with real files.
//! Run: cargo test --workspace --test loading

mod layers;
mod secrets;
mod templates;
mod validation;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lancesync_config::{
    BackendLocation, Config, EnvFile, Error, LoadOptions, LocationReason, Origin, Problem,
    StorageMode, TemplateFormat, template,
};
use secrecy::ExposeSecret;

/// Variables for a case of a table-driven test.
type Vars<'a> = Vec<(&'a str, &'a str)>;

fn opts(dir: &Path, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions::from_env_map(env.iter().copied(), dir)
}

fn problems(o: &LoadOptions) -> Vec<Problem> {
    Config::inspect(o).problems
}

fn problem_text(o: &LoadOptions) -> String {
    problems(o)
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
