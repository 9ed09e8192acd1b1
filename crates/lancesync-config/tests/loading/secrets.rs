//! Secrets never shown.

use super::*;

const SECRETS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIAVERYSECRETKEYID"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsupersecret"),
    ("AWS_SESSION_TOKEN", "FwoGZXIvYXdzEsessiontoken"),
];

#[test]
fn secrets_never_appear_in_debug_display_json_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    // From a file, a .env and the environment, with another problem so they go through the
    // problem path too.
    std::fs::write(
        dir.path().join("c.toml"),
        format!(
            "aws_session_token = \"{}\"\nmax_retries = \"x\"\n",
            SECRETS[2].1
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e.env"),
        format!("AWS_SECRET_ACCESS_KEY={}\n", SECRETS[1].1),
    )
    .unwrap();
    let mut o = opts(dir.path(), &[SECRETS[0]]);
    o.config_file = Some(dir.path().join("c.toml"));
    o.env_file = EnvFile::Path(dir.path().join("e.env"));

    let logs = capture_logs(|| Config::inspect(&o));
    let inspection = Config::inspect(&o);
    let c = &inspection.config;
    // The values are there for the code that needs them...
    assert_eq!(
        c.settings()
            .credentials
            .secret_access_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        SECRETS[1].1
    );
    // ...and nowhere else.
    let outputs = [
        format!("{c:?}"),
        format!("{c}"),
        format!("{:?}", c.settings()),
        format!("{inspection:?}"),
        inspection.explain().to_string(),
        serde_json::to_string(&inspection.explain()).unwrap(),
        problem_text(&o),
        format!("{:?}", Config::load(&o).unwrap_err()),
        logs,
    ];
    for out in &outputs {
        for (_, secret) in SECRETS {
            assert!(!out.contains(secret), "secret leaked in: {out}");
        }
    }
    let shown: BTreeMap<_, _> = c
        .entries()
        .iter()
        .map(|e| (e.name, e.value.clone()))
        .collect();
    for (name, _) in SECRETS {
        assert_eq!(shown[name].as_deref(), Some("****"), "{name}");
    }
}

#[test]
fn a_malformed_secret_is_not_echoed() {
    // A secret in a TOML file given as a list is reported without its content.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "aws_secret_access_key = [\"hunter2hunter2\"]\n",
    )
    .unwrap();
    let mut o = opts(dir.path(), &[]);
    o.config_file = Some(dir.path().join("c.toml"));
    let text = problem_text(&o);
    assert!(
        text.contains("aws_secret_access_key") && !text.contains("hunter2hunter2"),
        "{text}"
    );
}

fn capture_logs<T>(f: impl Fn() -> T) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // Another test's thread may meet the logging call for the first time, with no subscriber,
    // while this one is being set, and cache "never" for it after this thread asked every call
    // site again: then nothing is captured, and the call is run again (the call site is
    // registered by then, so asking again is enough).
    let mut text = String::new();
    for _ in 0..5 {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::callsite::rebuild_interest_cache();
            f()
        });
        let bytes = buf.0.lock().unwrap().clone();
        text = String::from_utf8(bytes).unwrap();
        if !text.is_empty() {
            break;
        }
    }
    assert!(
        text.contains("configuration problem"),
        "logging was captured: {text}"
    );
    text
}

#[test]
fn the_coordinators_password_is_masked_and_the_rest_shown() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(
        dir.path(),
        &[
            ("S3_STORAGE_ENABLED", "true"),
            ("S3_BUCKET", "primary"),
            ("USE_S3_AS_PRIMARY", "true"),
            (
                "COORDINATOR_URL",
                "postgres://sync:pgsupersecret@db.internal:5432/lancesync",
            ),
        ],
    );
    let inspection = Config::inspect(&o);
    let c = &inspection.config;
    assert!(inspection.problems.is_empty(), "{:?}", inspection.problems);
    assert_eq!(
        c.settings()
            .cluster
            .coordinator_url
            .as_ref()
            .unwrap()
            .expose_secret(),
        "postgres://sync:pgsupersecret@db.internal:5432/lancesync"
    );
    for out in [
        format!("{c:?}"),
        format!("{:?}", c.settings()),
        inspection.explain().to_string(),
        serde_json::to_string(&inspection.explain()).unwrap(),
    ] {
        assert!(!out.contains("pgsupersecret"), "password leaked in: {out}");
    }
    let shown = c
        .entries()
        .iter()
        .find(|e| e.name == "COORDINATOR_URL")
        .and_then(|e| e.value.clone())
        .unwrap();
    assert_eq!(shown, "postgres://sync:****@db.internal:5432/lancesync");

    // A malformed one is not echoed either.
    let o = opts(
        dir.path(),
        &[("COORDINATOR_URL", "mysql://sync:pgsupersecret@db/x")],
    );
    let text = problem_text(&o);
    assert!(
        text.contains("COORDINATOR_URL") && !text.contains("pgsupersecret"),
        "{text}"
    );
}
