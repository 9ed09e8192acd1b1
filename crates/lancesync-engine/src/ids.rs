//! Identifiers: validation of user-given ids, deterministic document and chunk ids, and
//! escaping of values placed in LanceDB filters.

use crate::{Error, Result};

/// Check a user id: it names a folder (`{base}/users/{user_id}`) and a key prefix, and
/// appears in filters. The rule is storage's ([`lancesync_storage::is_valid_user_id`]).
pub fn validate_user_id(user_id: &str) -> Result<()> {
    if lancesync_storage::is_valid_user_id(user_id) {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what: "user id",
            value: user_id.chars().take(140).collect(),
            rule: "use 1 to 128 letters, digits, '_', '-', '.', '@', not starting with '.'",
        })
    }
}

/// Check a source id: letters, digits, `_`, `-`, `.`; 1 to 128 characters.
pub fn validate_source_id(source_id: &str) -> Result<()> {
    validate(
        "source id",
        "use 1 to 128 letters, digits, '_', '-', '.', not starting with '.'",
        source_id,
        |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
    )
}

/// Check a document id as given by a caller: 32 lowercase hex digits, as [`doc_id`] makes.
pub fn validate_doc_id(doc_id: &str) -> Result<()> {
    if doc_id.len() == 32
        && doc_id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what: "document id",
            value: doc_id.chars().take(140).collect(),
            rule: "use the 32 hexadecimal digits lancesync gave the document",
        })
    }
}

fn validate(
    what: &'static str,
    rule: &'static str,
    value: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<()> {
    let ok =
        (1..=128).contains(&value.len()) && value.chars().all(allowed) && !value.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId {
            what,
            value: value.chars().take(140).collect(),
            rule,
        })
    }
}

/// A SQL string literal for a LanceDB filter: quotes doubled, so no value can end the literal.
pub fn sql_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `column IN ('a', 'b')` with every value escaped.
pub fn sql_in(column: &str, values: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let list: Vec<String> = values.into_iter().map(|v| sql_string(v.as_ref())).collect();
    format!("{column} IN ({})", list.join(", "))
}

/// The document id of `uri` in a user's source: deterministic, so a redone write after a crash
/// replaces rather than duplicates.
pub fn doc_id(user_id: &str, source_id: &str, uri: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [user_id, source_id, uri] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    h.finalize().to_hex()[..32].to_string()
}

/// The id of chunk `index` of a document.
pub fn chunk_id(doc_id: &str, index: u32) -> String {
    format!("{doc_id}:{index:05}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["alice", "user_1", "a.b-c@example.com", "U"] {
            assert!(validate_user_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a b",
            "x'; DROP",
            "é",
            &"a".repeat(129),
        ] {
            assert!(validate_user_id(bad).is_err(), "{bad}");
        }
        assert!(validate_source_id("docs-1.0").is_ok());
        assert!(validate_source_id("a@b").is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(sql_string("it's"), "'it''s'");
        assert_eq!(sql_string("x' OR '1'='1"), "'x'' OR ''1''=''1'");
        assert_eq!(sql_in("doc_id", ["a", "b'c"]), "doc_id IN ('a', 'b''c')");
    }

    #[test]
    fn deterministic_ids() {
        let a = doc_id("u", "s", "/x/a.md");
        assert_eq!(a, doc_id("u", "s", "/x/a.md"));
        assert_ne!(a, doc_id("u", "s", "/x/b.md"));
        assert_ne!(a, doc_id("u2", "s", "/x/a.md"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(doc_id("u", "ab", "c"), doc_id("u", "a", "bc"));
        assert_eq!(chunk_id("d", 7), "d:00007");
    }
}
