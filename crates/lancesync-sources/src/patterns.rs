//! Include and exclude globs, shared by every source: a pattern without `/` matches file
//! names, one with `/` paths relative to the source's root. Case-insensitive.

use std::path::Path;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which files a source indexes: the settings every file source takes, flattened into its
/// configuration once (`file_patterns`, `exclude_patterns`, `max_file_size`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Include globs. A pattern without `/` matches file names (`*.pdf`); one with `/`, paths
    /// relative to the source's root (`reports/**/*.md`). Case-insensitive. Unset: the
    /// source type's defaults ([`crate::DEFAULT_PATTERNS`]; Google Drive adds `*.csv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_patterns: Option<Vec<String>>,
    /// Exclude globs, matched like `file_patterns` against files and every folder above them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_patterns: Vec<String>,
    /// Documents larger than this many bytes are recorded as failures, never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
}

impl FilterSettings {
    /// Only these include globs.
    pub fn including<S: Into<String>>(patterns: impl IntoIterator<Item = S>) -> Self {
        Self {
            file_patterns: Some(patterns.into_iter().map(Into::into).collect()),
            ..Self::default()
        }
    }

    /// The include globs: those set, or `defaults`.
    pub fn includes(&self, defaults: &[&str]) -> Vec<String> {
        match &self.file_patterns {
            Some(patterns) => patterns.clone(),
            None => defaults.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// The compiled filter, with `defaults` for unset include globs.
    pub(crate) fn filter(&self, defaults: &[&str]) -> Result<Filter> {
        Filter::new(&self.includes(defaults), &self.exclude_patterns)
    }
}

/// Globs split by what they match: file names, or paths relative to the watch path.
#[derive(Debug)]
pub(crate) struct Patterns {
    names: GlobSet,
    paths: GlobSet,
}

impl Patterns {
    pub(crate) fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob: Glob = GlobBuilder::new(p)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::InvalidConfig(format!("bad pattern {p:?}: {e}")))?;
            if p.contains('/') {
                paths.add(glob)
            } else {
                names.add(glob)
            };
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::InvalidConfig(e.to_string()));
        Ok(Self {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    pub(crate) fn matches(&self, name: &str, relative: &Path) -> bool {
        // An empty set is skipped outright: matching builds a candidate (allocations) per
        // call, which adds up over a 100,000-file walk.
        (!self.names.is_empty() && self.names.is_match(name))
            || (!self.paths.is_empty() && self.paths.is_match(relative))
    }
}

/// A source's include and exclude globs.
#[derive(Debug)]
pub(crate) struct Filter {
    include: Patterns,
    exclude: Patterns,
}

impl Filter {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(Self {
            include: Patterns::new(include)?,
            exclude: Patterns::new(exclude)?,
        })
    }

    /// Whether a document at `relative` (slash-separated, under the source's root) is
    /// included: its name or path matches an include pattern and no part of it an exclude.
    pub(crate) fn accepts(&self, relative: &str) -> bool {
        let relative = relative.trim_start_matches('/');
        let name = relative.rsplit('/').next().unwrap_or(relative);
        if !self.include.matches(name, Path::new(relative)) {
            return false;
        }
        // An excluded folder excludes everything below it, as in a folder walk.
        let mut end = 0;
        for part in relative.split('/') {
            end += part.len();
            if self.exclude.matches(part, Path::new(&relative[..end])) {
                return false;
            }
            end += 1;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_keys_match_like_a_folder_walk() {
        let f = Filter::new(
            &["*.md".into(), "reports/**/*.pdf".into()],
            &["drafts".into(), "*.tmp.md".into()],
        )
        .unwrap();
        assert!(f.accepts("notes/a.MD"));
        assert!(f.accepts("/notes/a.md"));
        assert!(f.accepts("reports/2026/q1.pdf"));
        assert!(!f.accepts("other/q1.pdf"));
        assert!(!f.accepts("notes/drafts/a.md"));
        assert!(!f.accepts("notes/x.tmp.md"));
    }
}
