//! Test support for lancesync: writers for real DOCX and PDF files, deterministic benchmark
//! corpora, and local stand-ins for remote services that speak their real wire format on
//! 127.0.0.1. Not published.
//!
//! ```
//! let pdf = lancesync_testkit::pdf(&["first page", "second page"]);
//! assert!(pdf.starts_with(b"%PDF-"));
//! let docx = lancesync_testkit::Docx::new().heading(1, "Title").paragraph("Body").build();
//! assert!(docx.starts_with(b"PK"));
//! ```

pub mod browser;
pub mod cli;
pub mod cluster;
pub mod conformance;
pub mod corpus;
mod docx;
mod dropbox;
mod embedder;
mod google_drive;
mod legacy;
mod legacy_tables;
mod notion;
mod openai;
mod pdf;
mod postgres;
mod proxy;
mod requests;
pub mod s3;

pub use docx::Docx;
pub use dropbox::DropboxServer;
pub use embedder::CountingEmbedder;
pub use google_drive::{DriveServer, TEST_SERVICE_ACCOUNT_EMAIL, test_service_account_key};
pub use legacy::{LegacyIngestServer, LegacyUpload};
pub use legacy_tables::{
    LegacyTable, legacy_chunk, legacy_document, md5_hex, python_lancedb_available,
    write_legacy_tables,
};
pub use notion::{NotionBlock, NotionServer};
pub use openai::{EmbeddingServer, Fault};
pub use pdf::{
    classic_pdf, classic_pdf_of, damaged_pdfs, encrypted_pdf, fan_out_form_pdf, flate_bomb_pdf,
    owner_password_pdf, pdf, pdf_stream, recursive_form_pdf,
};
pub use postgres::{Postgres, postgres_available};
pub use proxy::{HttpProxy, InjectedFault, ProxiedRequest};
pub use s3::{Relay, S3Server};

/// Serve `app` on a free port of 127.0.0.1 until the test's runtime ends; its address.
pub(crate) async fn serve(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}
