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
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_audit_chain.sql")),
    (3, include_str!("migrations/0003_hosts.sql")),
    (4, include_str!("migrations/0004_domains.sql")),
];

/// The schema version [`MIGRATIONS`] lead to.
pub const SCHEMA_VERSION: i32 = 4;

/// Whether `--db`/`--to` names a `PostgreSQL` database rather than a file.
#[must_use]
pub fn is_fleet_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// A parsed fleet URL, password-free as given: what to connect with, and
/// the servers to try in order.
///
/// Hosts and ports follow libpq, not the driver's URL parser: a `host` or
/// `port` in the query string replaces the one in the authority
/// (`postgres://u@localhost/db?host=/run/pg&port=5433` is the socket in
/// `/run/pg`, port 5433), where the driver would append it and try
/// `localhost:5432` first. Each server is tried on its own, so nono knows
/// (and says) which one it reached.
#[derive(Clone, Debug)]
pub struct FleetUrl {
    /// Everything but the servers.
    base: Config,
    hosts: Vec<PgHost>,
    /// One per host, one for all, or none (`PGPORT`, else 5432).
    ports: Vec<u16>,
}

/// One server to try.
#[derive(Clone, Debug)]
struct Server {
    host: PgHost,
    port: u16,
}

impl FleetUrl {
    /// Parses `url` (`postgres://user@host:port/db?sslmode=require`).
    /// Refuses a URL that carries a password.
    pub fn parse(url: &str) -> Result<FleetUrl, FleetError> {
        let full = Config::from_str(url).map_err(|e| FleetError::BadUrl(e.to_string()))?;
        if full.get_password().is_some() {
            return Err(FleetError::PasswordInUrl);
        }
        let parts = UrlParts::split(url)?;
        if parts.params.iter().any(|(k, _)| k == "hostaddr") {
            return Err(FleetError::BadUrl("hostaddr is not supported: name the server with host".to_owned()));
        }
        let base = Config::from_str(&parts.without_servers()).map_err(|e| FleetError::BadUrl(e.to_string()))?;
        // The query's servers, split as libpq splits them.
        let q_hosts: Vec<PgHost> = parts
            .values("host")
            .flat_map(|v| v.split(','))
            .map(|h| if h.starts_with('/') { PgHost::Unix(PathBuf::from(h)) } else { PgHost::Tcp(h.to_owned()) })
            .collect();
        let q_ports = parts
            .values("port")
            .flat_map(|v| v.split(','))
            .map(|p| if p.is_empty() { Ok(5432) } else { p.parse::<u16>() })
            .collect::<Result<Vec<u16>, _>>()
            .map_err(|_| FleetError::BadUrl("a port is not a number from 1 to 65535".to_owned()))?;
        // The driver put the authority's hosts first (then one per `host`
        // parameter, unsplit) and the authority's ports first (one per
        // host, 5432 where none was written; then the query's, split).
        let authority_hosts = &full.get_hosts()[..full.get_hosts().len().saturating_sub(parts.values("host").count())];
        let authority_ports = &full.get_ports()[..full.get_ports().len().saturating_sub(q_ports.len())];
        let hosts = if q_hosts.is_empty() { authority_hosts.to_vec() } else { q_hosts };
        let ports = if !q_ports.is_empty() {
            q_ports
        } else if parts.authority_has_port() {
            authority_ports.to_vec()
        } else {
            Vec::new()
        };
        if ports.len() > 1 && ports.len() != hosts.len().max(1) {
            return Err(FleetError::BadUrl(format!("{} hosts but {} ports", hosts.len(), ports.len())));
        }
        Ok(FleetUrl { base, hosts, ports })
    }

    /// The servers to try, in order, with `PGHOST`/`PGPORT` filling what
    /// the URL leaves out (as libpq does).
    fn servers(&self) -> Vec<Server> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let hosts: Vec<PgHost> = if self.hosts.is_empty() {
            let spec = env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".to_owned());
            spec.split(',')
                .map(|h| if h.starts_with('/') { PgHost::Unix(PathBuf::from(h)) } else { PgHost::Tcp(h.to_owned()) })
                .collect()
        } else {
            self.hosts.clone()
        };
        let default_port = env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432);
        hosts
            .into_iter()
            .enumerate()
            .map(|(i, host)| {
                let port = match self.ports.as_slice() {
                    [] => default_port,
                    [one] => *one,
                    many => many.get(i).copied().unwrap_or(default_port),
                };
                Server { host, port }
            })
            .collect()
    }

    /// The database and role, as the server will see them.
    fn who(&self) -> (String, String) {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let user = self
            .base
            .get_user()
            .map(ToOwned::to_owned)
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_owned());
        let db = self.base.get_dbname().map(ToOwned::to_owned).or_else(|| env("PGDATABASE")).unwrap_or_else(|| user.clone());
        (user, db)
    }

    /// Where nono would connect, for messages (no credentials): the first
    /// server, or all of them when the URL lists several. After
    /// connecting, [`Connected::target`] names the one reached.
    #[must_use]
    pub fn target(&self) -> String {
        let servers = self.servers();
        let names: Vec<String> = servers.iter().map(|s| self.describe(s)).collect();
        names.join(" or ")
    }

    fn describe(&self, s: &Server) -> String {
        let (user, db) = self.who();
        let at = match &s.host {
            PgHost::Tcp(h) if h.contains(':') => format!("[{h}]:{}", s.port),
            PgHost::Tcp(h) => format!("{h}:{}", s.port),
            PgHost::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), s.port),
        };
        format!("database {db} at {at} as role {user}")
    }

    /// The full configuration for one server: user and database defaults
    /// from `PG*` variables like libpq, and the password from
    /// `PGPASSWORD` or the password file.
    fn resolved(&self, server: &Server) -> Config {
        let mut c = self.base.clone();
        match &server.host {
            PgHost::Tcp(h) => c.host(h),
            PgHost::Unix(p) => c.host_path(p),
        };
        c.port(server.port);
        let (user, db) = self.who();
        c.user(&user);
        c.dbname(&db);
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(pw) = env("PGPASSWORD") {
            c.password(pw);
        } else if let Some(pw) = pgpass(&c) {
            c.password(pw);
        }
        c
    }
}

/// A connection and the server it reached.
pub struct Connected {
    pub client: Client,
    /// The server, database and role, for messages (no credentials).
    pub target: String,
}

/// A URL cut into its parts, to rebuild it without its servers.
struct UrlParts<'a> {
    scheme: &'a str,
    /// `user@`, or empty.
    user: &'a str,
    /// `host:port,host2` as written.
    authority: &'a str,
    /// `/db`, or empty.
    path: &'a str,
    /// Query parameters, decoded.
    params: Vec<(String, String)>,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Result<UrlParts<'a>, FleetError> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| FleetError::BadUrl("expected postgres://...".to_owned()))?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (netloc, path) = before_query.find('/').map_or((before_query, ""), |i| before_query.split_at(i));
        let (user, authority) = netloc.rfind('@').map_or(("", netloc), |i| (&netloc[..=i], &netloc[i + 1..]));
        let mut params = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.push((percent_decode(k)?, percent_decode(v)?));
        }
        Ok(UrlParts { scheme, user, authority, path, params })
    }

    fn values(&self, key: &'a str) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether the authority gives a port (`h:5433`, `[::1]:5433`).
    fn authority_has_port(&self) -> bool {
        self.authority.split(',').any(|chunk| chunk.rsplit_once(']').map_or(chunk, |(_, tail)| tail).contains(':'))
    }

    /// The URL without host and port, in the authority or the query.
    fn without_servers(&self) -> String {
        let mut out = format!("{}://{}{}", self.scheme, self.user, self.path);
        let kept: Vec<String> = self
            .params
            .iter()
            .filter(|(k, _)| k != "host" && k != "port")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
        out
    }
}

fn percent_decode(s: &str) -> Result<String, FleetError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(b) = hex else { return Err(FleetError::BadUrl(format!("bad percent escape in {s:?}"))) };
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| FleetError::BadUrl(format!("{s:?} is not UTF-8 once decoded")))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("%{b:02X}"));
        }
    }
    out
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

/// Connects, with TLS as `sslmode` asks (default `prefer`), to the first
/// server that answers, in the URL's order. `require` encrypts without
/// verifying the server's certificate, like libpq.
pub fn connect(url: &FleetUrl) -> Result<Connected, FleetError> {
    let mut last = None;
    for server in url.servers() {
        let config = url.resolved(&server);
        let target = url.describe(&server);
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
        match result {
            Ok(client) => return Ok(Connected { client, target }),
            Err(source) => last = Some(FleetError::Connect { target, source }),
        }
    }
    Err(last.unwrap_or_else(|| FleetError::BadUrl("no server to connect to".to_owned())))
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

/// Applies the missing migrations, each in one transaction with its
/// version row; concurrent migrators wait on an advisory lock. Returns the
/// versions applied.
///
/// Least privilege: schema `nono` is created only when it does not exist
/// (`CREATE SCHEMA IF NOT EXISTS` needs `CREATE` on the whole database
/// even when the schema is there), so the README's admin role needs only
/// to own the schema a DBA made for it. Nothing is created when nothing is
/// missing, so `--migrate` on an up-to-date fleet needs no right at all.
pub fn migrate(client: &mut Client) -> Result<Vec<i32>, FleetError> {
    let what = "migrating the fleet schema";
    let mut applied = Vec::new();
    let mut tx = client.transaction().map_err(FleetError::pg(what))?;
    // Any fixed key: "nono" in ASCII.
    tx.execute("SELECT pg_advisory_xact_lock(1852796783)", &[]).map_err(FleetError::pg(what))?;
    let row = tx
        .query_one(
            "SELECT current_user::text, current_database()::text,              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'nono'),              to_regclass('nono.schema_migrations') IS NOT NULL",
            &[],
        )
        .map_err(FleetError::pg(what))?;
    let (role, database, schema, table): (String, String, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let refused = |e: postgres::Error, role: &str, database: &str, schema: bool| {
        if e.code() != Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
            return FleetError::pg(what)(e);
        }
        let (what, fix) = if schema {
            (
                "tables in schema nono",
                format!("migrate as the role that owns schema nono, or as a DBA run `ALTER SCHEMA nono OWNER TO {role}` once"),
            )
        } else {
            ("schema nono", format!("as a DBA, run `CREATE SCHEMA nono AUTHORIZATION {role}` in database {database} once"))
        };
        FleetError::MigrateRefused { role: role.to_owned(), database: database.to_owned(), what, fix, source: e }
    };
    if !schema {
        tx.batch_execute("CREATE SCHEMA nono").map_err(|e| refused(e, &role, &database, false))?;
    }
    let found: i32 = if table {
        tx.query_one("SELECT coalesce(max(version), 0) FROM nono.schema_migrations", &[]).map_err(FleetError::pg(what))?.get(0)
    } else {
        0
    };
    if found > SCHEMA_VERSION {
        return Err(FleetError::TooNew { found, needed: SCHEMA_VERSION });
    }
    if !table {
        tx.batch_execute(
            "CREATE TABLE nono.schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .map_err(|e| refused(e, &role, &database, true))?;
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).map_err(|e| match refused(e, &role, &database, true) {
            FleetError::Sql { source, .. } => FleetError::pg(format!("applying fleet migration {version}"))(source),
            other => other,
        })?;
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
    fn query_string_servers_replace_the_authoritys_as_in_libpq() {
        let target = |url: &str| FleetUrl::parse(url).expect(url).target();
        assert_eq!(
            target("postgres://u@localhost/audit?host=/run/pg&port=5433"),
            "database audit at /run/pg/.s.PGSQL.5433 as role u"
        );
        assert_eq!(
            target("postgres://u@localhost:5433/audit?host=%2Frun%2Fpg"),
            "database audit at /run/pg/.s.PGSQL.5433 as role u"
        );
        assert_eq!(target("postgres://u@db:6000/audit?port=6001&sslmode=require"), "database audit at db:6001 as role u");
        assert_eq!(target("postgres://u@db:6000/audit?host=other"), "database audit at other:6000 as role u");
        assert_eq!(target("postgres://u@db.example:6000/audit?sslmode=require"), "database audit at db.example:6000 as role u");
        assert_eq!(target("postgres://u@[::1]:6000/audit"), "database audit at [::1]:6000 as role u");
        assert_eq!(
            target("postgres://u@x:7/audit?host=a,/run/pg&port=1,2"),
            "database audit at a:1 as role u or database audit at /run/pg/.s.PGSQL.2 as role u"
        );
        assert_eq!(target("postgres://u@a:1,b:2/audit"), "database audit at a:1 as role u or database audit at b:2 as role u");
        let u = FleetUrl::parse("postgres://u@h:1/audit?sslmode=require&application_name=x%20y").expect("parses");
        assert_eq!(u.base.get_ssl_mode(), SslMode::Require, "other parameters are kept");
        assert_eq!(u.base.get_application_name(), Some("x y"));
        assert!(matches!(FleetUrl::parse("postgres://u@h/db?hostaddr=10.0.0.1"), Err(FleetError::BadUrl(_))));
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
