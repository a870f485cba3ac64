//! A throwaway `PostgreSQL` server for the fleet tests: `initdb` in a temp
//! dir as `nobody` (initdb refuses root), a Unix socket there and a free
//! TCP port on 127.0.0.1, optionally TLS with a self-signed certificate.
//! Stopped (immediately) when dropped. No mocks.

#![allow(dead_code, reason = "each test uses a different part of the harness")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where Debian's `postgresql` package puts the server binaries.
const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
    tls: bool,
}

/// The server's binaries (`createuser`, `createdb`, `psql`, ...).
pub fn bin_dir() -> &'static Path {
    Path::new(BIN)
}

fn as_nobody(program: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(program);
    c
}

fn ok(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what}: {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl PgServer {
    /// Starts a server, or returns `None` after printing why the test is
    /// skipped (a failure under `CI=true` or `NONO_REQUIRE_KERNEL=1`).
    /// With `tls`, TCP clients must use TLS (`hostssl` only).
    pub fn start(test: &str, tls: bool) -> Option<PgServer> {
        let initdb = Path::new(BIN).join("initdb");
        if !initdb.exists() {
            crate::support::skip(test, "PostgreSQL is not installed (cargo xtask setup installs it)");
            return None;
        }
        if !crate::support::is_root() {
            crate::support::skip(test, "starting a throwaway PostgreSQL as `nobody` needs root");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("nono-pg-").tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("mkdir data");
        std::os::unix::fs::chown(&data, Some(65534), Some(65534)).expect("chown data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&sock).expect("mkdir sock");
        std::os::unix::fs::chown(&sock, Some(65534), Some(65534)).expect("chown sock");
        let o = as_nobody(&initdb)
            .arg("-D")
            .arg(&data)
            .args(["-U", "nono", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        ok("initdb", &o);
        let mut conf = String::from(
            "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_wal_size = '1GB'\n",
        );
        let _ = std::fmt::Write::write_fmt(&mut conf, format_args!("unix_socket_directories = '{}'\n", sock.display()));
        if tls {
            let (crt, key) = (data.join("server.crt"), data.join("server.key"));
            let o = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .output()
                .expect("run openssl");
            ok("openssl req", &o);
            for f in [&crt, &key] {
                std::os::unix::fs::chown(f, Some(65534), Some(65534)).expect("chown cert");
            }
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod key");
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            // TCP only with TLS; the socket stays plain (for psql here).
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("pg_hba");
        }
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).expect("write conf");
        let server = PgServer { dir, port: free_port(), tls };
        server.pg_ctl(&["start"]);
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, action: &[&str]) {
        let o = as_nobody(&Path::new(BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.data().join("server.log"))
            .args(["-o", &format!("-p {}", self.port), "-w", "-m", "fast"])
            .args(action)
            .output()
            .expect("run pg_ctl");
        ok(&format!("pg_ctl {action:?}"), &o);
    }

    /// Stops the server (fast: sessions are cut off) and starts it again.
    pub fn restart(&self) {
        self.pg_ctl(&["restart"]);
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// TCP clients must authenticate with a password (SCRAM), as on a real
    /// server; the superuser keeps the Unix socket (trust), as a DBA's
    /// `sudo -u postgres psql` does.
    pub fn require_passwords(&self) {
        let tcp = if self.tls {
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"
        } else {
            "host all all 127.0.0.1/32 scram-sha-256\n"
        };
        std::fs::write(self.data().join("pg_hba.conf"), format!("local all all trust\n{tcp}")).expect("pg_hba");
        self.psql("SELECT pg_reload_conf()");
    }

    /// A command run as the server's DBA: libpq's variables point at the
    /// superuser on the Unix socket, and the server's binaries come first
    /// on PATH (`createuser`, `createdb`, `psql`).
    pub fn dba(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("PGHOST", self.socket_dir())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "nono")
            .env("PATH", format!("{BIN}:{}", std::env::var("PATH").unwrap_or_default()))
            .env_remove("PGDATABASE")
            .env_remove("PGPASSWORD");
        c
    }

    /// A TCP URL for `user` with this `sslmode`.
    pub fn url(&self, user: &str, sslmode: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres?sslmode={sslmode}", self.port)
    }

    /// Runs SQL as the superuser over the Unix socket; returns the
    /// unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// [`Self::psql`] in database `db`.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let o = Command::new(Path::new(BIN).join("psql"))
            .arg("-h")
            .arg(self.dir.path().join("sock"))
            .args(["-p", &self.port.to_string(), "-U", "nono", "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
            .output()
            .expect("run psql");
        ok(&format!("psql {sql}"), &o);
        String::from_utf8(o.stdout).expect("utf-8").trim().to_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ =
            as_nobody(&Path::new(BIN).join("pg_ctl")).arg("-D").arg(self.data()).args(["-w", "-m", "immediate", "stop"]).output();
    }
}
