//! The OpenAI-compatible embedder against a local server speaking the same wire format.
//! Run: cargo test -p lancesync-ingest --test openai_embedder

use std::time::{Duration, Instant};

use lancesync_ingest::{Embedder, OpenAiConfig, OpenAiEmbedder};
use lancesync_testkit::{EmbeddingServer, Fault};
use secrecy::SecretString;

const DIM: usize = 8;
const KEY: &str = "sk-test-0123456789abcdef";

fn config(server: &EmbeddingServer) -> OpenAiConfig {
    let mut c = OpenAiConfig::new(
        server.base_url.parse().unwrap(),
        "text-embedding-3-small",
        DIM,
    );
    c.api_key = Some(SecretString::from(KEY));
    c.batch_size = 4;
    c.min_backoff = Duration::from_millis(10);
    c.max_backoff = Duration::from_millis(200);
    c
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| "x".repeat(i + 1)).collect()
}

#[tokio::test]
async fn batches_and_keeps_order() {
    let server = EmbeddingServer::start(DIM, Some(KEY), vec![]).await;
    let embedder = OpenAiEmbedder::new(config(&server)).unwrap();
    let input = texts(10);
    let vectors = embedder.embed(&input).await.unwrap();
    assert_eq!(server.requests(), 3, "10 texts in batches of 4");
    for (text, v) in input.iter().zip(&vectors) {
        assert_eq!(v, &EmbeddingServer::vector_for(text, DIM));
    }
    let body = &server.bodies()[0];
    assert_eq!(body["model"], "text-embedding-3-small");
    assert!(
        body.get("dimensions").is_none(),
        "dimensions is only sent when asked"
    );
    assert_eq!(
        embedder.identity().to_string(),
        "openai-compatible/text-embedding-3-small (8 dimensions)"
    );
}

#[tokio::test]
async fn retries_429_and_5xx_with_backoff_honouring_retry_after() {
    let faults = vec![
        Fault::Status(429, Some(0)),
        Fault::Status(503, None),
        Fault::Status(500, None),
    ];
    let server = EmbeddingServer::start(DIM, Some(KEY), faults).await;
    let embedder = OpenAiEmbedder::new(config(&server)).unwrap();
    let vectors = embedder.embed(&texts(2)).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(server.requests(), 4, "three faults, then success");
}

#[tokio::test]
async fn gives_up_after_max_retries() {
    let server = EmbeddingServer::start(DIM, None, vec![Fault::Status(502, None); 10]).await;
    let mut c = config(&server);
    c.max_retries = 2;
    let started = Instant::now();
    let err = OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert_eq!(server.requests(), 3, "one try and two retries");
    assert!(err.to_string().contains("502"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_show_the_key() {
    let server = EmbeddingServer::start(DIM, Some(KEY), vec![]).await;
    let mut c = config(&server);
    c.api_key = Some(SecretString::from("sk-wrong-key-zzzz"));
    let embedder = OpenAiEmbedder::new(c).unwrap();
    let err = embedder.embed(&texts(1)).await.unwrap_err();
    assert_eq!(server.requests(), 1);
    let shown = format!("{err} {err:?} {embedder:?}");
    assert!(
        shown.contains("401") && shown.contains("Incorrect API key"),
        "{shown}"
    );
    assert!(!shown.contains("sk-wrong-key-zzzz"), "key leaked: {shown}");
}

#[tokio::test]
async fn wrong_dimension_is_a_clear_error() {
    let server = EmbeddingServer::start(DIM, None, vec![Fault::WrongDimension(3)]).await;
    let err = OpenAiEmbedder::new(config(&server))
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("returned 3-dimensional vectors, but the configured dimension is 8"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_server_is_retried_then_reported() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = OpenAiConfig::new(format!("http://{addr}/v1").parse().unwrap(), "m", DIM);
    c.max_retries = 1;
    c.min_backoff = Duration::from_millis(5);
    let err = OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("request to"), "{err}");
}

#[tokio::test]
async fn sends_dimensions_when_asked() {
    let server = EmbeddingServer::start(DIM, None, vec![]).await;
    let mut c = config(&server);
    c.send_dimensions = true;
    OpenAiEmbedder::new(c)
        .unwrap()
        .embed(&texts(1))
        .await
        .unwrap();
    assert_eq!(server.bodies()[0]["dimensions"], 8);
}

#[tokio::test]
async fn tokens_are_the_servers_count_and_openai_models_are_counted_by_their_tokenizer() {
    let server = EmbeddingServer::start(DIM, Some(KEY), vec![]).await;
    let embedder = OpenAiEmbedder::new(config(&server)).unwrap();
    assert!(!embedder.runs_locally());
    // The stand-in reports one token per input in `usage`, as a server's own count: the
    // embedder takes it over its own (these texts are several tokens each in cl100k_base).
    let (vectors, counted) = embedder.embed_counted(&texts(10)).await.unwrap();
    assert_eq!(vectors.len(), 10);
    assert_eq!((counted.tokens, counted.exact), (10, true));
    // Without embedding: OpenAI's model by cl100k_base, exactly.
    let phrase = vec!["hello world".to_string(), "tokenization".to_string()];
    let counted = embedder.count_tokens(&phrase).unwrap();
    assert_eq!((counted.tokens, counted.exact), (2 + 2, true));
    assert_eq!(server.requests(), 3, "counting sends nothing");
    // Another model behind the same API: estimated at four characters per token.
    let mut other = config(&server);
    other.model = "nomic-embed-text".into();
    let counted = OpenAiEmbedder::new(other)
        .unwrap()
        .count_tokens(&phrase)
        .unwrap();
    assert_eq!((counted.tokens, counted.exact), (3 + 3, false));
}
