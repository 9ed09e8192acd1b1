//! The dashboard of the real `sync-server` binary, used in a real browser (Debian's headless
//! Chromium over WebDriver): sign in, add a folder source, sync it and follow the job to its
//! report, search and see the words marked, read a failure's reason and retry it, upload a
//! file, pause and resume the pipeline, remove a source, a phone's width, sign out; a user
//! token that cannot see another user's sources; and the checks that keep other sites out.
//! Screenshots of every page are saved under the target folder's `tmp/dashboard-screenshots`.
//! Run: cargo test --workspace --test dashboard

use std::path::{Path, PathBuf};
use std::time::Duration;

use lancesync_testkit::browser::Browser;
use lancesync_testkit::cli::RunningServer;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-for-the-dashboard-test";
const ALICE: &str = "alice-token-for-the-dashboard-test";
const BOB: &str = "bob-token-for-the-dashboard-test";

fn start(work: &Path, tokens: bool) -> RunningServer {
    start_with(work, tokens, &[])
}

fn start_with(work: &Path, tokens: bool, extra: &[(&str, &str)]) -> RunningServer {
    let mut cmd = lancesync_testkit::cli::isolated(env!("CARGO_BIN_EXE_sync-server"), work);
    cmd.envs(extra.iter().copied());
    cmd.env("API_PORT", "0")
        .env("DEFAULT_POLL_INTERVAL", "3600")
        .env("CHUNK_CHARACTERS", "300")
        .env("CHUNK_OVERLAP", "50")
        .env("EMBEDDING_PROVIDER", "builtin")
        .env("RUST_LOG", "info");
    if tokens {
        cmd.env("API_ADMIN_TOKEN", ADMIN)
            .env("API_USER_TOKENS", format!("alice={ALICE},bob={BOB}"));
    }
    lancesync_testkit::cli::start_server(cmd)
}

fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots")
}

/// A folder of notes: two guides, a broken PDF, and enough other notes for a progress bar.
fn notes(root: &Path) -> PathBuf {
    let dir = root.join("notes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tomatoes.md"),
        "# Growing tomatoes\n\nWater tomato plants deeply twice a week. Watering in the morning keeps the leaves dry and the fruit from splitting.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bread.md"),
        "# Sourdough bread\n\nA sourdough loaf needs a natural leaven, flour, water and salt, and a long slow rise.\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.pdf"), b"%PDF-1.7 this is not a PDF at all").unwrap();
    for i in 0..40 {
        std::fs::write(
            dir.join(format!("note-{i:02}.md")),
            format!("# Note {i}\n\nA short note about compost pile number {i} and its worms.\n"),
        )
        .unwrap();
    }
    dir
}

/// The JSON API of the server at `base`, as `token` (none: a server without tokens).
async fn call(
    base: &str,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Add a folder source that runs only by hand, sync it, and return the job.
async fn add_and_sync(base: &str, token: Option<&str>, folder: &Path) -> Value {
    let (status, added) = call(
        base,
        token,
        reqwest::Method::POST,
        "/api/v1/sources",
        Some(json!({
            "source_id": "notes",
            "source_type": "local_filesystem",
            "enabled": false,
            "config": { "watch_paths": [folder] },
        })),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let (_, job) = call(
        base,
        token,
        reqwest::Method::POST,
        "/api/v1/sources/local_filesystem/notes/scan?wait=120",
        None,
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    job
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/ui/login")).await;
    browser.fill("#token", token).await;
    browser.click("#sign-in").await;
    browser
        .wait_for_text("h1", "Overview", Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_runs_lancesync_from_the_dashboard() {
    let work = tempfile::tempdir().unwrap();
    let folder = notes(work.path());
    let server = start(work.path(), true);
    let base = &server.base;
    let browser = Browser::start(&shots()).await;

    // Signed out, every page leads to the sign-in; a wrong token says so.
    browser.goto(&format!("{base}/ui/sources")).await;
    assert!(
        browser.url().await.ends_with("/ui/login"),
        "{}",
        browser.url().await
    );
    browser.fill("#token", "not-the-token").await;
    browser.click("#sign-in").await;
    let said = browser
        .wait_for_text("#login-message", "not valid", Duration::from_secs(10))
        .await;
    assert!(said.contains("token"), "{said}");
    browser.screenshot("01-sign-in-refused").await;

    // Signed in: the session is an HttpOnly, SameSite=Strict cookie, and holds no token.
    sign_in(&browser, base, ADMIN).await;
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "lancesync_session")
        .unwrap_or_else(|| panic!("a session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert!(!session["value"].as_str().unwrap().contains(ADMIN));
    assert!(browser.text("#health").await.contains("database"));
    assert!(!browser.text("#embedder").await.is_empty());
    browser.screenshot("02-overview").await;

    // Add a folder source: a missing setting is said beside its field.
    browser.goto(&format!("{base}/ui/sources")).await;
    browser.click("#add-source").await;
    browser.fill("#field-source_id", "notes").await;
    browser.click("#save-source").await;
    let error = browser
        .wait_for_text(".field-error", "watch_paths", Duration::from_secs(10))
        .await;
    assert!(
        browser
            .has("#field-cfg-watch_paths[aria-invalid=true]")
            .await,
        "the error is beside watch_paths: {error}"
    );
    browser.screenshot("03-source-form-error").await;
    browser
        .fill("#field-cfg-watch_paths", &folder.display().to_string())
        .await;
    // Not scheduled, so that the first run is the one started here.
    browser.click("#field-enabled").await;
    browser.click("#save-source").await;
    browser
        .wait_for_text("main", "Source notes added", Duration::from_secs(10))
        .await;
    assert!(
        browser
            .text("main")
            .await
            .contains("disabled: runs only by hand")
    );

    // Sync now: the job's page follows the run to its report.
    browser.click("#sync-now").await;
    browser
        .wait_for_url("/ui/jobs/job-", Duration::from_secs(10))
        .await;
    browser.screenshot("04-sync-progress").await;
    browser
        .wait_for_text("main", "Report", Duration::from_secs(120))
        .await;
    let report = browser.text("table.report").await;
    assert!(report.contains("42"), "42 notes created: {report}");
    assert!(browser.text("main").await.contains("broken.pdf"));
    browser.screenshot("05-sync-report").await;

    // The overview now counts them.
    browser.goto(&format!("{base}/ui")).await;
    assert_eq!(browser.text("#documents-count").await, "42");
    assert_eq!(browser.text("#failures-count").await, "1");
    browser.screenshot("05b-overview-after-sync").await;

    // Search, with the query's words marked and the search's time shown.
    browser.goto(&format!("{base}/ui/search")).await;
    browser.fill("#query", "watering tomatoes").await;
    browser.click("#search-button").await;
    browser
        .wait_for_text("#search-summary", "hit", Duration::from_secs(30))
        .await;
    let first = browser.text("#hits article:first-child h3").await;
    assert_eq!(first, "Growing tomatoes");
    let marked = browser
        .run(
            "return [...document.querySelectorAll('#hits article:first-child mark')].map(m => m.textContent);",
            json!([]),
        )
        .await;
    assert!(
        marked.as_array().unwrap().iter().any(|m| m == "Watering"),
        "{marked}"
    );
    assert!(browser.text("#search-latency").await.ends_with(" ms"));
    browser.screenshot("06-search").await;

    // A failure: its reason, on the list and on the document's page; retrying syncs again.
    browser.goto(&format!("{base}/ui/failures")).await;
    let failures = browser.text("#failures").await;
    assert!(failures.contains("broken.pdf"), "{failures}");
    assert!(
        failures.contains("the first run after"),
        "when it is tried again: {failures}"
    );
    browser.screenshot("07-failures").await;
    browser.click("#failures td a").await;
    let reason = browser
        .wait_for_text("#failure-reason", "pdf", Duration::from_secs(10))
        .await;
    assert!(reason.len() > 10, "a reason: {reason:?}");
    browser.goto(&format!("{base}/ui/failures")).await;
    browser.click("#failures form button").await;
    browser
        .wait_for_text("main", "syncing notes now", Duration::from_secs(15))
        .await;
    // The retry's run fails the PDF again; its record can be cleared for good measure.
    let started = std::time::Instant::now();
    while !browser.has("#clear-failures").await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the failure returns"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.goto(&format!("{base}/ui/failures")).await;
    }
    browser.click("#clear-failures").await;
    browser
        .wait_for_text(
            "main",
            "1 failure record(s) cleared",
            Duration::from_secs(15),
        )
        .await;

    // Upload a file: picked in the drop area, sent and indexed at once.
    let upload = work.path().join("pasta.md");
    std::fs::write(
        &upload,
        "# Fresh pasta\n\nKnead flour and eggs into a smooth dough, rest it, then roll it thin.\n",
    )
    .unwrap();
    browser.goto(&format!("{base}/ui/documents")).await;
    browser.pick_file("#upload-input", &upload).await;
    browser
        .wait_for_text("main", "pasta.md is indexed", Duration::from_secs(60))
        .await;
    browser.screenshot("08-documents").await;
    assert!(browser.text("#documents").await.contains("Fresh pasta"));
    // Or dropped on the page, as a person drags a file from their desktop.
    browser
        .run(
            "const drop = new DataTransfer();
             drop.items.add(new File(['# Dropped soup\\n\\nSimmer the onions slowly in butter.'], 'soup.md', { type: 'text/markdown' }));
             document.querySelector('[data-dropzone]').dispatchEvent(new DragEvent('drop', { dataTransfer: drop, bubbles: true, cancelable: true }));",
            json!([]),
        )
        .await;
    browser
        .wait_for_text("main", "soup.md is indexed", Duration::from_secs(60))
        .await;
    assert!(browser.text("#documents").await.contains("Dropped soup"));

    // Pause and resume the pipeline.
    browser.goto(&format!("{base}/ui")).await;
    browser.click("#pipeline-toggle").await;
    browser
        .wait_for_text("#pipeline-state", "paused", Duration::from_secs(10))
        .await;
    browser.click("#pipeline-toggle").await;
    browser
        .wait_for_text("#pipeline-state", "running", Duration::from_secs(10))
        .await;

    // Runs and storage pages answer.
    browser.goto(&format!("{base}/ui/runs")).await;
    assert!(browser.text("main").await.contains("notes"));
    let history = browser.text("section.run table.history").await;
    assert!(history.lines().count() >= 3, "a line per run: {history}");
    browser.screenshot("09-runs").await;
    browser.goto(&format!("{base}/ui/storage")).await;
    assert!(browser.text("#storage").await.contains("local"));
    browser.screenshot("10-storage").await;

    // Change the source: leave the notes out. The next run would delete 40 of 43
    // documents, so it withholds the deletions and the report offers to confirm them.
    browser
        .goto(&format!("{base}/ui/sources/local_filesystem/notes"))
        .await;
    browser.click("#edit-source").await;
    assert_eq!(
        browser
            .run(
                "return document.querySelector('#field-cfg-watch_paths').value;",
                json!([])
            )
            .await,
        folder.display().to_string(),
        "the form holds the stored settings"
    );
    browser.fill("#field-cfg-exclude_patterns", "note-*").await;
    browser.click("#save-source").await;
    browser
        .wait_for_text("main", "Source notes changed", Duration::from_secs(10))
        .await;
    browser.click("#sync-now").await;
    let withheld = browser
        .wait_for_text("main", "Deletions withheld", Duration::from_secs(120))
        .await;
    assert!(withheld.contains("no longer lists 40 of its"), "{withheld}");
    browser.screenshot("09b-deletions-withheld").await;
    browser
        .click("form[action*=confirm-deletions] button")
        .await;
    browser
        .wait_for_text(
            "main",
            "withheld deletions were applied",
            Duration::from_secs(60),
        )
        .await;
    // The sync that followed reports no deletions left to confirm.
    browser
        .wait_for_text("main", "Report", Duration::from_secs(120))
        .await;
    assert!(!browser.text("main").await.contains("Deletions withheld"));
    browser
        .goto(&format!("{base}/ui/sources/local_filesystem/notes"))
        .await;
    // The two guides, and the broken PDF's failure record.
    assert_eq!(browser.text("#source-documents").await, "3");
    // The schedule, on (its first run starts at once) and, once that run is over, off.
    browser.click("#toggle-schedule").await;
    browser
        .wait_for_text(
            "main",
            "runs on its schedule again",
            Duration::from_secs(10),
        )
        .await;
    let started = std::time::Instant::now();
    while browser.text("#last-run").await.contains("running") {
        assert!(started.elapsed() < Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser
            .goto(&format!("{base}/ui/sources/local_filesystem/notes"))
            .await;
    }
    browser.click("#toggle-schedule").await;
    browser
        .wait_for_text(
            "main",
            "runs only when synced by hand",
            Duration::from_secs(10),
        )
        .await;

    // The overview charts the runs by day.
    browser.goto(&format!("{base}/ui")).await;
    assert!(browser.has("#runs-by-day svg rect").await);
    assert!(browser.has("#documents-by-day svg rect").await);
    browser.scroll_to("#runs-by-day").await;
    browser.screenshot("09c-overview-charts").await;

    // A phone's width: no page is wider than the screen (wide tables scroll in their box).
    browser.resize(390, 844).await;
    for page in [
        "/ui",
        "/ui/sources",
        "/ui/sources/new",
        "/ui/sources/local_filesystem/notes",
        "/ui/runs",
        "/ui/failures",
        "/ui/documents",
        "/ui/search?q=watering+tomatoes",
        "/ui/storage",
    ] {
        browser.goto(&format!("{base}{page}")).await;
        let overflow = browser
            .run(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                json!([]),
            )
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page} overflows by {overflow} px"
        );
    }
    browser.goto(&format!("{base}/ui")).await;
    browser.screenshot("11-overview-phone").await;
    browser
        .goto(&format!("{base}/ui/search?q=watering+tomatoes"))
        .await;
    browser.screenshot("11b-search-phone").await;
    browser.resize(1280, 800).await;

    // Remove the source, behind a confirmation that says what goes.
    browser
        .goto(&format!("{base}/ui/sources/local_filesystem/notes/remove"))
        .await;
    let warning = browser.text("#remove-warning").await;
    assert!(warning.contains("documents"), "{warning}");
    browser.screenshot("12-remove-confirmation").await;
    browser.click("#confirm-remove").await;
    browser
        .wait_for_text("main", "Source notes removed", Duration::from_secs(30))
        .await;
    assert!(browser.has("#no-sources").await);

    // Sign out: the session is gone.
    browser.click("#sign-out").await;
    browser
        .wait_for_text("#login-message", "signed out", Duration::from_secs(10))
        .await;
    browser.goto(&format!("{base}/ui/documents")).await;
    browser
        .wait_for_url("/ui/login", Duration::from_secs(10))
        .await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_only_their_own_and_other_sites_cannot_act() {
    let work = tempfile::tempdir().unwrap();
    let folder = notes(work.path());
    let server = start(work.path(), true);
    let base = &server.base;
    let http = reqwest::Client::new();
    let (status, _) = call(
        base,
        Some(ADMIN),
        reqwest::Method::POST,
        "/api/v1/sources",
        Some(json!({
            "user_id": "bob",
            "source_id": "bobs-notes",
            "source_type": "local_filesystem",
            "config": { "watch_paths": [folder] },
        })),
    )
    .await;
    assert_eq!(status, 201);
    // Its first run starts at once; a source is changed between runs.
    let bobs = "/api/v1/sources/local_filesystem/bobs-notes";
    let started = std::time::Instant::now();
    loop {
        let path = format!("{bobs}?user_id=bob");
        let (_, source) = call(base, Some(ADMIN), reqwest::Method::GET, &path, None).await;
        // Run once, and waiting for its next run.
        if source["runs"].as_u64() >= Some(1)
            && source["running"] == false
            && source["next_run_at"].is_string()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{source}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The admin changes bob's source through the JSON API; alice may not.
    let change = json!({ "user_id": "bob", "enabled": false, "poll_interval": 120 });
    let (_, changed) = call(
        base,
        Some(ADMIN),
        reqwest::Method::PATCH,
        bobs,
        Some(change),
    )
    .await;
    assert_eq!(changed["enabled"], false, "{changed}");
    assert!(
        changed.get("next_run_at").is_none(),
        "no schedule: {changed}"
    );
    assert_eq!(changed["poll_interval_seconds"], 120, "{changed}");
    let change = json!({ "user_id": "bob", "enabled": true });
    let (refused, _) = call(
        base,
        Some(ALICE),
        reqwest::Method::PATCH,
        bobs,
        Some(change),
    )
    .await;
    assert_eq!(refused, 403);

    let browser = Browser::start(&shots()).await;
    sign_in(&browser, base, ALICE).await;
    browser.goto(&format!("{base}/ui/sources")).await;
    assert!(
        browser.has("#no-sources").await,
        "alice has no sources: {}",
        browser.text("main").await
    );
    assert!(!browser.text("main").await.contains("bobs-notes"));
    // Asking for bob's pages is refused, by name or by address.
    browser.goto(&format!("{base}/ui/sources?user=bob")).await;
    let refused = browser.text("main").await;
    assert!(refused.contains("cannot act for bob"), "{refused}");
    browser
        .goto(&format!("{base}/ui/sources/local_filesystem/bobs-notes"))
        .await;
    assert!(browser.text("main").await.contains("Not found"));
    browser.screenshot("13-other-user-refused").await;
    // Where the server keeps data is not shown to a user (as the admin-only API keeps it).
    browser.goto(&format!("{base}/ui/storage")).await;
    let storage = browser.text("#storage").await;
    assert!(
        !storage.contains(&work.path().display().to_string()),
        "{storage}"
    );
    assert!(!browser.text("main").await.contains("bob"));
    // A user may not add a folder source (it reads the server's disk).
    browser.goto(&format!("{base}/ui/sources/new")).await;
    browser.fill("#field-source_id", "mine").await;
    browser
        .fill("#field-cfg-watch_paths", &folder.display().to_string())
        .await;
    browser.click("#save-source").await;
    let error = browser
        .wait_for_text("#form-error", "admin", Duration::from_secs(10))
        .await;
    assert!(error.contains("only the admin"), "{error}");

    // Another site cannot act through alice's browser: a POST with her session cookie but
    // another Origin is refused, and so is one without the session's CSRF token.
    let cookie = browser
        .cookies()
        .await
        .into_iter()
        .find(|c| c["name"] == "lancesync_session")
        .and_then(|c| c["value"].as_str().map(String::from))
        .expect("a session");
    let cross_site = forged_retry(
        &http,
        base,
        &cookie,
        "https://evil.example",
        "csrf=x&doc_id=all",
    )
    .await;
    assert_eq!(cross_site.status(), 403);
    let same_site_no_token =
        forged_retry(&http, base, &cookie, base, "csrf=wrong&doc_id=all").await;
    assert_eq!(same_site_no_token.status(), 403);
    let page = same_site_no_token.text().await.unwrap();
    assert!(page.contains("reload the page"), "said to a person: {page}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_are_made_and_restored_from_the_dashboard() {
    use lancesync_testkit::s3::{ACCESS_KEY, SECRET_KEY};
    let s3 = lancesync_testkit::S3Server::start();
    s3.create_bucket("ui-backups").await;
    let endpoint = s3.endpoint();
    let work = tempfile::tempdir().unwrap();
    let folder = notes(work.path());
    let server = start_with(
        work.path(),
        true,
        &[
            ("FRONTEND_TYPE", "desktop"),
            ("S3_BACKUP_ENABLED", "true"),
            ("S3_BACKUP_BUCKET", "ui-backups"),
            ("S3_ENDPOINT", &endpoint),
            ("S3_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ],
    );
    let base = &server.base;
    add_and_sync(base, Some(ADMIN), &folder).await;

    let browser = Browser::start(&shots()).await;
    sign_in(&browser, base, ADMIN).await;
    browser.goto(&format!("{base}/ui/storage")).await;
    assert!(browser.text("#storage").await.contains("ui-backups"));
    browser.click("#backup-now").await;
    browser
        .wait_for_text("main", "Result", Duration::from_secs(120))
        .await;
    browser.goto(&format!("{base}/ui/storage")).await;
    let users = browser.text("#storage-users").await;
    assert!(users.contains("UTC"), "the last backup's time: {users}");
    browser.screenshot("14-storage-backed-up").await;
    // The documents table's version in that backup.
    let version: String = users
        .split("processed_documents v")
        .nth(1)
        .expect("the backup's versions")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();

    // A document is removed by hand (and the change copied to S3 at once, as every write
    // is); restoring the version backed up before brings it back.
    browser.goto(&format!("{base}/ui/documents")).await;
    let before = browser.text("#documents-total").await;
    browser.click("#documents tbody tr:first-child a").await;
    browser.click("#delete-document").await;
    browser
        .wait_for_text("main", "removed from the index", Duration::from_secs(30))
        .await;
    assert_ne!(browser.text("#documents-total").await, before);
    browser.goto(&format!("{base}/ui/storage")).await;
    browser.click("#restore").await;
    browser
        .wait_for_text("main", "Restoring replaces", Duration::from_secs(10))
        .await;
    browser.fill("input[name=version]", &version).await;
    browser.screenshot("15-restore-confirmation").await;
    browser.click("#confirm-restore").await;
    browser
        .wait_for_text("main", "Result", Duration::from_secs(120))
        .await;
    assert!(browser.text("#job-state").await.contains("succeeded"));
    browser.goto(&format!("{base}/ui/documents")).await;
    assert_eq!(browser.text("#documents-total").await, before);
    browser.quit().await;
}

/// A retry of every failure sent with alice's session cookie from `origin`.
async fn forged_retry(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    origin: &str,
    body: &'static str,
) -> reqwest::Response {
    http.post(format!("{base}/ui/failures/retry"))
        .header("cookie", format!("lancesync_session={cookie}"))
        .header("origin", origin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_there_is_no_sign_in_and_browsers_are_sent_to_the_dashboard() {
    let work = tempfile::tempdir().unwrap();
    let server = start(work.path(), false);
    let base = &server.base;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A browser asking for / goes to the dashboard; a program still gets JSON.
    let browser_root = http
        .get(format!("{base}/"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(browser_root.status(), 303);
    assert_eq!(browser_root.headers()["location"], "/ui");
    let program_root: Value = http
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(program_root["name"], "lancesync");
    // No sign-in: the overview at once, with a session cookie for the CSRF token, and the
    // security headers.
    let page = http.get(format!("{base}/ui")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["set-cookie"].to_str().unwrap().contains("HttpOnly"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("Overview") && !html.contains("sign-out"));
    // Assets are in the binary.
    for asset in ["dashboard.css", "dashboard.js"] {
        let answer = http
            .get(format!("{base}/ui/assets/{asset}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
        assert!(answer.text().await.unwrap().len() > 500);
    }
    // A job's progress, as the job page's script reads it.
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let folder = notes(work.path());
    let job = add_and_sync(base, None, &folder).await;
    let id = job["id"].as_str().expect("a job id");
    let progress: Value = http
        .get(format!("{base}/ui/jobs/{id}/progress"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["state"], "succeeded", "{progress}");
    assert_eq!(progress["done"], 43, "{progress}");
    assert_eq!(progress["total"], 43, "{progress}");
    // The overview charts that run.
    let overview = http
        .get(format!("{base}/ui"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(overview.contains("id=\"runs-by-day\""), "{overview}");

    // A state change without the cookie (a cross-site request could not send it) is refused.
    let forged = http
        .post(format!("{base}/ui/pipeline/stop"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "no session, no state change");
}
