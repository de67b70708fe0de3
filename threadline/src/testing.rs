//! Real PostgreSQL databases for tests, one per test, with Threadline installed: each a copy
//! of a template database installed once per server.
//!
//! With `DATABASE_URL` set, databases are created on that server (the URL's role must
//! be allowed to create databases). Without it, the first [`TestDatabase::new`] of a
//! process starts a private throwaway server from the PostgreSQL binaries on the machine
//! (`THREADLINE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config
//! --bindir`), as the `postgres` OS user when running as root, with `fsync` off. The server
//! and its files go away when the process exits.
//!
//! With `THREADLINE_TEST_PARTITIONS` set to `day`, `week` or `month`, the template's store
//! is [partitioned](crate::partitions) by that period, so a suite runs against the
//! partitioned layout too.
//!
//! ```no_run
//! # fn demo() -> Result<(), threadline::Error> {
//! use diesel::RunQueryDsl;
//!
//! let db = threadline::testing::TestDatabase::new()?;
//! let mut conn = db.connect()?;
//! diesel::sql_query("CREATE TABLE posts (id bigint PRIMARY KEY, title text)").execute(&mut conn)?;
//! diesel::sql_query("SELECT threadline.audit_table('posts')").execute(&mut conn)?;
//! # Ok(()) }
//! ```

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl, sql_query};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use crate::Error;

/// The login role [`TestDatabase::app_url`] connects as: no superuser, owns nothing.
pub const APP_ROLE: &str = "threadline_app";

/// The login role [`TestDatabase::reader_url`] connects as: a member of `threadline_reader`,
/// as a support engineer's role would be.
pub const READER_ROLE: &str = "threadline_support";

/// A server that test databases are created on.
struct Server {
    /// A URL to a maintenance database of the server, as a role that creates databases.
    admin_url: String,
    /// Keeps the private server alive: its keeper stops it when this pipe closes, that is
    /// when the process exits.
    _keeper: Option<Mutex<ChildStdin>>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn server() -> Result<&'static Server, Error> {
    SERVER
        .get_or_init(|| match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Server {
                admin_url: url,
                _keeper: None,
            }),
            _ => start_private_server(),
        })
        .as_ref()
        .map_err(|message| Error::TestDatabase(message.clone()))
}

/// A fresh database with the Threadline schema installed, dropped when this value is.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates a database with a unique name and Threadline installed: a copy of a template
    /// database the first call on a server installs once.
    pub fn new() -> Result<Self, Error> {
        let server = server()?;
        let template = template(server)?;
        TestDatabase::create(server, &format!(" TEMPLATE \"{template}\""))
    }

    /// Creates a database with a unique name and nothing installed.
    pub fn empty() -> Result<Self, Error> {
        TestDatabase::create(server()?, "")
    }

    fn create(server: &Server, options: &str) -> Result<Self, Error> {
        let name = format!(
            "threadline_test_{}_{}",
            COUNTER.fetch_add(1, Ordering::Relaxed),
            unique_suffix()
        );
        let mut admin = PgConnection::establish(&server.admin_url)?;
        sql_query(format!("CREATE DATABASE \"{name}\"{options}")).execute(&mut admin)?;
        Ok(TestDatabase {
            url: with_database(&server.admin_url, &name),
            admin_url: server.admin_url.clone(),
            name,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL to the database as the server's administrative role.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A blocking connection as the administrative role.
    pub fn connect(&self) -> Result<PgConnection, Error> {
        Ok(PgConnection::establish(&self.url)?)
    }

    /// An async connection as the administrative role.
    pub async fn connect_async(&self) -> Result<AsyncPgConnection, Error> {
        Ok(AsyncPgConnection::establish(&self.url).await?)
    }

    /// A URL to the database as [`APP_ROLE`], an ordinary login role that may connect and
    /// create tables in `public` but holds no other privilege: grant it what a test's app
    /// role should have.
    pub fn app_url(&self) -> Result<String, Error> {
        self.login_url(
            APP_ROLE,
            &format!("GRANT USAGE, CREATE ON SCHEMA public TO {APP_ROLE};"),
        )
    }

    /// A URL to the database as [`READER_ROLE`], a login role that holds only the
    /// installed `threadline_reader` role: it reads the trail and changes nothing.
    pub fn reader_url(&self) -> Result<String, Error> {
        self.login_url(READER_ROLE, &format!("GRANT threadline_reader TO {READER_ROLE};"))
    }

    /// Creates a login role once per server (roles are cluster-wide, so a parallel test may
    /// create it or grant it a role first), lets it connect to this database, runs `grants`,
    /// and returns a URL that connects as it.
    fn login_url(&self, role: &str, grants: &str) -> Result<String, Error> {
        let mut conn = self.connect()?;
        conn.batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             GRANT CONNECT ON DATABASE \"{}\" TO {role};
             DO $$ BEGIN {grants} EXCEPTION WHEN unique_violation THEN NULL; END $$;",
            self.name
        ))?;
        Ok(with_user(&self.url, role))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = sql_query(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)).execute(&mut admin);
        }
    }
}

static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();

/// The template database [`TestDatabase::new`] copies: `threadline_template_<hash of the
/// install SQL>`, so a changed schema gets a template of its own. The first process to need
/// it on a server installs it under a temporary name, then renames it, all under an advisory
/// lock: processes sharing a server (`DATABASE_URL`, nextest) wait for one install, and a
/// failed install leaves no template behind. Nobody may connect to it, so copying it never
/// fails for a session left open on it.
fn template(server: &Server) -> Result<&'static str, Error> {
    TEMPLATE
        .get_or_init(|| build_template(server).map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|message| Error::TestDatabase(format!("template database: {message}")))
}

/// The advisory lock that serializes template installs on a server.
const TEMPLATE_LOCK: i64 = 7_526_752_898_406_036_335;

fn build_template(server: &Server) -> Result<String, Error> {
    // The cursors' FNV-1a hash: the same name whatever the toolchain, so a shared server
    // keeps one template per schema.
    let layout = partitioned()?;
    // A partitioned template holds the partitions of the day it was built: a day's own.
    let name = format!(
        "threadline_template_{:016x}{}",
        crate::read::fingerprint(crate::migrations::INSTALL_SQL),
        layout
            .map(|period| format!("_{period}_{}", chrono::Utc::now().format("%Y%m%d")))
            .unwrap_or_default()
    );
    let mut admin = PgConnection::establish(&server.admin_url)?;
    admin.batch_execute(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))?;
    let built = (|| {
        #[derive(diesel::QueryableByName)]
        struct Found {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            found: bool,
        }
        let exists: Found = sql_query("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut admin)?;
        if !exists.found {
            let building = TestDatabase::create(server, "")?;
            install(&mut building.connect()?)?;
            // The install's session may still be closing on the server: a rename waits for it.
            let rename = format!("ALTER DATABASE \"{}\" RENAME TO \"{name}\"", building.name);
            let started = Instant::now();
            while let Err(error) = admin.batch_execute(&rename) {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err(error.into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            admin.batch_execute(&format!(
                "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            ))?;
        }
        Ok::<_, Error>(())
    })();
    admin.batch_execute(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))?;
    built.map(|()| name)
}

/// Installs the schema as the template has it: with its store partitioned when
/// `THREADLINE_TEST_PARTITIONS` names a period.
pub fn install(conn: &mut PgConnection) -> Result<(), Error> {
    crate::migrations::install(conn)?;
    if let Some(period) = partitioned()? {
        crate::partitions::convert_blocking(conn, period)?;
    }
    Ok(())
}

/// The partition period `THREADLINE_TEST_PARTITIONS` asks for, if any.
fn partitioned() -> Result<Option<crate::partitions::Period>, Error> {
    match std::env::var("THREADLINE_TEST_PARTITIONS") {
        Ok(period) if !period.is_empty() => period
            .parse()
            .map(Some)
            .map_err(|e| Error::TestDatabase(format!("THREADLINE_TEST_PARTITIONS: {e}"))),
        _ => Ok(None),
    }
}

/// `<pid>_<nanoseconds>`: unique across processes sharing a server or a temp directory.
fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}_{nanos}", std::process::id())
}

/// `url` with its database replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (main, query) = url.split_once('?').map_or((url, None), |(m, q)| (m, Some(q)));
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let base = match main[authority_start..].find('/') {
        Some(slash) => &main[..authority_start + slash],
        None => main,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// `url` with its user replaced by `user` and any password dropped.
fn with_user(url: &str, user: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let host_start = rest
        .find('@')
        .filter(|at| rest.find('/').is_none_or(|slash| at < &slash));
    let host = host_start.map_or(rest, |at| &rest[at + 1..]);
    format!("{}{user}@{host}", &url[..scheme_end])
}

/// The directory of the PostgreSQL server binaries the private server runs from:
/// `THREADLINE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config
/// --bindir`. Its `psql` matches the server. For the benchmarks' `psql`; not an API of its own.
#[doc(hidden)]
pub fn server_bindir() -> Result<PathBuf, Error> {
    find_bindir().map_err(Error::TestDatabase)
}

fn find_bindir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("THREADLINE_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output().map_err(|_| {
        "no PostgreSQL server binaries found: install PostgreSQL, set THREADLINE_PG_BIN, or set DATABASE_URL".to_owned()
    })?;
    let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if bin.join("initdb").exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no initdb in {}: install the PostgreSQL server package, set THREADLINE_PG_BIN, or set DATABASE_URL",
            bin.display()
        ))
    }
}

/// The uid and gid of the `postgres` OS user, read from `/etc/passwd`.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("cannot read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .next()
        .ok_or_else(|| {
            "running as root needs a `postgres` OS user to run the private server; or set DATABASE_URL".to_owned()
        })
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Runs `program` as `owner` when given (the process is root).
fn command_as(program: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// Stops the server and removes its directory when the test process closes stdin.
const KEEPER: &str = r#"
"$0/postgres" -D "$1/data" -p "$2" -k "$1" -c listen_addresses=127.0.0.1 \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
    >"$1/postgres.log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$1"
"#;

/// A fresh cluster directory: initdb run as the server's OS user, and a free port.
#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    owner: Option<(u32, u32)>,
    port: u16,
}

fn init_cluster() -> Result<Cluster, String> {
    let bin = find_bindir()?;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let owner = if root { Some(postgres_user()?) } else { None };
    let dir = std::env::temp_dir().join(format!("threadline-pg-{}", unique_suffix()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
    }
    let initdb = command_as(&bin.join("initdb"), owner)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !initdb.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr)));
    }
    Ok(Cluster {
        bin,
        dir,
        owner,
        port: free_port()?,
    })
}

impl Cluster {
    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn log(&self) -> String {
        let mut log = String::new();
        let _ = std::fs::File::open(self.dir.join("postgres.log")).and_then(|mut f| f.read_to_string(&mut log));
        log
    }

    /// Waits until the server accepts connections, or `alive` says it is gone.
    fn wait_ready(&self, mut alive: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = self.admin_url();
        while PgConnection::establish(&url).is_err() {
            if !alive() || Instant::now() > deadline {
                return Err(format!("the private PostgreSQL server did not start: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

fn start_private_server() -> Result<Server, String> {
    let cluster = init_cluster()?;
    let mut keeper: Child = command_as(Path::new("/bin/sh"), cluster.owner)
        .arg("-c")
        .arg(KEEPER)
        .arg(&cluster.bin)
        .arg(&cluster.dir)
        .arg(cluster.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    if let Err(message) = cluster.wait_ready(|| keeper.try_wait().ok().flatten().is_none()) {
        drop(keeper.stdin.take());
        return Err(message);
    }
    Ok(Server {
        admin_url: cluster.admin_url(),
        _keeper: keeper.stdin.take().map(Mutex::new),
    })
}

/// A private PostgreSQL server of one test's own, which the test may crash and restart:
/// for proving that an audited app loses nothing when its database goes down. Unlike
/// the shared server, it keeps `synchronous_commit` on, so a commit the client saw
/// survives an immediate stop. Stopped and removed when dropped.
///
/// ```no_run
/// # fn demo() -> Result<(), threadline::Error> {
/// let mut server = threadline::testing::PrivateServer::start()?;
/// let url = server.admin_url();
/// server.crash()?; // as if the machine lost power: no shutdown checkpoint
/// server.restart()?; // crash recovery replays the WAL
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PrivateServer {
    cluster: Cluster,
}

impl PrivateServer {
    /// Initializes a new cluster and starts a server on it.
    pub fn start() -> Result<Self, Error> {
        let server = PrivateServer {
            cluster: init_cluster().map_err(Error::TestDatabase)?,
        };
        server.restart()?;
        Ok(server)
    }

    /// A URL to the `postgres` database as the superuser `postgres`.
    pub fn admin_url(&self) -> String {
        self.cluster.admin_url()
    }

    /// Stops the server in `immediate` mode: every backend is killed at once and nothing
    /// is flushed, as in a crash.
    pub fn crash(&self) -> Result<(), Error> {
        self.pg_ctl(&["stop", "-m", "immediate", "-w"])
    }

    /// Starts the stopped server again (after a crash, PostgreSQL recovers from its WAL)
    /// and waits until it accepts connections.
    pub fn restart(&self) -> Result<(), Error> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.cluster.port,
            self.cluster.dir.display()
        );
        self.pg_ctl(&["start", "-w", "-t", "60", "-o", &options])
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), Error> {
        let output = command_as(&self.cluster.bin.join("pg_ctl"), self.cluster.owner)
            .arg("-D")
            .arg(self.cluster.dir.join("data"))
            .arg("-l")
            .arg(self.cluster.dir.join("postgres.log"))
            .args(args)
            .output()
            .map_err(|e| Error::TestDatabase(format!("cannot run pg_ctl: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::TestDatabase(format!(
                "pg_ctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["stop", "-m", "immediate", "-w"]);
        let _ = std::fs::remove_dir_all(&self.cluster.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::{with_database, with_user};

    #[test]
    fn urls_keep_everything_but_what_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/app?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
        assert_eq!(
            with_user("postgres://u:p@h:5432/app", "app"),
            "postgres://app@h:5432/app"
        );
        assert_eq!(with_user("postgres://h/app", "app"), "postgres://app@h/app");
    }
}
