//! Plain text and Markdown: UTF-8 (with or without BOM), UTF-16 with BOM, lossy fallback.

use super::{DocType, Extracted, failed};
use crate::Result;

/// How much of the start of a file is checked for NUL bytes, the mark of binary content.
const BINARY_SNIFF: usize = 8192;

pub(super) fn extract_plain(bytes: &[u8]) -> Result<Extracted> {
    let (text, warnings) = decode(bytes, DocType::Txt)?;
    Ok(Extracted {
        text,
        warnings,
        ..Default::default()
    })
}

pub(super) fn extract_markdown(bytes: &[u8]) -> Result<Extracted> {
    let (text, warnings) = decode(bytes, DocType::Md)?;
    let title = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Ok(Extracted {
        text,
        title,
        warnings,
        ..Default::default()
    })
}

/// Decode text bytes, returning the text and any warnings.
pub(crate) fn decode(bytes: &[u8], doc_type: DocType) -> Result<(String, Vec<String>)> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes, doc_type);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes, doc_type);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if bytes[..bytes.len().min(BINARY_SNIFF)].contains(&0) {
        return Err(failed(
            doc_type,
            "binary content (NUL bytes) in a text file",
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok((s.to_string(), Vec::new())),
        Err(_) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let replaced = text.matches('\u{FFFD}').count();
            Ok((
                text,
                vec![format!(
                    "not valid UTF-8: {replaced} invalid byte sequence(s) replaced with U+FFFD"
                )],
            ))
        }
    }
}

fn utf16(
    bytes: &[u8],
    word: fn([u8; 2]) -> u16,
    doc_type: DocType,
) -> Result<(String, Vec<String>)> {
    if !bytes.len().is_multiple_of(2) {
        return Err(failed(doc_type, "UTF-16 text with an odd number of bytes"));
    }
    let units = bytes.chunks_exact(2).map(|c| word([c[0], c[1]]));
    let mut warnings = Vec::new();
    let mut bad = 0usize;
    let text: String = char::decode_utf16(units)
        .map(|r| {
            r.unwrap_or_else(|_| {
                bad += 1;
                '\u{FFFD}'
            })
        })
        .collect();
    if bad > 0 {
        warnings.push(format!(
            "invalid UTF-16: {bad} unit(s) replaced with U+FFFD"
        ));
    }
    Ok((text, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodings() {
        assert_eq!(
            decode(b"hello", DocType::Txt).unwrap(),
            ("hello".into(), vec![])
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBFhello", DocType::Txt).unwrap().0,
            "hello"
        );
        assert_eq!(decode(b"\xFF\xFEh\0i\0", DocType::Txt).unwrap().0, "hi");
        assert_eq!(decode(b"\xFE\xFF\0h\0i", DocType::Txt).unwrap().0, "hi");
        let (text, warnings) = decode(b"caf\xE9 ok", DocType::Txt).unwrap();
        assert_eq!(text, "caf\u{FFFD} ok");
        assert_eq!(warnings.len(), 1);
        assert!(
            decode(b"\x7FELF\x02\x01\x01\0\0\0", DocType::Txt)
                .unwrap_err()
                .to_string()
                .contains("binary content")
        );
        assert_eq!(decode(b"", DocType::Txt).unwrap().0, "");
    }

    #[test]
    fn markdown_title_is_the_first_heading() {
        let e = extract_markdown(b"intro\n\n# The Title\n\n## Sub\n").unwrap();
        assert_eq!(e.title.as_deref(), Some("The Title"));
        assert_eq!(extract_markdown(b"no heading").unwrap().title, None);
    }
}
