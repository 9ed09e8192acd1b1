//! PDF parsing in worker processes, so that a hostile or broken file cannot take the run
//! with it. pdf-extract (and lopdf below it) decompresses whole streams into memory and
//! parses nested objects recursively: a decompression bomb can take gigabytes, deep nesting
//! overflows the stack (an abort no `catch_unwind` can stop), and a pathological file can
//! keep a core busy for minutes. In a worker, each of these is one document's failure: the
//! worker runs under an address-space limit (`prlimit`), the caller waits for its answer only
//! until the document's deadline, and a worker that crashed or ran late is killed and
//! replaced.
//!
//! Workers are copies of the running executable, started with `LANCESYNC_PDF_WORKER` set; a program
//! opts in by calling [`enable_pdf_isolation`] first thing in `main` (`sync-cli` and
//! `sync-server` do). They stay alive between documents and are reused, one per concurrent
//! caller, so a sync of many PDFs starts few processes.

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pdf::limited_command;

/// Set in a worker's environment; its presence makes [`enable_pdf_isolation`] serve.
pub(super) const WORKER_VAR: &str = "LANCESYNC_PDF_WORKER";
/// Starts every answer, so that anything else on a worker's standard output is noticed.
const MAGIC: &[u8; 8] = b"LSPDFv1\n";
/// Documents one worker parses before it is replaced: glibc keeps what a large file made the
/// heap grow to, and a fresh process gives it back.
const DOCS_PER_WORKER: u32 = 256;
/// Idle workers kept for reuse at most.
const MAX_IDLE_WORKERS: usize = 16;
/// How much of a worker's standard error is kept to explain a crash.
const STDERR_TAIL: usize = 4096;

/// What parsing a PDF in process found: the answer a worker sends back.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Parsed {
    /// Text of each page.
    Pages(Vec<String>),
    /// Only a password opens it.
    Encrypted,
    /// The parser could not read it, and why.
    Damaged(String),
}

/// Why a worker gave no answer.
pub(super) enum NoAnswer {
    /// It was still parsing at the deadline (and was killed).
    TimedOut,
    /// It died: out of memory, stack overflow, a signal. The text says which.
    Crashed(String),
    /// No worker could be started; the caller parses in process.
    Unavailable(String),
}

struct Pool {
    exe: PathBuf,
    idle: Mutex<Vec<Worker>>,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Parse PDFs in worker processes from now on; when this process *is* such a worker, serve
/// and exit instead. Call it first thing in `main`, before threads start: a worker is a copy
/// of this executable started with `LANCESYNC_PDF_WORKER` set, so `main` must reach this call before
/// it parses arguments or does anything else.
///
/// Without it, PDFs are parsed in process, where only panics are contained: memory and time
/// are then bounded only for the poppler helpers.
pub fn enable_pdf_isolation() {
    if std::env::var_os(WORKER_VAR).is_some() {
        std::process::exit(serve());
    }
    match std::env::current_exe() {
        Ok(exe) => {
            let _ = POOL.set(Pool {
                exe,
                idle: Mutex::new(Vec::new()),
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot find this executable: PDFs are parsed in process")
        }
    }
}

/// Whether [`enable_pdf_isolation`] was called in this process.
pub fn pdf_isolation_enabled() -> bool {
    POOL.get().is_some()
}

/// Parse `bytes` in a worker limited to `memory_bytes` of address space, waiting at most
/// `timeout`; `None` when isolation is off.
pub(super) fn parse(
    bytes: &[u8],
    timeout: Duration,
    memory_bytes: u64,
) -> Option<Result<Parsed, NoAnswer>> {
    let pool = POOL.get()?;
    let reused = {
        let mut idle = pool.idle.lock().expect("worker pool lock");
        let at = idle.iter().rposition(|w| w.memory_bytes == memory_bytes);
        at.map(|i| idle.swap_remove(i))
    };
    let mut worker = match reused {
        Some(worker) => worker,
        None => match Worker::start(&pool.exe, memory_bytes) {
            Ok(worker) => worker,
            Err(e) => return Some(Err(NoAnswer::Unavailable(e))),
        },
    };
    let answer = worker.parse(bytes, timeout);
    // A worker that answered is kept; one that crashed or was late is dropped (killed).
    if answer.is_ok() && worker.served < DOCS_PER_WORKER {
        let mut idle = pool.idle.lock().expect("worker pool lock");
        idle.push(worker);
        // More idle workers than callers ever ran at once are only memory.
        let excess = idle.len().saturating_sub(MAX_IDLE_WORKERS);
        idle.drain(..excess);
    }
    Some(answer)
}

/// One running worker.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<std::io::Result<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    memory_bytes: u64,
    served: u32,
}

impl Worker {
    fn start(exe: &std::path::Path, memory_bytes: u64) -> Result<Worker, String> {
        let mut command = limited_command(exe, memory_bytes);
        // A worker needs nothing from the environment, and a file that subverted the parser
        // should find no credentials there.
        command
            .env_clear()
            .env(WORKER_VAR, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start a PDF worker ({}): {e}", exe.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        // Answers are read on a thread of their own, so the caller can stop waiting at the
        // deadline; the thread ends when the worker does.
        let (send, answers) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let answer = read_frame(&mut stdout);
                let failed = answer.is_err();
                if send.send(answer).is_err() || failed {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let tail = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut kept = tail.lock().expect("stderr lock");
                kept.extend_from_slice(&buf[..n]);
                let excess = kept.len().saturating_sub(STDERR_TAIL);
                kept.drain(..excess);
            }
        });
        Ok(Worker {
            child,
            stdin,
            answers,
            stderr,
            memory_bytes,
            served: 0,
        })
    }

    fn parse(&mut self, bytes: &[u8], timeout: Duration) -> Result<Parsed, NoAnswer> {
        self.served += 1;
        let sent = self
            .stdin
            .write_all(&(bytes.len() as u64).to_le_bytes())
            .and_then(|()| self.stdin.write_all(bytes))
            .and_then(|()| self.stdin.flush());
        let answer = match sent {
            Ok(()) => self.answers.recv_timeout(timeout),
            // It died before it read the document: it has an exit status to explain.
            Err(_) => Err(RecvTimeoutError::Disconnected),
        };
        match answer {
            Ok(Ok(body)) => serde_json::from_slice(&body).map_err(|e| {
                NoAnswer::Crashed(format!("the PDF worker's answer is unreadable: {e}"))
            }),
            Err(RecvTimeoutError::Timeout) => Err(NoAnswer::TimedOut),
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                Err(NoAnswer::Crashed(self.why_it_died()))
            }
        }
    }

    /// A reason for a worker that stopped answering, from its exit status and last words.
    fn why_it_died(&mut self) -> String {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        // Let the stderr thread take the last bytes the worker wrote.
        std::thread::sleep(Duration::from_millis(20));
        let said = String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned();
        let limit_mib = self.memory_bytes >> 20;
        if said.contains("memory allocation of") || said.contains("out of memory") {
            format!(
                "it needs more than the {limit_mib} MiB of memory a PDF may use (EXTRACT_MEMORY_MB)"
            )
        } else if said.contains("overflowed its stack") {
            "its objects are nested too deeply to parse (stack overflow)".to_string()
        } else {
            let status = status.map_or_else(|| "unknown status".into(), describe_status);
            format!("the parser crashed ({status})")
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    status
        .code()
        .map_or_else(|| "no exit code".into(), |c| format!("exit {c}"))
}

fn read_frame(from: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut magic = [0u8; 8];
    from.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a PDF worker answer",
        ));
    }
    let mut len = [0u8; 8];
    from.read_exact(&mut len)?;
    let mut body = vec![0u8; u64::from_le_bytes(len) as usize];
    from.read_exact(&mut body)?;
    Ok(body)
}

/// The worker's loop: a length-prefixed PDF in on standard input, a framed answer out on
/// standard output, until standard input closes.
fn serve() -> i32 {
    // A panic is answered as a damaged file; its message would only fill the parent's log.
    std::panic::set_hook(Box::new(|_| {}));
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    loop {
        let mut len = [0u8; 8];
        if input.read_exact(&mut len).is_err() {
            return 0;
        }
        let mut pdf = vec![0u8; u64::from_le_bytes(len) as usize];
        if input.read_exact(&mut pdf).is_err() {
            return 1;
        }
        let parsed = super::pdf::parse_in_process(&pdf);
        drop(pdf);
        let body = serde_json::to_vec(&parsed).expect("answers serialize");
        let written = output
            .write_all(MAGIC)
            .and_then(|()| output.write_all(&(body.len() as u64).to_le_bytes()))
            .and_then(|()| output.write_all(&body))
            .and_then(|()| output.flush());
        if written.is_err() {
            return 1;
        }
    }
}
