//! Starts the real `despina` binary on ephemeral loopback ports for integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct TestServer {
    child: Option<Child>,
    pub http: String,
    pub grpc: String,
    pub metrics: String,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository of built-in test models (tests/models).
pub fn test_models() -> PathBuf {
    root().join("tests/models")
}

/// `despina serve` on `repos`, every listener on an ephemeral loopback port.
fn serve_command(repos: &[&Path]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_despina"));
    cmd.arg("serve");
    for r in repos {
        cmd.arg("--model-repository").arg(r);
    }
    cmd.args([
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
    ])
    .args(["--metrics-port", "0"]);
    cmd
}

/// Runs `despina serve` on `repo` with `extra` flags, expecting it to refuse to start;
/// answers what it wrote to stderr.
pub fn refused_start(repo: &Path, extra: &[&str]) -> String {
    let out = serve_command(&[repo])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run despina");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{extra:?} was accepted:\n{stderr}");
    stderr
}

/// One plain HTTP/1.1 exchange without a body; the whole response (status line, headers,
/// body) as text.
pub fn http_text(addr: &str, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

impl TestServer {
    /// Starts despina on `repo` with extra flags and waits until its three listeners are up.
    pub fn start(repo: &Path, extra: &[&str]) -> TestServer {
        Self::start_with(&[repo], extra)
    }

    pub fn start_with(repos: &[&Path], extra: &[&str]) -> TestServer {
        let mut cmd = serve_command(repos);
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start despina");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for (svc, tag) in [
                    ("HTTPService", "http"),
                    ("GRPCInferenceService", "grpc"),
                    ("Metrics Service", "metrics"),
                ] {
                    let marker = format!("Started {svc} at ");
                    if let Some(i) = line.find(&marker) {
                        let addr = line[i + marker.len()..].trim().to_string();
                        let _ = tx.send((tag, addr));
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (mut http, mut grpc, mut metrics) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.is_none() || grpc.is_none() || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(("http", a)) => http = Some(a),
                Ok(("grpc", a)) => grpc = Some(a),
                Ok((_, a)) => metrics = Some(a),
                Err(_) => {
                    let _ = child.kill();
                    panic!("despina did not start:\n{}", log.lock().unwrap().join("\n"));
                }
            }
        }
        TestServer {
            child: Some(child),
            http: http.unwrap(),
            grpc: grpc.unwrap(),
            metrics: metrics.unwrap(),
            log,
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal (e.g. libc::SIGTERM) and waits for the exit status, bounded in time.
    pub fn signal_and_wait(
        &mut self,
        signal: i32,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
