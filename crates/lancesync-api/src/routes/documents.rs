//! A user's documents: list, show, delete, upload, and documents given in the request.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use lancesync_engine::DocumentFilter;
use lancesync_ingest::DocType;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ActsFor, ForUser, UserBody, UserQuery, UserScoped};
use super::{ApiResult, DocStatus, DocTypeName, ok};
use crate::Api;
use crate::error::{ApiError, ErrorBody};
use crate::schemas::*;

/// `{doc_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DocPath {
    /// The document's id: the 32 hexadecimal digits lancesync gave it.
    #[param(
        pattern = r"^[0-9a-f]{32}$",
        example = "0123456789abcdef0123456789abcdef"
    )]
    doc_id: String,
}

/// Listing filters and paging.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DocumentsQuery {
    /// User (admin).
    #[param(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$", example = "alice")]
    user_id: Option<String>,
    /// Only this source.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    source_id: Option<String>,
    /// Only this type.
    #[param(value_type = Option<DocTypeName>)]
    doc_type: Option<DocType>,
    /// completed or failed.
    #[param(value_type = Option<DocStatus>)]
    status: Option<String>,
    /// Items to skip (default 0).
    #[param(minimum = 0)]
    offset: Option<usize>,
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000, example = 20)]
    limit: Option<usize>,
}

impl ActsFor for DocumentsQuery {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(get, path = "/api/v1/documents", params(DocumentsQuery), responses(
    (status = 200, description = "A page of documents", body = DocumentsAnswer),
))]
pub(super) async fn list_documents(
    State(api): State<Api>,
    UserScoped { user, query: q }: UserScoped<DocumentsQuery>,
) -> ApiResult {
    let filter = DocumentFilter {
        source_id: q.source_id,
        doc_type: q.doc_type,
        status: q.status,
    };
    let page = api
        .orchestrator
        .engine()
        .documents(&user, &filter, q.offset.unwrap_or(0), q.limit.unwrap_or(50))
        .await?;
    ok(page)
}

#[utoipa::path(get, path = "/api/v1/documents/{doc_id}", params(DocPath, UserQuery), responses(
    (status = 200, description = "The document with its chunks", body = DocumentAnswer),
    (status = 404, description = "No such document", body = ErrorBody),
))]
pub(super) async fn get_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<DocPath>, PathRejection>,
) -> ApiResult {
    let Path(DocPath { doc_id }) = path?;
    match api.orchestrator.engine().document(&user, &doc_id).await? {
        Some(doc) => ok(doc),
        None => Err(ApiError::not_found(format!(
            "user {user} has no document {doc_id}"
        ))),
    }
}

#[utoipa::path(delete, path = "/api/v1/documents/{doc_id}", params(DocPath, UserQuery), responses(
    (status = 200, description = "Removed from the index (it returns if its source still has it)", body = DocumentRemoved),
    (status = 404, description = "No such document", body = ErrorBody),
))]
pub(super) async fn delete_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    path: Result<Path<DocPath>, PathRejection>,
) -> ApiResult {
    let Path(DocPath { doc_id }) = path?;
    if api.orchestrator.delete_document(&user, &doc_id).await? {
        ok(json!({ "deleted": doc_id }))
    } else {
        Err(ApiError::not_found(format!(
            "user {user} has no document {doc_id}"
        )))
    }
}

/// Answer for an indexed upload: 201 when it was indexed, 422 when it could not be processed
/// (unsupported type, corrupt file), with the document row either way.
pub(super) fn indexed(doc: lancesync_engine::DocumentInfo) -> ApiResult {
    let status = if doc.processing_status == "completed" {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        Json(json!({
            "doc_id": doc.doc_id,
            "chunks": doc.total_chunks,
            "processing_status": doc.processing_status,
            "error_message": doc.error_message,
            "document": doc,
        })),
    )
        .into_response())
}

/// The multipart form of an upload.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The document; its file name's extension decides the type (pdf, docx, html, md, txt).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[utoipa::path(post, path = "/api/v1/documents", params(UserQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "A `file` field (its file name decides the type: pdf, docx, html, md, txt)"),
    responses(
        (status = 201, description = "Indexed: doc_id and chunk count", body = IndexedAnswer),
        (status = 413, description = "Over API_MAX_BODY_MB", body = ErrorBody),
        (status = 415, description = "A type lancesync does not read (by the file name's extension); nothing stored", body = ErrorBody),
        (status = 422, description = "Stored but not processable: the row says why (error_message)", body = IndexedAnswer),
))]
pub(super) async fn upload_document(
    State(api): State<Api>,
    ForUser(user): ForUser,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult {
    let mut multipart = multipart.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let multipart_error =
        |e: axum::extract::multipart::MultipartError| ApiError::new(e.status(), e.body_text());
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_string).ok_or_else(|| {
            ApiError::bad_request(
                "the file field needs a file name (its extension decides the type)",
            )
        })?;
        let bytes = field.bytes().await.map_err(multipart_error)?;
        let doc = api.orchestrator.upload(&user, &filename, &bytes).await?;
        return indexed(doc);
    }
    Err(ApiError::bad_request(
        "send the document in a multipart field named file",
    ))
}

/// A document given in the request: text, or bytes in base64.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "filename": "tides.md", "text": "# Tides\n\nThe spring tide floods the marsh." }))]
pub(crate) struct ManualDocument {
    /// User (admin; a user token syncs into its own index).
    #[schema(pattern = r"^[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,127}$")]
    user_id: Option<String>,
    /// File name; its extension decides the type (notes.md, report.pdf).
    #[schema(
        pattern = r"\.([Pp][Dd][Ff]|[Dd][Oo][Cc][Xx]|[Hh][Tt][Mm][Ll]|[Hh][Tt][Mm]|[Xx][Hh][Tt][Mm][Ll]|[Mm][Dd]|[Mm][Aa][Rr][Kk][Dd][Oo][Ww][Nn]|[Tt][Xx][Tt]|[Tt][Ee][Xx][Tt])$"
    )]
    filename: String,
    /// The content as text (md, txt, html).
    text: Option<String>,
    /// The content as base64 bytes (pdf, docx, or any type).
    content_base64: Option<String>,
    /// Chunks made by the caller, in order, each with its `text` and optionally its
    /// `embedding` (missing ones are computed). With chunks, `text`/`content_base64` are not
    /// given: the document is written as chunked, under the `manual` source.
    #[schema(value_type = Option<Vec<Object>>)]
    chunks: Option<Vec<lancesync_engine::PrecomputedChunk>>,
    /// Title (with chunks; default: the file name).
    title: Option<String>,
    /// Where the document lives in the caller's system (with chunks; default: the file name).
    uri: Option<String>,
    /// Properties kept with the document (with chunks).
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

impl ActsFor for ManualDocument {
    fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
}

#[utoipa::path(post, path = "/api/v1/sync/manual", request_body = ManualDocument, responses(
    (status = 201, description = "Indexed: doc_id and chunk count", body = IndexedAnswer),
    (status = 400, description = "Invalid request", body = ErrorBody),
    (status = 415, description = "A type lancesync does not read (by the file name's extension); nothing stored", body = ErrorBody),
    (status = 422, description = "Stored but not processable: the row says why (error_message)", body = IndexedAnswer),
))]
pub(super) async fn manual_sync(
    State(api): State<Api>,
    UserBody { user, body: b, .. }: UserBody<ManualDocument>,
) -> ApiResult {
    use base64::Engine as _;
    if let Some(chunks) = b.chunks {
        if b.text.is_some() || b.content_base64.is_some() {
            return Err(ApiError::bad_request(
                "give either chunks or the content (text or content_base64), not both",
            ));
        }
        let doc_type = DocType::from_path(std::path::Path::new(&b.filename)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{:?}: the file name's extension must be one of pdf, docx, html, md, txt",
                b.filename
            ))
        })?;
        let doc = lancesync_engine::PrecomputedDocument {
            uri: b.uri.unwrap_or_else(|| b.filename.clone()),
            title: b.title.unwrap_or(b.filename),
            doc_type,
            metadata: b.metadata.unwrap_or(Value::Null),
            chunks,
        };
        let doc = api.orchestrator.ingest_precomputed(&user, doc).await?;
        return indexed(doc);
    }
    let bytes = match (b.text, b.content_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| ApiError::bad_request(format!("content_base64 is not base64: {e}")))?,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of text and content_base64",
            ));
        }
    };
    let doc = api.orchestrator.upload(&user, &b.filename, &bytes).await?;
    indexed(doc)
}
