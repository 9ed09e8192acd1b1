//! PDF: text per page (page numbers kept), via pdf-extract.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{DocType, Extracted, failed};
use crate::{Error, Result};

pub(super) fn extract(bytes: &[u8]) -> Result<Extracted> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(failed(DocType::Pdf, "not a PDF file (no %PDF- header)"));
    }
    // pdf-extract panics on some malformed files; that must be one document's failure, not a
    // crash of the whole run.
    let pages = match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    })) {
        Ok(Ok(pages)) => pages,
        Ok(Err(e)) => {
            let reason = e.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("decrypt") || lower.contains("encrypt") || lower.contains("password")
            {
                return Err(Error::Encrypted);
            }
            return Err(failed(DocType::Pdf, format!("corrupt PDF: {reason}")));
        }
        Err(_) => {
            return Err(failed(
                DocType::Pdf,
                "corrupt PDF: the parser could not read its structure",
            ));
        }
    };
    if pages.is_empty() {
        return Err(failed(DocType::Pdf, "corrupt PDF: no readable pages"));
    }
    let mut out = Extracted::default();
    for page in &pages {
        if !out.text.is_empty() {
            out.text.push_str("\n\n");
        }
        out.page_starts.push(out.text.len());
        out.text.push_str(page.trim());
    }
    if out.text.trim().is_empty() {
        return Err(failed(
            DocType::Pdf,
            format!(
                "no text layer in {} page(s): a scanned PDF needs OCR first",
                pages.len()
            ),
        ));
    }
    out.metadata.insert("pages".into(), pages.len().to_string());
    Ok(out)
}
