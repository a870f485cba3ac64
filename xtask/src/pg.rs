//! A throwaway `PostgreSQL` server for the push benchmark: `initdb` (Debian's
//! `postgresql` package) in a scratch directory as `nobody` (initdb
//! refuses root), a Unix socket there and a free port on 127.0.0.1.
//! Stopped when dropped. The end-to-end tests have their own copy in
//! tests/support/pg.rs (the test crate cannot depend on xtask).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Pg {
    dir: PathBuf,
    port: u16,
}

fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(Path::new(BIN).join(program));
    c
}

fn run(what: &str, c: &mut Command) -> anyhow::Result<()> {
    let o = c.output().with_context(|| format!("running {what}"))?;
    if !o.status.success() {
        bail!("{what} failed: {}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    }
    Ok(())
}

impl Pg {
    /// Initialises and starts a server under `dir` (recreated).
    pub fn start(dir: &Path) -> anyhow::Result<Pg> {
        use std::os::unix::fs::PermissionsExt as _;
        if !Path::new(BIN).join("initdb").exists() {
            bail!("PostgreSQL 15 is not installed: run `cargo xtask setup`");
        }
        let _ = std::fs::remove_dir_all(dir);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::os::unix::fs::chown(&data, Some(65534), Some(65534))?;
        let sock = dir.join("sock");
        std::fs::create_dir(&sock)?;
        std::os::unix::fs::chown(&sock, Some(65534), Some(65534))?;
        run("initdb", as_nobody("initdb").arg("-D").arg(&data).args(["-U", "nono", "--auth=trust", "-E", "UTF8", "--no-sync"]))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf"))?;
        // Durability as a default install has it (fsync, synchronous
        // commit): the figure is what a real server would see.
        let _ = write!(
            conf,
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_wal_size = '2GB'\n",
            sock.display()
        );
        std::fs::write(data.join("postgresql.conf"), conf)?;
        let pg = Pg { dir: dir.to_path_buf(), port };
        run(
            "pg_ctl start",
            as_nobody("pg_ctl").arg("-D").arg(&data).arg("-l").arg(data.join("server.log")).args([
                "-o",
                &format!("-p {port}"),
                "-w",
                "start",
            ]),
        )?;
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://nono@127.0.0.1:{}/postgres?sslmode=disable", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_nobody("pg_ctl").arg("-D").arg(self.dir.join("data")).args(["-w", "-m", "immediate", "stop"]).output();
    }
}
