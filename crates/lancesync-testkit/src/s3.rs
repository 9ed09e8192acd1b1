//! A real S3-compatible server on 127.0.0.1 for tests: moto's server (PyPI `moto[server]`),
//! started and stopped by the test, plus a TCP relay in front of it that a test can cut and
//! restore to make S3 vanish mid-transfer without losing what it holds.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Credentials moto accepts (it checks none unless told to).
pub const ACCESS_KEY: &str = "lancesync-test-key";
/// Secret for [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "lancesync-test-secret";

/// A moto S3 server process; killed on drop.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    child: Option<Child>,
    enforce_auth: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// `moto_server`, or `$MOTO_SERVER`, or `python3 -m moto.server` when neither is on PATH.
fn moto_command(port: u16) -> Command {
    let args = [
        "-H".to_string(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
    ];
    let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(&program).is_file()));
    if on_path || program.contains('/') {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    } else {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "moto.server"]).args(args);
        cmd
    }
}

impl S3Server {
    /// Start moto on a free port and wait until it answers. Panics with the install hint
    /// (`pip install 'moto[server]'`) when moto is missing.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Start moto checking credentials: every request is refused as an unknown access key
    /// (moto knows no IAM users), which is how a test sees bad credentials.
    pub fn start_enforcing_auth() -> Self {
        Self::start_with(true)
    }

    fn start_with(enforce_auth: bool) -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            enforce_auth,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let mut cmd = moto_command(self.port);
        if self.enforce_auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto's S3 server ({e}): install it with `python3 -m pip install 'moto[server]'` (scripts/env.sh does)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto's S3 server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Create a bucket (moto takes an unsigned `PUT /bucket`).
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint()))
            .send()
            .await
            .expect("create bucket");
        assert!(
            response.status().is_success(),
            "create bucket {bucket}: {}",
            response.status()
        );
    }

    /// An S3 client for `bucket` on this server, as a test writes its objects with.
    pub fn client(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        std::sync::Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(self.endpoint())
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(ACCESS_KEY)
                .with_secret_access_key(SECRET_KEY)
                .build()
                .expect("an S3 client for moto"),
        )
    }

    /// Kill the server (SIGKILL): everything it held is gone, as after a crash of an
    /// in-memory server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP relay in front of a server: [`Relay::cut`] drops every connection and stops
/// listening (clients see resets and refused connections), [`Relay::restore`] listens again
/// on the same port. The server behind keeps its data. [`Relay::silence`] is the other kind
/// of cut, a network that drops packets: the server's side of every connection is closed, the
/// client's side stays open and hears nothing more, and new connections hang.
#[derive(Debug, Clone)]
pub struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    silent: Arc<tokio::sync::watch::Sender<bool>>,
    parked: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Relay a free port of 127.0.0.1 to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let relay = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            upstream,
            tasks: Arc::default(),
            bytes: Arc::default(),
            silent: Arc::new(tokio::sync::watch::channel(false).0),
            parked: Arc::default(),
        };
        relay.restore().await;
        relay
    }

    /// `http://127.0.0.1:PORT` of the relay.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes relayed from clients to the server so far.
    pub fn bytes_up(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drop every connection and stop listening.
    pub fn cut(&self) {
        for task in self.tasks.lock().expect("relay tasks").drain(..) {
            task.abort();
        }
    }

    /// Drop packets from now on: the server sees its connections closed at once (the worst
    /// case for a client that holds something on the server), the clients see nothing at all
    /// until their own timeouts. [`Relay::restore`] ends it.
    pub fn silence(&self) {
        self.silent.send_replace(true);
    }

    /// Listen again (and end a [`Relay::silence`]).
    pub async fn restore(&self) {
        self.cut();
        self.silent.send_replace(false);
        self.parked.lock().expect("relay parked").clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match bind(self.addr) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "relay cannot bind {}: {e}",
                        self.addr
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let (upstream, tasks, bytes) = (self.upstream, self.tasks.clone(), self.bytes.clone());
        let (silent, parked) = (self.silent.clone(), self.parked.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let bytes = bytes.clone();
                let mut silenced = silent.subscribe();
                let parked = parked.clone();
                let conn = tokio::spawn(async move {
                    let mut client = client;
                    if !*silenced.borrow()
                        && let Ok(mut server) = TcpStream::connect(upstream).await
                    {
                        tokio::select! {
                            copied = tokio::io::copy_bidirectional(&mut client, &mut server) => {
                                if let Ok((up, _)) = copied {
                                    bytes.fetch_add(up, std::sync::atomic::Ordering::Relaxed);
                                }
                                return;
                            }
                            _ = silenced.wait_for(|s| *s) => {}
                        }
                    }
                    // Silenced: the server's side closes here, the client's is kept open.
                    parked.lock().expect("relay parked").push(client);
                });
                tasks.lock().expect("relay tasks").push(conn);
            }
        });
        self.tasks.lock().expect("relay tasks").push(accept);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}
