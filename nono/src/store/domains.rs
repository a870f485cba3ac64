//! Domain rows (schema 7, issue 23): what nono's network proxy decided
//! during a `run --audit`, and the DNS questions a recording saw. Kept in
//! `domain_events`, apart from the syscall events (see the migration).
//! This module owns that table: appends in one transaction per batch and
//! the queries `audit query --domain`, the run summary and the learner
//! use. It knows nothing of the proxy's types; the caller maps them.

use rusqlite::params;

use super::{Store, StoreError};

/// Where a domain row comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainSource {
    /// A CONNECT tunnel through the proxy.
    Connect,
    /// A plain-HTTP request through the proxy.
    Http,
    /// A request to the proxy's credential endpoint.
    Credential,
    /// A DNS question seen while recording.
    Dns,
}

impl DomainSource {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DomainSource::Connect => "connect",
            DomainSource::Http => "http",
            DomainSource::Credential => "credential",
            DomainSource::Dns => "dns",
        }
    }

    /// The stored spelling back (the fleet store keeps the same words).
    pub fn parse(s: &str) -> Result<DomainSource, StoreError> {
        Ok(match s {
            "connect" => DomainSource::Connect,
            "http" => DomainSource::Http,
            "credential" => DomainSource::Credential,
            "dns" => DomainSource::Dns,
            other => return Err(StoreError::Corrupt(format!("domain row source {other:?}"))),
        })
    }
}

/// One domain row.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DomainEvent {
    pub session_id: i64,
    pub time_ns: i64,
    pub source: DomainSource,
    pub domain: String,
    pub port: u16,
    /// 0 ok, 1 refused by policy, 2 error (the same codes as events).
    pub result: u8,
    pub reason: Option<String>,
    pub addr: Option<String>,
    pub credential: Option<String>,
    pub pid: Option<u32>,
}

impl DomainEvent {
    #[must_use]
    pub fn result_text(&self) -> &'static str {
        match self.result {
            0 => "ok",
            1 => "refused",
            _ => "error",
        }
    }
}

/// Which domain rows to read.
#[derive(Clone, Debug, Default)]
pub struct DomainQuery {
    pub session: Option<i64>,
    /// A name glob: `*.example.com` (any subdomain, not the name itself),
    /// `api.example.com`, or `*` for all.
    pub domain: Option<String>,
    /// Only refused rows.
    pub refused: bool,
    pub limit: Option<u64>,
}

/// Whether `name` matches a `--domain` pattern: exact (case-insensitive),
/// `*.suffix` for names below `suffix`, `*` for every name.
#[must_use]
pub fn domain_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    let pattern = pattern.trim_end_matches('.');
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.len() > suffix.len() + 1 && name.ends_with(suffix) && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
        }
        None => pattern == name,
    }
}

impl Store {
    /// Appends `rows` in one transaction.
    pub fn append_domains(&self, rows: &[DomainEvent]) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction().map_err(StoreError::sql("starting a domain batch"))?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO domain_events (session_id, time_ns, source, domain, port, result, reason, addr, credential, pid) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(StoreError::sql("preparing a domain insert"))?;
            for r in rows {
                st.execute(params![
                    r.session_id,
                    r.time_ns,
                    r.source.as_str(),
                    r.domain,
                    r.port,
                    r.result,
                    r.reason,
                    r.addr,
                    r.credential,
                    r.pid
                ])
                .map_err(StoreError::sql("inserting a domain row"))?;
            }
        }
        tx.commit().map_err(StoreError::sql("committing a domain batch"))
    }

    /// Session `session`'s rows with a local id above `after`, in id
    /// order, each with its id: what `audit push` copies (the id keys the
    /// fleet's copy, so a second push adds nothing).
    pub fn domains_after(&self, session: i64, after: i64) -> Result<Vec<(i64, DomainEvent)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS}, id FROM domain_events WHERE session_id = ?1 AND id > ?2 ORDER BY id"))
            .map_err(StoreError::sql("preparing a domain read"))?;
        let rows = st
            .query_map(params![session, after], |r| Ok((read_row(r)?, r.get::<_, i64>(10)?)))
            .map_err(StoreError::sql("reading domain rows"))?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, id) = row.map_err(StoreError::sql("reading a domain row"))?;
            out.push((id, decode(raw)?));
        }
        Ok(out)
    }

    /// Domain rows in time order. A suffix glob reads the session's rows
    /// and matches here (a session has few).
    pub fn domains(&self, q: &DomainQuery) -> Result<Vec<DomainEvent>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM domain_events WHERE 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(s) = q.session {
            sql.push_str(" AND session_id = ?");
            args.push(s.into());
        }
        if let Some(d) = &q.domain
            && !d.starts_with('*')
        {
            sql.push_str(" AND domain = ?");
            args.push(d.to_ascii_lowercase().trim_end_matches('.').to_owned().into());
        }
        if q.refused {
            sql.push_str(" AND result = 1");
        }
        sql.push_str(" ORDER BY session_id, time_ns, id");
        let mut st = self.conn.prepare(&sql).map_err(StoreError::sql("preparing a domain query"))?;
        let rows = st.query_map(rusqlite::params_from_iter(args), read_row).map_err(StoreError::sql("querying domains"))?;
        let mut out = Vec::new();
        for row in rows {
            let row = decode(row.map_err(StoreError::sql("reading a domain row"))?)?;
            if let Some(d) = &q.domain
                && !domain_matches(d, &row.domain)
            {
                continue;
            }
            out.push(row);
            if q.limit.is_some_and(|l| out.len() as u64 >= l) {
                break;
            }
        }
        Ok(out)
    }
}

/// The columns [`read_row`] reads, in its order.
const COLUMNS: &str = "session_id, time_ns, source, domain, port, result, reason, addr, credential, pid";

/// A row as stored, before its words and ranges are checked.
type Raw = (i64, i64, String, String, i64, i64, Option<String>, Option<String>, Option<String>, Option<i64>);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Raw> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?))
}

fn decode(raw: Raw) -> Result<DomainEvent, StoreError> {
    let (session_id, time_ns, source, domain, port, result, reason, addr, credential, pid) = raw;
    Ok(DomainEvent {
        session_id,
        time_ns,
        source: DomainSource::parse(&source)?,
        domain,
        port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("domain row port {port}")))?,
        result: u8::try_from(result).map_err(|_| StoreError::Corrupt(format!("domain row result {result}")))?,
        reason,
        addr,
        credential,
        pid: pid.and_then(|p| u32::try_from(p).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(session_id: i64, domain: &str, result: u8) -> DomainEvent {
        DomainEvent {
            session_id,
            time_ns: 1,
            source: DomainSource::Connect,
            domain: domain.into(),
            port: 443,
            result,
            reason: (result == 1).then(|| "not in network.allow_domains".into()),
            addr: None,
            credential: None,
            pid: None,
        }
    }

    #[test]
    fn domain_rows_round_trip_and_match_globs() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("a.db")).expect("open");
        let rows = vec![
            row(1, "api.example.com", 0),
            row(1, "evil.example.net", 1),
            row(2, "a.b.example.com", 1),
            row(2, "example.com", 0),
        ];
        store.append_domains(&rows).expect("append");
        let all = store.domains(&DomainQuery::default()).expect("query");
        assert_eq!(all, rows);
        let sub = store.domains(&DomainQuery { domain: Some("*.example.com".into()), ..DomainQuery::default() }).expect("q");
        assert_eq!(sub.iter().map(|r| r.domain.as_str()).collect::<Vec<_>>(), ["api.example.com", "a.b.example.com"]);
        let exact = store.domains(&DomainQuery { domain: Some("Example.COM.".into()), ..DomainQuery::default() }).expect("q");
        assert_eq!(exact.len(), 1);
        let refused = store.domains(&DomainQuery { session: Some(1), refused: true, ..DomainQuery::default() }).expect("q");
        assert_eq!(refused, vec![rows[1].clone()]);
        assert!(!domain_matches("*.example.com", "example.com"));
        assert!(!domain_matches("*.example.com", "badexample.com"));
        assert!(domain_matches("*", ""));
        // What a push copies: one session's rows past a local id, with ids.
        let after = store.domains_after(2, 0).expect("after 0");
        assert_eq!(after.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(), rows[2..]);
        let later = store.domains_after(2, after[0].0).expect("after the first");
        assert_eq!(later, after[1..]);
        assert!(store.domains_after(2, after[1].0).expect("after the last").is_empty());
    }
}
