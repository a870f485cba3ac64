//! Connecting to the fleet database: the URL (never with a password), the
//! password from `PGPASSWORD` or `~/.pgpass`, TLS by `sslmode`, and the
//! numbered migrations of schema `nono`.

use std::path::PathBuf;
use std::str::FromStr as _;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres::config::{Host as PgHost, SslMode};
use postgres::{Client, Config};
use postgres_openssl::MakeTlsConnector;

use super::FleetError;

/// The schema, one numbered file per step. Append only.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_init.sql"))];

/// The schema version [`MIGRATIONS`] lead to.
pub const SCHEMA_VERSION: i32 = 1;

/// Whether `--db`/`--to` names a `PostgreSQL` database rather than a file.
#[must_use]
pub fn is_fleet_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A parsed fleet URL, password-free as given.
#[derive(Clone, Debug)]
pub struct FleetUrl {
    config: Config,
}

impl FleetUrl {
    /// Parses `url` (`postgres://user@host:port/db?`sslmode`=require`).
    /// Refuses a URL that carries a password.
    pub fn parse(url: &str) -> Result<FleetUrl, FleetError> {
        let config = Config::from_str(url).map_err(|e| FleetError::BadUrl(e.to_string()))?;
        if config.get_password().is_some() {
            return Err(FleetError::PasswordInUrl);
        }
        Ok(FleetUrl { config })
    }

    /// `host:port/db` for messages (no credentials).
    #[must_use]
    pub fn target(&self) -> String {
        let host = self.config.get_hosts().first().map_or_else(
            || "(default)".to_owned(),
            |h| match h {
                PgHost::Tcp(h) => h.clone(),
                PgHost::Unix(p) => p.display().to_string(),
            },
        );
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", self.config.get_dbname().unwrap_or(""))
    }

    /// The full configuration: defaults from `PG*` variables like libpq,
    /// and the password from `PGPASSWORD` or the password file.
    fn resolved(&self) -> Config {
        let mut c = self.config.clone();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if c.get_hosts().is_empty() {
            let host = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".to_owned());
            c.host(&host);
        }
        if c.get_ports().is_empty() {
            c.port(env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432));
        }
        if c.get_user().is_none() {
            let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".to_owned());
            c.user(&user);
        }
        if c.get_dbname().is_none() {
            if let Some(db) = env("PGDATABASE") {
                c.dbname(&db);
            } else if let Some(u) = c.get_user().map(ToOwned::to_owned) {
                c.dbname(&u);
            }
        }
        if let Some(pw) = env("PGPASSWORD") {
            c.password(pw);
        } else if let Some(pw) = pgpass(&c) {
            c.password(pw);
        }
        c
    }
}

/// The password file: `PGPASSFILE`, else `~/.pgpass`.
fn pgpass_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The password for `c` from the password file, as libpq finds it:
/// `host:port:db:user:password` lines, `*` matching anything, `\` escaping
/// `:` and `\`. A file readable by group or others is ignored (with a
/// warning), as libpq does.
fn pgpass(c: &Config) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = pgpass_path()?;
    let meta = std::fs::metadata(&path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        log::warn!("password file {} has group or world access; ignored (chmod 0600 it)", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let (host, is_socket) = match c.get_hosts().first() {
        Some(PgHost::Tcp(h)) => (h.clone(), false),
        Some(PgHost::Unix(p)) => (p.display().to_string(), true),
        None => (String::new(), true),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = c.get_dbname().unwrap_or("").to_owned();
    let user = c.get_user().unwrap_or("").to_owned();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        let [line_host, line_port, line_db, line_user, password] = fields.as_slice() else { continue };
        let matches = |field: &String, value: &str| field == "*" || field == value;
        let host_ok = matches(line_host, &host) || (is_socket && line_host == "localhost");
        if host_ok && matches(line_port, &port) && matches(line_db, &db) && matches(line_user, &user) {
            return Some(password.clone());
        }
    }
    None
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => {
                if let (Some(n), Some(last)) = (chars.next(), fields.last_mut()) {
                    last.push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            other => {
                if let Some(last) = fields.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    fields
}

/// Connects, with TLS as `sslmode` asks (default `prefer`). `require`
/// encrypts without verifying the server's certificate, like libpq.
pub fn connect(url: &FleetUrl) -> Result<Client, FleetError> {
    let config = url.resolved();
    let target = url.target();
    let result = if config.get_ssl_mode() == SslMode::Disable {
        config.connect(postgres::NoTls)
    } else {
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(FleetError::Tls)?;
        builder.set_verify(SslVerifyMode::NONE);
        let mut tls = MakeTlsConnector::new(builder.build());
        tls.set_callback(|cfg, _| {
            cfg.set_verify_hostname(false);
            Ok(())
        });
        config.connect(tls)
    };
    result.map_err(|source| FleetError::Connect { target, source })
}

/// The schema version of the fleet database (0: none yet).
pub(crate) fn schema_version(client: &mut Client) -> Result<i32, FleetError> {
    let what = "reading the fleet schema version";
    let exists: bool =
        client.query_one("SELECT to_regclass('nono.schema_migrations') IS NOT NULL", &[]).map_err(FleetError::pg(what))?.get(0);
    if !exists {
        return Ok(0);
    }
    let v: Option<i32> =
        client.query_one("SELECT max(version) FROM nono.schema_migrations", &[]).map_err(FleetError::pg(what))?.get(0);
    Ok(v.unwrap_or(0))
}

/// Fails unless the schema is exactly this nono's.
pub(crate) fn check_schema(client: &mut Client) -> Result<(), FleetError> {
    let found = schema_version(client)?;
    match found.cmp(&SCHEMA_VERSION) {
        std::cmp::Ordering::Less => Err(FleetError::NotMigrated { found, needed: SCHEMA_VERSION }),
        std::cmp::Ordering::Greater => Err(FleetError::TooNew { found, needed: SCHEMA_VERSION }),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Creates schema `nono` if needed and applies the missing migrations,
/// each in one transaction with its version row; concurrent migrators wait
/// on an advisory lock. Returns the versions applied.
pub fn migrate(client: &mut Client) -> Result<Vec<i32>, FleetError> {
    let what = "migrating the fleet schema";
    let mut applied = Vec::new();
    let mut tx = client.transaction().map_err(FleetError::pg(what))?;
    // Any fixed key: "nono" in ASCII.
    tx.batch_execute(
        "SELECT pg_advisory_xact_lock(1852796783); \
         CREATE SCHEMA IF NOT EXISTS nono; \
         CREATE TABLE IF NOT EXISTS nono.schema_migrations (version integer PRIMARY KEY, \
         applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(FleetError::pg(what))?;
    let found: i32 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM nono.schema_migrations", &[]).map_err(FleetError::pg(what))?.get(0);
    if found > SCHEMA_VERSION {
        return Err(FleetError::TooNew { found, needed: SCHEMA_VERSION });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).map_err(FleetError::pg(format!("applying fleet migration {version}")))?;
        tx.execute("INSERT INTO nono.schema_migrations (version) VALUES ($1)", &[version]).map_err(FleetError::pg(what))?;
        applied.push(*version);
    }
    tx.commit().map_err(FleetError::pg(what))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_password_is_refused() {
        assert!(matches!(FleetUrl::parse("postgres://u:secret@h/db"), Err(FleetError::PasswordInUrl)));
        assert!(matches!(FleetUrl::parse("postgres://u@h/db?password=secret"), Err(FleetError::PasswordInUrl)));
        assert!(FleetUrl::parse("postgres://u@h:5433/db?sslmode=require").is_ok());
    }

    #[test]
    fn pgpass_lines_split_on_unescaped_colons() {
        assert_eq!(split_pgpass(r"h:5432:db:u:pa\:ss"), ["h", "5432", "db", "u", "pa:ss"]);
        assert_eq!(split_pgpass("*:*:*:u:a:b"), ["*", "*", "*", "u", "a:b"]);
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i32::try_from(i).expect("small") + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.0), Some(SCHEMA_VERSION));
    }
}
