//! The local embedding model against its reference implementation: all-MiniLM-L6-v2 (the
//! model folder scripts/env.sh installs from PyPI) must give the vectors sentence-transformers
//! gives, committed in tests/fixtures/minilm-reference.json, and must rank by meaning.
//! Run: cargo test --workspace --test local_model

use std::path::PathBuf;

use lancesync_ingest::{Embedder, LocalEmbedder};
use serde_json::Value;

/// The installed model: `EMBEDDING_MODEL_PATH`, else where scripts/env.sh puts it.
fn model_folder() -> PathBuf {
    let folder = std::env::var_os("EMBEDDING_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".local/share/lancesync/models/all-MiniLM-L6-v2")
        });
    assert!(
        LocalEmbedder::is_model_folder(&folder),
        "no model in {}: run `source scripts/env.sh && lancesync_model_setup`",
        folder.display()
    );
    folder
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[tokio::test(flavor = "multi_thread")]
async fn vectors_match_sentence_transformers() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/minilm-reference.json"))
        .expect("the fixture is JSON");
    let sentences: Vec<String> = fixture["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let reference: Vec<Vec<f32>> = fixture["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();

    let model = LocalEmbedder::load(&model_folder()).expect("the model loads");
    let identity = model.identity();
    assert_eq!(identity.name, "local");
    assert!(
        identity.model.starts_with("all-MiniLM-L6-v2@"),
        "{identity}"
    );
    assert_eq!(identity.dimension, 384);

    let vectors = model.embed(&sentences).await.unwrap();
    assert_eq!(vectors.len(), sentences.len());
    for ((sentence, got), want) in sentences.iter().zip(&vectors).zip(&reference) {
        assert_eq!(got.len(), 384);
        let similarity = cosine(got, want);
        assert!(
            similarity >= 0.999,
            "{similarity} for {:?}",
            &sentence[..sentence.len().min(40)]
        );
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    // Batching pads texts to the longest: one text alone gives the same vector.
    let alone = model.embed(&sentences[..1]).await.unwrap();
    assert!(cosine(&alone[0], &vectors[0]) > 0.9999);
    // Tokens the model read, [CLS] and [SEP] included, padding not: counted alike by
    // embedding and by the tokenizer alone.
    let (_, counted) = model.embed_counted(&sentences).await.unwrap();
    assert!(counted.exact && counted.tokens > 2 * sentences.len() as u64);
    assert_eq!(model.count_tokens(&sentences).unwrap(), counted);
    let (_, one) = model.embed_counted(&sentences[..1]).await.unwrap();
    assert!(one.tokens < counted.tokens);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paraphrase_is_nearer_than_a_text_sharing_its_words() {
    let model = LocalEmbedder::load(&model_folder()).unwrap();
    let texts = [
        "How often should I water my tomato plants?",
        "Irrigation schedule for vegetable gardens in summer",
        "My plants need watering; how often should I?",
    ]
    .map(String::from);
    let v = model.embed(&texts).await.unwrap();
    // The second shares no word with the query but means nearly the same; the third is a
    // paraphrase too. Both are far nearer than chance.
    assert!(cosine(&v[0], &v[1]) > 0.4, "{}", cosine(&v[0], &v[1]));
    let unrelated = model
        .embed(&["The quarterly tax filing deadline moved to Friday".to_string()])
        .await
        .unwrap();
    assert!(
        cosine(&v[0], &v[1]) > cosine(&v[0], &unrelated[0]) + 0.3,
        "meaning beats chance"
    );
}

#[test]
fn a_folder_without_a_model_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("config.json is missing"), "{err}");
    assert!(err.contains("lancesync_model_setup"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_model_distilled_from_it_ranks_by_meaning_and_is_reused() {
    use lancesync_ingest::{DistillOptions, StaticEmbedder, distill_static_model};

    let teacher = LocalEmbedder::load(&model_folder()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("static");
    // Fitted to a few hundred of WordNet's glosses (the default is thousands, minutes of the
    // teacher's time): the same code path, in seconds.
    let defaults = DistillOptions::for_teacher(&model_folder());
    assert!(
        defaults.wordnet.is_some(),
        "no WordNet database beside the model: run `source scripts/env.sh && lancesync_model_setup`"
    );
    let options = DistillOptions {
        sentences: 300,
        ..defaults
    };
    distill_static_model(&teacher, &folder, &options).unwrap();
    assert!(StaticEmbedder::is_model_folder(&folder));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() == 1,
        "no staging folder is left behind"
    );
    let model = StaticEmbedder::load(&folder).unwrap();
    let identity = model.identity();
    assert_eq!(
        (identity.name.as_str(), identity.dimension),
        ("static", 384)
    );
    assert!(
        identity.model.starts_with(&teacher.identity().model),
        "{identity}: named after the model it came from"
    );

    let texts = [
        "How often should I water my tomato plants?",
        "Irrigation schedule for vegetable gardens in summer",
        "The quarterly tax filing deadline moved to Friday",
        "",
    ]
    .map(String::from);
    let v = model.embed(&texts).await.unwrap();
    // Tokens as the model's tokenizer counts them, without [CLS]/[SEP]: "how often should i
    // water my tomato plants ?" is 9, the empty text none.
    assert_eq!(model.count_tokens(&texts[..1]).unwrap(), 9);
    assert_eq!(model.count_tokens(&texts[3..]).unwrap(), 0);
    // What a run reports: the same count, exact, from the embedding itself.
    let (again, counted) = Embedder::embed_counted(&model, &texts).await.unwrap();
    assert_eq!(again, v);
    let total = model.count_tokens(&texts).unwrap() as u64;
    assert_eq!(counted, lancesync_ingest::TokenCount::exact(total));
    assert_eq!(Embedder::count_tokens(&model, &texts).unwrap(), counted);
    let norm: f32 = v[0].iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    assert!(
        cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.1,
        "the garden question is nearer the irrigation text ({}) than the tax one ({})",
        cosine(&v[0], &v[1]),
        cosine(&v[0], &v[2])
    );
    assert!(
        v[3].iter().all(|x| *x == 0.0),
        "an empty text is the zero vector"
    );
    // The same texts give the same vectors, one at a time or together.
    let one = model.embed(&texts[..1]).await.unwrap();
    assert_eq!(one[0], v[0]);
    let config: Value =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    assert!(
        config["distillation"]
            .as_str()
            .is_some_and(|r| r.contains("sif") && r.contains("fitted to up to 300 WordNet glosses")),
        "the recipe is recorded: {config}"
    );

    // Model2Vec's own Python package reads the folder and gives the same vectors.
    let python = model2vec_vectors(&folder, &texts[..3]);
    for ((text, ours), theirs) in texts.iter().zip(&v).zip(&python) {
        assert!(
            cosine(ours, theirs) > 0.9999,
            "{text:?}: {}",
            cosine(ours, theirs)
        );
    }

    // A folder that holds one already is loaded, not distilled again.
    let teacher_copy = dir.path().join("teacher");
    std::fs::create_dir_all(&teacher_copy).unwrap();
    std::fs::rename(&folder, StaticEmbedder::folder_for(&teacher_copy)).unwrap();
    let started = std::time::Instant::now();
    let reused = StaticEmbedder::load_or_distill(&teacher_copy).unwrap();
    assert_eq!(reused.identity(), identity, "the same model");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// The vectors Python's `model2vec` gives `texts` with the model in `folder` (scripts/env.sh
/// installs the package for the tests).
fn model2vec_vectors(folder: &std::path::Path, texts: &[String]) -> Vec<Vec<f32>> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom model2vec import StaticModel\nm = StaticModel.from_pretrained(sys.argv[1])\nprint(json.dumps(m.encode(json.loads(sys.argv[2])).tolist()))",
        ])
        .arg(folder)
        .arg(serde_json::to_string(texts).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "model2vec could not read the folder (install it with `python3 -m pip install model2vec`; scripts/env.sh does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("vectors as JSON")
}

/// A static model folder with the installed model's tokenizer and a small table of vectors:
/// enough to compare the static model's two tokenizations.
fn static_model_with_the_teacher_tokenizer() -> &'static lancesync_ingest::StaticEmbedder {
    static MODEL: std::sync::OnceLock<(tempfile::TempDir, lancesync_ingest::StaticEmbedder)> =
        std::sync::OnceLock::new();
    let (_, model) = MODEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let tokenizer = std::fs::read_to_string(model_folder().join("tokenizer.json")).unwrap();
        let vocabulary = serde_json::from_str::<Value>(&tokenizer).unwrap()["model"]["vocab"]
            .as_object()
            .unwrap()
            .len();
        std::fs::write(dir.path().join("tokenizer.json"), tokenizer).unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"normalize": true}"#).unwrap();
        let table: Vec<f32> = (0..vocabulary * 4).map(|i| (i % 13) as f32 - 6.0).collect();
        let embeddings =
            candle_core::Tensor::from_vec(table, (vocabulary, 4), &candle_core::Device::Cpu)
                .unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([("embeddings".to_string(), embeddings)]),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let model = lancesync_ingest::StaticEmbedder::load(dir.path()).unwrap();
        (dir, model)
    });
    model
}

/// The static model's specialised WordPiece against `tokenizers` with the same
/// tokenizer.json, token for token.
fn assert_same_tokens(texts: &[String]) {
    let model = static_model_with_the_teacher_tokenizer();
    assert!(model.has_specialised_tokenizer());
    let fast = model.token_ids(texts).unwrap();
    let general = model.general_ids(texts).unwrap();
    for ((text, fast), general) in texts.iter().zip(&fast).zip(&general) {
        assert_eq!(fast, general, "tokens of {text:?}");
    }
}

#[test]
fn the_specialised_tokenizer_gives_the_tokens_tokenizers_gives() {
    let long = "a".repeat(100);
    let too_long = "b".repeat(101);
    let texts = [
        "How often should I water my tomato plants?",
        "Café naïve résumé — déjà vu… “quoted” 'single' don't U.S.A. e-mail C++ x²+y³≤z",
        "İstanbul STRASSE Straße ΩΜΈΓΑ Ωμέγα Привет ﬁnance ǅemal",
        "中文字符 and 日本語のテキスト 한국어 텍스트 \u{F900}\u{2F800} 𠀀",
        "हिन्दी ไทย العربية עברית e\u{0301} a\u{0308}\u{0323} \u{1E9E}",
        "tabs\tnew\nlines\r\nvertical\u{000B}feed\u{000C}nbsp\u{00A0}ideographic\u{3000}space",
        "control\u{0007}bell zero\u{0000}byte replacement\u{FFFD}char soft\u{00AD}hyphen zw\u{200B}sp",
        "emoji 🎉🚀 flags 🇩🇪 keycap 1\u{FE0F}\u{20E3} $100 €5 ¥7 #hash @at 50% (a) [b] {c} <d>",
        "[CLS] typed into a document [SEP] and [UNK] [MASK] [PAD] [unk] [cls]",
        "",
        "   ",
        "unaffable unbelievably antidisestablishmentarianism pneumonoultramicroscopic",
        long.as_str(),
        too_long.as_str(),
        "ＦＵＬＬＷＩＤＴＨ ｋａｔａｋａｎａ ｶﾀｶﾅ ①②③ Ⅻ ㎏",
    ]
    .map(String::from);
    assert_same_tokens(&texts);
    // Chunks of the mixed benchmark corpus's text documents (Markdown, HTML, plain text).
    let chunks: Vec<String> = (0..60)
        .filter_map(|i| String::from_utf8(lancesync_testkit::corpus::mixed_document(i, 0)).ok())
        .flat_map(|text| {
            let chars: Vec<char> = text.chars().collect();
            chars
                .chunks(1000)
                .map(String::from_iter)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(chunks.len() > 50, "{} chunks", chunks.len());
    assert_same_tokens(&chunks);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn the_specialised_tokenizer_agrees_on_any_text(
        text in "(?s)([a-zA-Z0-9 .,;:!?'\"()\\-\t\n]|[à-ÿ]|[\u{0300}-\u{036F}]|[\u{0370}-\u{03FF}]|[\u{0400}-\u{04FF}]|[\u{3040}-\u{30FF}]|[\u{4E00}-\u{4E2F}]|[\u{AC00}-\u{AC2F}]|[\u{F900}-\u{F90F}]|[\u{2000}-\u{206F}]|[\u{0000}-\u{001F}]|[\u{1F600}-\u{1F60F}]|.){0,120}"
    ) {
        assert_same_tokens(&[text]);
    }
}
