//! Running lancesync's binaries in tests: in a work folder, with nothing inherited from the
//! environment but what the test sets, and reading their answers.

use std::path::Path;
use std::process::{Command, Output};

/// `binary` (pass `env!("CARGO_BIN_EXE_sync-cli")`) run in `work` with a clean environment:
/// `HOME={work}`, `LANCEDB_URI={work}/db`, `SYNC_STATE_DIR={work}/state`, nothing else. Add
/// settings with `.env(..)`.
pub fn isolated(binary: &str, work: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .current_dir(work)
        .env_clear()
        .env("HOME", work)
        .env("LANCEDB_URI", work.join("db"))
        .env("SYNC_STATE_DIR", work.join("state"));
    command
}

/// Both streams, for a failure message.
pub fn streams(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Standard output of a run that must have succeeded (panics with both streams otherwise).
pub fn succeeded(out: &Output) -> String {
    assert!(out.status.success(), "{}", streams(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard output parsed as JSON (panics with both streams when it is not JSON).
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {}", streams(out)))
}

/// A `sync-server` started by [`start_server`], killed (and waited for) when dropped, so a
/// failing test leaves no server behind.
pub struct RunningServer {
    /// The process.
    pub child: std::process::Child,
    /// Its base URL (`http://ADDR`).
    pub base: String,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// [`spawn_server`], held by a guard that stops the server when dropped.
pub fn start_server(command: Command) -> RunningServer {
    let (child, base) = spawn_server(command);
    RunningServer { child, base }
}

/// The address a `sync-server` log line announces it listens on, if it is that line.
pub fn listening_address(line: &str) -> Option<String> {
    let rest = line.strip_prefix("sync-server listening on ")?;
    Some(
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Spawn a `sync-server` command (stdout discarded, stderr read) and wait up to 60 s for the
/// line it prints once it accepts requests (`sync-server listening on http://ADDR ...`).
/// Returns the running child and its base URL (`http://ADDR`); with `API_PORT=0` the port is
/// the one it picked.
pub fn spawn_server(mut command: Command) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sync-server starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(address) = listening_address(&line) {
                let _ = tx.send(address);
            }
        }
    });
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("sync-server announces its address");
    (child, base)
}
