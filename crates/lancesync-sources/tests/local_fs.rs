//! The local filesystem source on real folders.
//! Run: cargo test -p lancesync-sources --test local_fs

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use lancesync_sources::{DocumentSource, Error, LocalFsConfig, LocalFsSource};

fn write(root: &Path, rel: &str, body: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, body).unwrap();
}

fn source(config: LocalFsConfig) -> LocalFsSource {
    LocalFsSource::new("docs", config, &BTreeMap::new()).unwrap()
}

fn names(root: &Path, listing: &lancesync_sources::Listing) -> Vec<String> {
    listing
        .entries
        .iter()
        .map(|e| {
            e.uri
                .strip_prefix(&format!("{}/", root.display()))
                .unwrap()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn default_patterns_hidden_files_and_excludes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for rel in [
        "a.pdf",
        "b.DOCX",
        "c.txt",
        "d.md",
        "e.html",
        "sub/deep/f.md",
        "image.png",
        "no_ext",
        ".hidden.md",
        ".git/config.md",
        "node_modules/x.md",
        "sub/skip.tmp.md",
    ] {
        write(root, rel, "x");
    }
    let mut config = LocalFsConfig::new([root.to_str().unwrap()]);
    let listing = source(config.clone()).list().await.unwrap();
    assert_eq!(
        names(root, &listing),
        [
            "a.pdf",
            "b.DOCX",
            "c.txt",
            "d.md",
            "e.html",
            "node_modules/x.md",
            "sub/deep/f.md",
            "sub/skip.tmp.md"
        ]
    );
    assert!(listing.issues.is_empty() && listing.unlisted.is_empty());

    config.filter.exclude_patterns = vec!["node_modules".into(), "*.tmp.md".into()];
    config.include_hidden = true;
    let listing = source(config.clone()).list().await.unwrap();
    assert_eq!(
        names(root, &listing),
        [
            ".git/config.md",
            ".hidden.md",
            "a.pdf",
            "b.DOCX",
            "c.txt",
            "d.md",
            "e.html",
            "sub/deep/f.md"
        ]
    );

    config.filter.file_patterns = Some(vec!["sub/**/*.md".into()]);
    config.filter.exclude_patterns = vec![];
    let listing = source(config).list().await.unwrap();
    assert_eq!(names(root, &listing), ["sub/deep/f.md", "sub/skip.tmp.md"]);
    let entry = &listing.entries[0];
    assert_eq!((entry.size, entry.file_name()), (1, "f.md"));
    assert!(entry.modified_ms > 1_600_000_000_000);
}

#[tokio::test]
async fn missing_watch_path_is_unlisted_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "kept/a.md", "x");
    let missing = dir.path().join("usb-drive");
    let config = LocalFsConfig::new([
        dir.path().join("kept").to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    let listing = source(config).list().await.unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(
        listing.unlisted,
        vec![missing.to_string_lossy().into_owned()]
    );
    assert!(listing.issues[0].reason.contains("does not exist"));
    assert!(!listing.may_delete(&format!("{}/old.md", missing.display())));
    assert!(listing.may_delete(&format!("{}/kept/gone.md", dir.path().display())));
}

#[tokio::test]
async fn symlinks_skipped_by_default_and_loops_reported_when_followed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "real/a.md", "x");
    std::os::unix::fs::symlink(root.join("real/a.md"), root.join("link.md")).unwrap();
    std::os::unix::fs::symlink(root, root.join("real/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("nowhere.md"), root.join("dangling.md")).unwrap();

    let mut config = LocalFsConfig::new([root.to_str().unwrap()]);
    let listing = source(config.clone()).list().await.unwrap();
    assert_eq!(names(root, &listing), ["real/a.md"]);
    assert!(listing.issues.is_empty());

    config.follow_symlinks = true;
    let listing = source(config).list().await.unwrap();
    assert!(names(root, &listing).contains(&"link.md".to_string()));
    let reasons: Vec<_> = listing.issues.iter().map(|i| i.reason.as_str()).collect();
    assert!(
        reasons.iter().any(|r| r.contains("symlink loop")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("cannot read")),
        "dangling link reported: {reasons:?}"
    );
}

#[tokio::test]
async fn a_deep_wide_tree_is_listed_whole_in_order_with_sizes_and_times() {
    // Folders are read in parallel: every file must still be listed once, in uri order, with
    // its own size and modification time.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut expected = Vec::new();
    for a in 0..12 {
        for b in 0..6 {
            for f in 0..9 {
                let rel = format!("d{a:02}/e{b}/f{f}.md");
                write(root, &rel, &"x".repeat(a * 100 + b * 10 + f));
                expected.push(rel);
            }
        }
        write(root, &format!("d{a:02}/top.txt"), "top");
        expected.push(format!("d{a:02}/top.txt"));
    }
    expected.sort();
    let listing = source(LocalFsConfig::new([root.to_str().unwrap()]))
        .list()
        .await
        .unwrap();
    assert_eq!(names(root, &listing), expected);
    for entry in &listing.entries {
        let meta = fs::metadata(&entry.uri).unwrap();
        assert_eq!(entry.size, meta.len(), "{}", entry.uri);
        let modified = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert_eq!(entry.modified_ms, modified, "{}", entry.uri);
    }
    assert!(listing.issues.is_empty() && listing.unlisted.is_empty());
}

#[tokio::test]
async fn a_single_file_watch_path_and_a_followed_folder_link() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "docs/a.md", "x");
    write(root, "other/b.md", "yy");
    write(root, "other/c.png", "z");
    std::os::unix::fs::symlink(root.join("other"), root.join("docs/linked")).unwrap();

    let file = root.join("docs/a.md");
    let listing = source(LocalFsConfig::new([file.to_str().unwrap()]))
        .list()
        .await
        .unwrap();
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.entries[0].uri, file.to_str().unwrap());

    // A single file whose name the patterns exclude is not listed.
    let image = root.join("other/c.png");
    let listing = source(LocalFsConfig::new([image.to_str().unwrap()]))
        .list()
        .await
        .unwrap();
    assert!(listing.entries.is_empty());

    let docs = root.join("docs");
    let mut config = LocalFsConfig::new([docs.to_str().unwrap()]);
    config.follow_symlinks = true;
    let listing = source(config).list().await.unwrap();
    assert_eq!(names(&docs, &listing), ["a.md", "linked/b.md"]);
    assert_eq!(listing.entries[1].size, 2);
    assert!(listing.issues.is_empty(), "{:?}", listing.issues);
}

#[tokio::test]
async fn overlapping_watch_paths_list_each_file_once_and_tilde_expands() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "docs/sub/a.md", "x");
    let env: BTreeMap<String, String> = [(
        "HOME".to_string(),
        dir.path().to_string_lossy().into_owned(),
    )]
    .into();
    let config = LocalFsConfig::new(["~/docs", "~/docs/sub"]);
    let listing = LocalFsSource::new("docs", config, &env)
        .unwrap()
        .list()
        .await
        .unwrap();
    assert_eq!(listing.entries.len(), 1);
}

#[tokio::test]
async fn read_checks_roots_and_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.md", "hello");
    write(dir.path(), "big.md", &"x".repeat(100));
    let mut config = LocalFsConfig::new([dir.path().to_str().unwrap()]);
    config.filter.max_file_size = Some(50);
    let src = source(config);
    let listing = src.list().await.unwrap();
    assert_eq!(src.read(&listing.entries[0]).await.unwrap(), b"hello");
    assert!(matches!(
        src.read(&listing.entries[1]).await,
        Err(Error::TooLarge {
            size: 100,
            limit: 50,
            ..
        })
    ));
    let mut outside = listing.entries[0].clone();
    outside.uri = "/etc/passwd".into();
    assert!(
        src.read(&outside)
            .await
            .unwrap_err()
            .to_string()
            .contains("not under this source")
    );
    fs::remove_file(dir.path().join("a.md")).unwrap();
    assert!(matches!(
        src.read(&listing.entries[0]).await,
        Err(Error::Read { .. })
    ));
}

#[tokio::test]
async fn non_utf8_names_are_reported_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.md")),
        "x",
    )
    .unwrap();
    write(dir.path(), "ok.md", "x");
    let listing = source(LocalFsConfig::new([dir.path().to_str().unwrap()]))
        .list()
        .await
        .unwrap();
    assert_eq!(names(dir.path(), &listing), ["ok.md"]);
    assert!(listing.issues[0].reason.contains("not valid UTF-8"));
}

#[test]
fn bad_configurations_are_errors() {
    let env = BTreeMap::new();
    assert!(LocalFsSource::new("x", LocalFsConfig::new(Vec::<String>::new()), &env).is_err());
    assert!(
        LocalFsSource::new("x", LocalFsConfig::new(["relative/path"]), &env)
            .unwrap_err()
            .to_string()
            .contains("not absolute")
    );
    assert!(
        LocalFsSource::new("x", LocalFsConfig::new(["${NOPE}/x"]), &env)
            .unwrap_err()
            .to_string()
            .contains("${NOPE} is not set")
    );
    let mut c = LocalFsConfig::new(["/tmp"]);
    c.filter.file_patterns = Some(vec!["[".into()]);
    assert!(
        LocalFsSource::new("x", c, &env)
            .unwrap_err()
            .to_string()
            .contains("bad pattern")
    );
    // The seeds' field names parse (sources are stored as TOML); unknown fields are refused.
    let c: LocalFsConfig =
        toml::from_str("watch_paths = [\"~/Documents\"]\nfile_patterns = [\"*.pdf\"]").unwrap();
    assert_eq!(c.filter.includes(&[]), ["*.pdf"]);
    let err = toml::from_str::<LocalFsConfig>("watch_paths = []\nwatch_path = \"x\"").unwrap_err();
    assert!(
        err.to_string().contains("unknown field `watch_path`"),
        "{err}"
    );
}
