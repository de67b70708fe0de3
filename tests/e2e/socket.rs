//! The example as a program: `examples/blog/main.rs` built by `cargo test`, started as a
//! process with no `DATABASE_URL` and `PORT=0`, and spoken to over a real TCP socket. It
//! checks what the in-process tests cannot: the private PostgreSQL, the migrations on
//! start, the address in the log line, and the server on the socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

/// How long the example may take to start its PostgreSQL, migrate and listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one request, or the stop, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/<profile>/examples/blog`: `cargo test` builds the examples next to the
/// test executables (`target/<profile>/deps/e2e-<hash>`). `cargo test --test e2e` does not
/// build them, though: a binary older than the example's sources or the migrations it
/// embeds is refused rather than tested.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    let profile = if deps.ends_with("deps") {
        deps.parent().expect("the profile directory")
    } else {
        deps
    };
    let binary = profile
        .join("examples")
        .join(format!("blog{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the blog example is not built: no {} (run `cargo build --examples`, or `cargo test`, \
         which builds it)",
        binary.display()
    );
    let built = modified(&binary);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some((source, _)) = [root.join("examples/blog"), root.join("migrations")]
        .iter()
        .flat_map(|dir| newest_file(dir))
        .find(|(_, time)| *time > built)
    {
        panic!(
            "the blog example at {} is older than {}: run `cargo build --examples` (or `cargo test`, \
             which builds it; `cargo test --test e2e` does not)",
            binary.display(),
            source.display()
        );
    }
    binary
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The most recently modified file under `dir`, and when.
fn newest_file(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let candidate = if path.is_dir() {
            newest_file(&path)
        } else {
            let time = modified(&path);
            Some((path, time))
        };
        if let Some((path, time)) = candidate
            && newest.as_ref().is_none_or(|(_, t)| time > *t)
        {
            newest = Some((path, time));
        }
    }
    newest
}

/// The running example; killed and reaped when dropped, a failed test included.
struct Running {
    child: Child,
    /// Its stdout and stderr, a line at a time, from the reader threads.
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    printed: Vec<String>,
}

impl Running {
    fn start() -> Running {
        let binary = example_binary();
        let mut child = Command::new(&binary)
            .env_remove("DATABASE_URL")
            .env("PORT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let (sender, lines) = channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let out = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Running {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// Reads what the example prints until a line has `marker`, and returns that line.
    fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.printed.push(line.clone());
                    if line.contains(marker) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {marker:?} line within {timeout:?}; the example printed:\n{}",
                        self.printed()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    panic!(
                        "the example exited ({status}) before a {marker:?} line; it printed:\n{}",
                        self.printed()
                    )
                }
            }
        }
    }

    fn printed(&self) -> String {
        self.printed.join("\n")
    }

    /// Ctrl-C, as the README stops it; waits for the exit.
    fn interrupt(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("the kill command");
        assert!(sent.success(), "kill -INT {}: {sent}", self.child.id());
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the example's status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not stop within {IO_TIMEOUT:?} of Ctrl-C; it printed:\n{}",
                self.printed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Nothing to do once it has exited (and been reaped); else stop it now.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// An HTTP answer, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    /// The JSON body; `Null` when the body is empty.
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request on a fresh connection (`Connection: close`) and reads the
/// answer to the end.
fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> Reply {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if body.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", payload.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(payload.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
    parse_reply(&raw).unwrap_or_else(|why| panic!("{method} {path}: {why}: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the head")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "a head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    if parts.next() != Some("HTTP/1.1") {
        return Err(format!("not an HTTP/1.1 status line: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status code: {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or_else(|| format!("bad header: {line:?}"))?;
            Ok((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect::<Result<_, String>>()?;
    let mut bytes = raw[split + 4..].to_vec();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        bytes = dechunk(&bytes)?;
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| "a bad content-length")?;
        if bytes.len() != length {
            return Err(format!("content-length {length}, but {} bytes", bytes.len()));
        }
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| format!("a body that is not JSON ({e})"))?
    };
    Ok(Reply { status, headers, body })
}

/// A chunked body, joined.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk without its size")?;
        let size = std::str::from_utf8(&rest[..end]).map_err(|_| "a chunk size that is not UTF-8")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|_| format!("a bad chunk size {size:?}"))?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("a chunk cut short".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The `host:port` of a URL like `postgres://user@127.0.0.1:5432/db`.
fn host_port(url: &str) -> Option<SocketAddr> {
    let after_scheme = url.split_once("://")?.1;
    let authority = after_scheme.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.parse().ok()
}

#[test]
fn the_example_binary_serves_the_routes_on_a_socket_with_no_database_url() {
    let mut blog = Running::start();
    let listening = blog.wait_for_line("listening on http://", START_TIMEOUT);
    let printed = blog.printed();
    assert!(
        printed.contains("No DATABASE_URL: started a private PostgreSQL"),
        "{printed}"
    );
    assert!(
        printed.contains("Migrations: applied 20261126000000, 20261127000100"),
        "the migrations are applied on start: {printed}"
    );
    let database = blog
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("Its database: "))
        .and_then(host_port)
        .unwrap_or_else(|| panic!("no private database named: {printed}"));

    let url = listening
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default();
    let addr: SocketAddr = url
        .parse()
        .unwrap_or_else(|_| panic!("not an address: {url:?} in {listening:?}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "{listening}");
    assert_ne!(addr.port(), 0, "the line names the bound port, not PORT=0: {listening}");

    let created = request(
        addr,
        "POST",
        "/posts",
        &[
            ("x-user-id", "2"),
            ("x-request-id", "req-socket-1"),
            ("x-correlation-id", "socket-story"),
        ],
        Some(&json!({"title": "Hello", "body": "over TCP"})),
    );
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.header("x-request-id"), Some("req-socket-1"), "{created:?}");
    assert_eq!(created.header("content-type"), Some("application/json"), "{created:?}");
    let id = created.body["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id: {created:?}"));
    assert_eq!(created.body["author_id"], 2);
    assert!(created.body.get("author_ip").is_none(), "{created:?}");

    let updated = request(
        addr,
        "PATCH",
        &format!("/posts/{id}"),
        &[
            ("x-user-id", "3"),
            ("x-request-id", "req-socket-2"),
            ("x-correlation-id", "socket-story"),
        ],
        Some(&json!({"title": "Hello, socket"})),
    );
    assert_eq!(updated.status, 200, "{updated:?}");
    assert_eq!(updated.header("x-request-id"), Some("req-socket-2"));
    assert_eq!(updated.body["title"], "Hello, socket");

    let history = request(addr, "GET", &format!("/posts/{id}/history"), &[], None);
    assert_eq!(history.status, 200, "{history:?}");
    let versions = history
        .body
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {history:?}"));
    assert_eq!(versions.len(), 2, "{history:?}");
    let newest = &versions[0];
    assert_eq!(newest["op"], "update");
    assert_eq!(newest["action"], "post_updated");
    assert_eq!(newest["actor"], json!({"type": "user", "id": "3"}));
    assert_eq!(newest["request_id"], "req-socket-2");
    assert_eq!(newest["correlation_id"], "socket-story");
    assert_eq!(newest["post"]["title"], "Hello, socket");
    assert_eq!(
        newest["post"]["author_ip"],
        json!({"masked": true}),
        "the address, 127.0.0.1 here, is masked: {newest}"
    );
    assert_eq!(versions[1]["action"], "post_created");
    assert_eq!(versions[1]["actor"], json!({"type": "user", "id": "2"}));
    assert_eq!(versions[1]["request_id"], "req-socket-1");

    let long = "c".repeat(300);
    let refused = request(
        addr,
        "POST",
        "/posts",
        &[("x-user-id", "1"), ("x-correlation-id", &long)],
        Some(&json!({"title": "t", "body": "b"})),
    );
    assert_eq!(refused.status, 400, "{refused:?}");
    assert_eq!(refused.header("content-type"), Some("application/json"), "{refused:?}");
    assert!(
        refused.body["error"]
            .as_str()
            .is_some_and(|message| message.contains("x-correlation-id")),
        "{refused:?}"
    );

    // Ctrl-C: the server stops, main returns, and the private PostgreSQL goes with it.
    let status = blog.interrupt();
    assert!(
        status.success(),
        "the example ends cleanly on Ctrl-C: {status}; it printed:\n{}",
        blog.printed()
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "nothing listens on {addr} any more"
    );
    let deadline = Instant::now() + IO_TIMEOUT;
    while TcpStream::connect_timeout(&database, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the example's private PostgreSQL on {database} still runs {IO_TIMEOUT:?} after it stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
