//! `~` and `${VAR}` expansion against an environment map (never the process environment).

use std::collections::BTreeMap;

/// Expand `${VAR}` and `$VAR` from `env`, and a leading `~` from `env["HOME"]` when `tilde`.
/// A variable that is not set is an error naming it.
pub(crate) fn expand(
    raw: &str,
    env: &BTreeMap<String, String>,
    tilde: bool,
) -> Result<String, String> {
    let lookup = |name: &str| -> Result<Option<String>, String> {
        match env.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(format!("${{{name}}} is not set")),
        }
    };
    let home = || env.get("HOME").cloned();
    let expanded = if tilde {
        if raw.starts_with('~') && home().is_none() {
            return Err("~ cannot expand: HOME is not set".into());
        }
        shellexpand::full_with_context(raw, home, lookup)
    } else {
        shellexpand::env_with_context(raw, lookup)
    };
    expanded.map(|c| c.into_owned()).map_err(|e| e.cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_table() {
        let e = env(&[
            ("HOME", "/home/ada"),
            ("DATA", "/srv/data"),
            ("USER_ID", "u1"),
        ]);
        let cases: &[(&str, bool, Result<&str, &str>)] = &[
            ("~/Documents", true, Ok("/home/ada/Documents")),
            ("~", true, Ok("/home/ada")),
            ("${DATA}/lancedb", true, Ok("/srv/data/lancedb")),
            ("$DATA/lancedb", true, Ok("/srv/data/lancedb")),
            ("~/x/${USER_ID}", true, Ok("/home/ada/x/u1")),
            ("relative/path", true, Ok("relative/path")),
            ("a~b", true, Ok("a~b")),
            ("s3://bucket/${USER_ID}", false, Ok("s3://bucket/u1")),
            ("~/not-tilde-here", false, Ok("~/not-tilde-here")),
            ("${MISSING}/x", true, Err("${MISSING} is not set")),
        ];
        for (raw, tilde, want) in cases {
            let got = expand(raw, &e, *tilde);
            assert_eq!(got.as_deref().map_err(|s| s.as_str()), *want, "{raw}");
        }
    }

    #[test]
    fn tilde_without_home_is_an_error() {
        let got = expand("~/docs", &BTreeMap::new(), true);
        assert_eq!(got.unwrap_err(), "~ cannot expand: HOME is not set");
    }
}
