//! PgBouncer in transaction mode in front of a test server.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Server connections PgBouncer keeps per database and user.
pub const POOL_SIZE: usize = 3;

/// A PgBouncer process in transaction mode, stopped when dropped.
pub struct Bouncer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Bouncer {
    /// Starts PgBouncer in front of the server of `url` (`postgres://user@host:port/db`).
    pub fn start(url: &str) -> Bouncer {
        let host_port = url
            .split('@')
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .expect("host in URL");
        let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
        let listen = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("threadline-pgbouncer-{listen}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("users.txt"),
            "\"postgres\" \"\"\n\"root\" \"\"\n\"threadline_app\" \"\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {listen}\nunix_socket_dir =\nauth_type = trust\nauth_file = {dir}/users.txt\n\
                 pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 200\n\
                 ignore_startup_parameters = extra_float_digits,application_name\n\
                 logfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("PgBouncer is not installed: apt-get install pgbouncer (.ci/run does)");
        let mut command = Command::new(binary);
        command
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // PgBouncer refuses to run as root: run it as the owner of the server's files.
        if let Some((uid, gid)) = postgres_ids() {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            for file in ["users.txt", "pgbouncer.ini"] {
                std::os::unix::fs::chown(dir.join(file), Some(uid), Some(gid)).unwrap();
            }
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("start pgbouncer");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not start: {:?}",
                std::fs::read_to_string(dir.join("pgbouncer.log"))
            );
            thread::sleep(Duration::from_millis(20));
        }
        Bouncer {
            child,
            dir,
            port: listen,
        }
    }

    /// What PgBouncer has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// `url` with its host and port replaced by PgBouncer's.
    pub fn url(&self, url: &str) -> String {
        let (scheme_user, rest) = url.split_once('@').expect("user in URL");
        let path = rest.split_once('/').map_or("", |(_, path)| path);
        format!("{scheme_user}@127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `postgres` OS user's uid and gid when running as root.
fn postgres_ids() -> Option<(u32, u32)> {
    if current_uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres"))
            .then(|| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
    })
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}
