//! Real `sync-server` processes of one cluster on 127.0.0.1: one S3 primary (the test's
//! moto server), one PostgreSQL coordinator, each instance with its own local replica and
//! state folder, its log kept with the time of each line (to tell what happened first).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::s3::{ACCESS_KEY, SECRET_KEY};

/// The admin token of every instance of a test cluster.
pub const CLUSTER_ADMIN: &str = "cluster-admin-token-for-the-tests";

/// What the instances of a test cluster share.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The S3 primary's endpoint (the bucket must exist).
    pub s3_endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// `COORDINATOR_TAKEOVER_SECS`.
    pub takeover_secs: u64,
    /// `DEFAULT_POLL_INTERVAL` (seconds).
    pub poll_secs: u64,
}

/// One `sync-server` process of a test cluster. Killed when dropped.
pub struct Instance {
    /// The name given (its host name: the coordinator names it `NAME:PID`).
    pub name: String,
    /// `http://ADDRESS:PORT`.
    pub base: String,
    child: Child,
    log: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Start `binary` (`sync-server`) as instance `name`, its replica and state under
    /// `dir/name`, coordinated by `coordinator_url`; returns once it listens.
    pub fn start(
        binary: &str,
        dir: &Path,
        name: &str,
        coordinator_url: &str,
        settings: &ClusterSettings,
    ) -> Self {
        let home: PathBuf = dir.join(name);
        std::fs::create_dir_all(&home).expect("instance folder");
        let mut command = Command::new(binary);
        command
            .current_dir(&home)
            .env_clear()
            .env("HOME", &home)
            .env("HOSTNAME", name)
            .env("API_PORT", "0")
            .env("API_HOST", "127.0.0.1")
            .env("API_ADMIN_TOKEN", CLUSTER_ADMIN)
            .env("BACKEND_LOCATION", "cloud")
            .env("FRONTEND_TYPE", "web")
            .env("S3_STORAGE_ENABLED", "true")
            .env("USE_S3_AS_PRIMARY", "true")
            .env("LOCAL_CACHE_ENABLED", "true")
            .env("S3_BUCKET", &settings.bucket)
            .env("S3_PREFIX", "lancedb-primary")
            .env("S3_ENDPOINT", &settings.s3_endpoint)
            .env("S3_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("LANCEDB_URI", home.join("lancedb"))
            .env("SYNC_STATE_DIR", home.join("sync_state"))
            .env("COORDINATOR_URL", coordinator_url)
            .env(
                "COORDINATOR_TAKEOVER_SECS",
                settings.takeover_secs.to_string(),
            )
            .env("DEFAULT_POLL_INTERVAL", settings.poll_secs.to_string())
            .env("SYNC_INTERVAL", settings.poll_secs.to_string())
            .env("EMBEDDING_PROVIDER", "builtin")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("sync-server starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            use std::io::{BufRead, BufReader};
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = crate::cli::listening_address(&line) {
                    let _ = tx.send(address);
                }
                lines.lock().expect("log").push((Instant::now(), line));
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| {
                let lines = log.lock().expect("log");
                let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
                panic!("instance {name} did not start:\n{}", text.join("\n"))
            });
        Self {
            name: name.to_string(),
            base,
            child,
            log,
        }
    }

    /// The process id (the coordinator names the instance `NAME:PID`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The instance's name in the coordinator.
    pub fn instance_id(&self) -> String {
        format!("{}:{}", self.name, self.pid())
    }

    /// Call the API as the admin: status and JSON body (a string when not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(CLUSTER_ADMIN)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(Value::String(text)),
                )
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// A metric's value from `/metrics` (the first series of that name).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (status, text) = self.call(reqwest::Method::GET, "/metrics", None).await;
        if status != 200 {
            return None;
        }
        text.as_str()?.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse().ok()
        })
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// When the first log line after `since` containing `needle` was written, if one was.
    pub fn logged_since(&self, since: Instant, needle: &str) -> Option<Instant> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .find(|(at, line)| *at >= since && line.contains(needle))
            .map(|(at, _)| *at)
    }

    /// The log so far, for a failure message.
    pub fn log_text(&self) -> String {
        let lines = self.log.lock().expect("log");
        lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Users whose writer row in the coordinator's database names `instance` (it holds them, or
/// died holding them).
pub async fn users_held_by(
    db: &tokio_postgres::Client,
    instance: &str,
) -> std::collections::BTreeSet<String> {
    db.query(
        "SELECT user_id FROM lancesync_writers WHERE holder LIKE $1 || '#%'",
        &[&instance],
    )
    .await
    .expect("read lancesync_writers")
    .iter()
    .map(|row| row.get(0))
    .collect()
}

/// Which of `instances` holds the most users now (`/metrics`), if any holds one.
pub async fn busiest(instances: &[&Instance]) -> Option<usize> {
    let mut best = (0.0, None);
    for (i, instance) in instances.iter().enumerate() {
        let held = instance
            .metric("lancesync_coordinator_users_held")
            .await
            .unwrap_or(0.0);
        if held > best.0 {
            best = (held, Some(i));
        }
    }
    best.1
}
