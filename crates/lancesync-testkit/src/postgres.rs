//! A real PostgreSQL server for tests: Debian's `postgresql` package, a fresh cluster in a
//! temporary folder, listening on a free port of 127.0.0.1, stopped and deleted on drop.
//!
//! `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user the
//! package creates. `.ci/run` installs the package when it is missing.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running PostgreSQL server; `url()` connects as a superuser without a password.
#[derive(Debug)]
pub struct Postgres {
    child: Child,
    port: u16,
    dir: PathBuf,
}

/// The folder of `initdb` and `postgres`: `LANCESYNC_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or the PATH's.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("LANCESYNC_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Whether a PostgreSQL server can be started here.
pub fn postgres_available() -> bool {
    bin_dir().is_some() || which("initdb")
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// (uid, gid) of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Create a cluster and start it; panics with what is missing if it cannot.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`start`](Self::start), with TLS on: a certificate for `localhost` and `127.0.0.1`
    /// signed by a test authority ([`ca_file`](Self::ca_file)), made with `openssl`.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The test authority's certificate (PEM), when started with TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        Some(self.dir.join("ca.crt")).filter(|p| p.is_file())
    }

    fn start_with(tls: bool) -> Self {
        let program = |name: &str| match bin_dir() {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        };
        let dir = tempfile::Builder::new()
            .prefix("lancesync-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let data = dir.join("data");
        let run_as = if is_root() {
            let (uid, gid) = postgres_user()
                .expect("running as root needs the postgres user (apt-get install postgresql)");
            chown(&dir, Some(uid), Some(gid)).expect("chown the cluster folder");
            Some((uid, gid))
        } else {
            None
        };
        let command = |path: PathBuf| {
            let mut cmd = Command::new(path);
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            cmd
        };
        let output = command(program("initdb"))
            .args(["-U", "lancesync", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .arg("-D")
            .arg(&data)
            .output()
            .expect("initdb (apt-get install postgresql)");
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut tls_settings = Vec::new();
        if tls {
            make_certificates(&dir);
            if let Some((uid, gid)) = run_as {
                for file in ["server.crt", "server.key"] {
                    chown(dir.join(file), Some(uid), Some(gid)).expect("chown the certificate");
                }
            }
            for (name, file) in [
                ("ssl_cert_file", "server.crt"),
                ("ssl_key_file", "server.key"),
            ] {
                tls_settings.push("-c".to_string());
                tls_settings.push(format!("{name}={}", dir.join(file).display()));
            }
            tls_settings.extend(["-c".to_string(), "ssl=on".to_string()]);
        }
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        if let Some((uid, gid)) = run_as {
            chown(dir.join("server.log"), Some(uid), Some(gid)).expect("chown the log");
        }
        let child = command(program("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .args(&tls_settings)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let server = Self { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            if log.contains("ready to accept connections") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start within 60 s: {log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `postgres://lancesync@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://lancesync@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder of the cluster and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `sql` (statements separated by `;`) as the superuser.
    pub async fn execute(&self, sql: &str) {
        let (admin, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect as the superuser");
        tokio::spawn(connection);
        admin.batch_execute(sql).await.expect("run the statements");
    }

    /// End the session(s) of lancesync instance `instance` from the server's side, as
    /// PostgreSQL does when the instance's process dies; whether there was one.
    pub async fn end_sessions_of(&self, instance: &str) -> bool {
        let (admin, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect as the superuser");
        tokio::spawn(connection);
        admin
            .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&format!("lancesync:{instance}")])
            .await
            .expect("terminate")
            .iter()
            .any(|row| row.get::<_, bool>(0))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown (SIGINT) ends sessions cleanly; kill if it takes too long.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A test authority and a server certificate it signed for `localhost` and `127.0.0.1`, in
/// `dir` (`ca.crt`, `server.crt`, `server.key`).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=lancesync test authority",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("extensions file");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("key permissions");
}
