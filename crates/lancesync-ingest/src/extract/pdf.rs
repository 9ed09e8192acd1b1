//! PDF: text per page (page numbers kept), via pdf-extract; a file it cannot read is repaired
//! with poppler's `pdftotext` (Debian `poppler-utils`), which rebuilds a damaged
//! cross-reference table by scanning the file. The path that read the text is recorded in the
//! document's metadata (`extracted_by`), and a failure says which of these it is: encrypted,
//! image-only (no text layer), timed out, or damaged beyond repair. With OCR on, image-only
//! pages are rendered by poppler's `pdftoppm` and read by `tesseract`, page by page.
//!
//! Every step is bounded: a document has one time budget (`EXTRACT_TIMEOUT`) for parsing and
//! repair, OCR has it per page, and each step runs under an address-space limit
//! (`EXTRACT_MEMORY_MB`): the helpers always, pdf-extract when the program enabled
//! [`pdf_worker::enable_pdf_isolation`].

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::pdf_worker::{self, NoAnswer, Parsed};
use super::{DocType, ExtractOptions, Extracted, failed};
use crate::{Error, Result};

/// How long rendering and reading one page with OCR may take.
const OCR_PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Rendering resolution for OCR.
const OCR_DPI: &str = "200";

pub(super) fn extract(bytes: &[u8], options: &ExtractOptions) -> Result<Extracted> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(failed(DocType::Pdf, "not a PDF file (no %PDF- header)"));
    }
    // One budget for the whole document: the parser, then poppler's repair if needed.
    let deadline = Instant::now() + options.timeout;
    let timed_out = |what: &str| {
        failed(
            DocType::Pdf,
            format!(
                "timed out: {what} took over {} s (EXTRACT_TIMEOUT)",
                options.timeout.as_secs_f64()
            ),
        )
    };
    let parsed = match pdf_worker::parse(bytes, options.timeout, options.memory_bytes) {
        Some(Ok(parsed)) => parsed,
        Some(Err(NoAnswer::TimedOut)) => return Err(timed_out("parsing it")),
        Some(Err(NoAnswer::Crashed(why))) => Parsed::Damaged(why),
        Some(Err(NoAnswer::Unavailable(why))) => {
            tracing::warn!(reason = %why, "parsing a PDF in process");
            parse_in_process(bytes)
        }
        None => parse_in_process(bytes),
    };
    let pdftotext = |bytes: &[u8]| pdftotext(bytes, deadline, options.memory_bytes);
    match parsed {
        // No text from pdf-extract: poppler reads some fonts it cannot; if it finds none
        // either, the pages are images.
        Parsed::Pages(pages) if pages.iter().all(|p| p.trim().is_empty()) => {
            match pdftotext(bytes) {
                Ok(found) if found.iter().any(|p| !p.trim().is_empty()) => {
                    assemble(&found, "pdftotext")
                }
                _ if options.ocr => ocr(bytes, pages.len(), options.memory_bytes),
                _ => assemble(&pages, "pdf-extract"),
            }
        }
        Parsed::Pages(pages) => assemble(&pages, "pdf-extract"),
        // Only a password opens it; poppler could still read one that has only an owner
        // password (permissions), so it is asked before giving up.
        Parsed::Encrypted => match pdftotext(bytes) {
            Ok(pages) => assemble(&pages, "pdftotext"),
            Err(Repair::TimedOut) => Err(timed_out("reading it")),
            Err(_) => Err(Error::Encrypted),
        },
        Parsed::Damaged(reason) => match pdftotext(bytes) {
            Ok(pages) => assemble(&pages, "pdftotext (repaired)"),
            Err(Repair::Encrypted) => Err(Error::Encrypted),
            Err(Repair::TimedOut) => Err(timed_out(&format!("repairing it ({reason})"))),
            Err(Repair::Missing) => Err(failed(
                DocType::Pdf,
                format!(
                    "damaged PDF: {reason}; install poppler-utils (pdftotext) to repair such files"
                ),
            )),
            Err(Repair::Failed(why)) => Err(failed(
                DocType::Pdf,
                format!("damaged beyond repair: {reason}; pdftotext: {why}"),
            )),
        },
    }
}

/// Pages by pdf-extract, which panics on some malformed files: that is one document's
/// failure, never a crash of the run. In a worker process (see [`pdf_worker`]) memory, stack
/// and time are bounded too.
pub(super) fn parse_in_process(bytes: &[u8]) -> Parsed {
    match catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    })) {
        Ok(Ok(pages)) if !pages.is_empty() => Parsed::Pages(pages),
        Ok(Ok(_)) => Parsed::Damaged("no readable pages".into()),
        Ok(Err(e)) => {
            let reason = e.to_string();
            let lower = reason.to_ascii_lowercase();
            if lower.contains("decrypt") || lower.contains("encrypt") || lower.contains("password")
            {
                Parsed::Encrypted
            } else {
                Parsed::Damaged(reason)
            }
        }
        Err(_) => Parsed::Damaged("the parser could not read its structure".into()),
    }
}

fn assemble(pages: &[String], extracted_by: &str) -> Result<Extracted> {
    let mut out = Extracted::default();
    for page in pages {
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
                "image-only (no text layer) in {} page(s): a scanned PDF needs OCR first",
                pages.len()
            ),
        ));
    }
    out.metadata.insert("pages".into(), pages.len().to_string());
    out.metadata
        .insert("extracted_by".into(), extracted_by.to_string());
    Ok(out)
}

/// Why `pdftotext` did not read a file.
enum Repair {
    Missing,
    Encrypted,
    TimedOut,
    Failed(String),
}

/// A PDF's bytes in a temporary file, for the poppler tools (they need a seekable file).
fn temp_pdf(bytes: &[u8]) -> std::result::Result<tempfile::NamedTempFile, Repair> {
    let mut input = tempfile::Builder::new()
        .prefix("lancesync-pdf-")
        .suffix(".pdf")
        .tempfile()
        .map_err(|e| Repair::Failed(format!("cannot write a temporary file: {e}")))?;
    std::io::Write::write_all(&mut input, bytes)
        .map_err(|e| Repair::Failed(format!("cannot write a temporary file: {e}")))?;
    Ok(input)
}

/// A command for `program` (no shell) whose address space is limited to `memory_bytes`, through
/// util-linux's `prlimit` when it is installed.
pub(super) fn limited_command(program: &std::path::Path, memory_bytes: u64) -> Command {
    match on_path("prlimit") {
        Some(prlimit) => {
            let mut c = Command::new(prlimit);
            c.arg(format!("--as={memory_bytes}")).arg("--").arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Run a helper without a shell, with a time limit and a memory limit; its standard output
/// on success.
fn run(
    program: &std::path::Path,
    args: &[&std::ffi::OsStr],
    timeout: Duration,
    memory_bytes: u64,
) -> std::result::Result<Vec<u8>, Repair> {
    let mut command = limited_command(program, memory_bytes);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let name = program
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut child = command
        .spawn()
        .map_err(|e| Repair::Failed(format!("cannot run {name}: {e}")))?;
    // Read both pipes while waiting, so a large output cannot block the child.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Repair::TimedOut);
            }
            Err(e) => return Err(Repair::Failed(format!("waiting for {name}: {e}"))),
        }
    };
    let output = out.join().unwrap_or_default();
    let message = err.join().unwrap_or_default();
    if status.success() {
        return Ok(output);
    }
    let lower = message.to_ascii_lowercase();
    Err(if lower.contains("password") || lower.contains("encrypt") {
        Repair::Encrypted
    } else {
        let first = message.lines().next().unwrap_or("no message").trim();
        Repair::Failed(format!("exit {}: {first}", status.code().unwrap_or(-1)))
    })
}

/// The pages `pdftotext` reads from `bytes` by `deadline`.
fn pdftotext(
    bytes: &[u8],
    deadline: Instant,
    memory_bytes: u64,
) -> std::result::Result<Vec<String>, Repair> {
    let Some(program) = on_path("pdftotext") else {
        return Err(Repair::Missing);
    };
    let timeout = deadline.saturating_duration_since(Instant::now());
    if timeout.is_zero() {
        return Err(Repair::TimedOut);
    }
    let input = temp_pdf(bytes)?;
    let args: [&std::ffi::OsStr; 6] = [
        "-enc".as_ref(),
        "UTF-8".as_ref(),
        "-eol".as_ref(),
        "unix".as_ref(),
        input.path().as_os_str(),
        "-".as_ref(),
    ];
    let text = run(&program, &args, timeout, memory_bytes)?;
    let text = String::from_utf8_lossy(&text);
    // Pages end with a form feed.
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_string).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    if pages.is_empty() {
        return Err(Repair::Failed("no pages".into()));
    }
    Ok(pages)
}

/// Image-only pages read with OCR: each page rendered by `pdftoppm` and read by `tesseract`,
/// each step bounded in time; page numbers kept.
fn ocr(bytes: &[u8], page_count: usize, memory_bytes: u64) -> Result<Extracted> {
    let no_text = || {
        failed(
            DocType::Pdf,
            format!("image-only (no text layer) in {page_count} page(s), and OCR found no text"),
        )
    };
    let (Some(pdftoppm), Some(tesseract)) = (on_path("pdftoppm"), on_path("tesseract")) else {
        return Err(failed(
            DocType::Pdf,
            format!(
                "image-only (no text layer) in {page_count} page(s); OCR_ENABLED needs pdftoppm (poppler-utils) and tesseract (tesseract-ocr) installed"
            ),
        ));
    };
    let ocr_error = |page: usize, e: Repair| match e {
        Repair::TimedOut => failed(
            DocType::Pdf,
            format!(
                "timed out: OCR of page {page} took over {} s",
                OCR_PAGE_TIMEOUT.as_secs()
            ),
        ),
        Repair::Encrypted => Error::Encrypted,
        Repair::Missing => failed(DocType::Pdf, "OCR tools are not installed"),
        Repair::Failed(why) => failed(DocType::Pdf, format!("OCR of page {page} failed: {why}")),
    };
    let input = temp_pdf(bytes).map_err(|e| ocr_error(0, e))?;
    let dir = tempfile::tempdir()
        .map_err(|e| failed(DocType::Pdf, format!("cannot make a temporary folder: {e}")))?;
    let mut pages = Vec::with_capacity(page_count);
    for page in 1..=page_count {
        let number = page.to_string();
        let prefix = dir.path().join(format!("page-{page}"));
        let render: [&std::ffi::OsStr; 11] = [
            "-r".as_ref(),
            OCR_DPI.as_ref(),
            "-gray".as_ref(),
            "-png".as_ref(),
            "-singlefile".as_ref(),
            "-f".as_ref(),
            number.as_ref(),
            "-l".as_ref(),
            number.as_ref(),
            input.path().as_os_str(),
            prefix.as_os_str(),
        ];
        run(&pdftoppm, &render, OCR_PAGE_TIMEOUT, memory_bytes).map_err(|e| ocr_error(page, e))?;
        let image = prefix.with_extension("png");
        let read: [&std::ffi::OsStr; 2] = [image.as_os_str(), "stdout".as_ref()];
        let text = run(&tesseract, &read, OCR_PAGE_TIMEOUT, memory_bytes)
            .map_err(|e| ocr_error(page, e))?;
        pages.push(String::from_utf8_lossy(&text).into_owned());
        let _ = std::fs::remove_file(&image);
    }
    if pages.iter().all(|p| p.trim().is_empty()) {
        return Err(no_text());
    }
    assemble(&pages, "tesseract (OCR)")
}

/// `program` on `PATH`, or where Debian installs it when the process has no `PATH` (a
/// service started with an empty environment).
fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
