//! Domain rows in the fleet (fleet schema 4, issue 23): pushing a
//! session's rows (what nono's network proxy decided, and DNS questions)
//! and reading them back as the local store's [`DomainEvent`], so `audit
//! query --domain`, `check`, `report` and `export` print the same from
//! either store.
//!
//! A push sends only the rows past the largest local id the fleet holds
//! for the session, in one transaction per session, and the table's key
//! on `(session_id, local_id)` with `ON CONFLICT DO NOTHING` turns a
//! concurrent push's overlap into a no-op: a row lands once. Every push
//! looks at every finished session, so a session pushed before schema 4
//! gets its rows on the next push. Not part of the audit hash chain.

use postgres::Client;
use postgres::types::ToSql;

use super::read::VISIBLE;
use super::{Fleet, FleetError};
use crate::store::{DomainEvent, DomainQuery, DomainSource, Store, domain_matches};

/// Rows per INSERT statement (arrays of this many values per column).
const BATCH: usize = 1000;

/// Copies the domain rows of local session `local` the fleet lacks to
/// fleet session `fleet_id`; returns how many were sent.
pub(super) fn push_domains(client: &mut Client, store: &Store, local: i64, fleet_id: i64) -> Result<u64, FleetError> {
    let what = format!("pushing the domain rows of session {local}");
    let after: Option<i64> = client
        .query_one("SELECT max(local_id) FROM nono.domain_events WHERE session_id = $1", &[&fleet_id])
        .map_err(FleetError::pg(what.clone()))?
        .get(0);
    let rows = store.domains_after(local, after.unwrap_or(0))?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = client.transaction().map_err(FleetError::pg(what.clone()))?;
    let stmt = tx
        .prepare(
            "INSERT INTO nono.domain_events (session_id, local_id, time_ns, source, domain, port, result, reason, addr, \
             credential, pid) SELECT $1::bigint, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::int[], \
             $7::smallint[], $8::text[], $9::text[], $10::text[], $11::bigint[]) ON CONFLICT DO NOTHING",
        )
        .map_err(FleetError::pg(what.clone()))?;
    for chunk in rows.chunks(BATCH) {
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let times: Vec<i64> = chunk.iter().map(|(_, r)| r.time_ns).collect();
        let sources: Vec<&str> = chunk.iter().map(|(_, r)| r.source.as_str()).collect();
        let domains: Vec<&str> = chunk.iter().map(|(_, r)| r.domain.as_str()).collect();
        let ports: Vec<i32> = chunk.iter().map(|(_, r)| i32::from(r.port)).collect();
        let results: Vec<i16> = chunk.iter().map(|(_, r)| i16::from(r.result)).collect();
        let reasons: Vec<Option<&str>> = chunk.iter().map(|(_, r)| r.reason.as_deref()).collect();
        let addrs: Vec<Option<&str>> = chunk.iter().map(|(_, r)| r.addr.as_deref()).collect();
        let creds: Vec<Option<&str>> = chunk.iter().map(|(_, r)| r.credential.as_deref()).collect();
        let pids: Vec<Option<i64>> = chunk.iter().map(|(_, r)| r.pid.map(i64::from)).collect();
        let params: [&(dyn ToSql + Sync); 11] =
            [&fleet_id, &ids, &times, &sources, &domains, &ports, &results, &reasons, &addrs, &creds, &pids];
        tx.execute(&stmt, &params).map_err(FleetError::pg(what.clone()))?;
    }
    tx.commit().map_err(FleetError::pg(what))?;
    Ok(rows.len() as u64)
}

fn row_of(r: &postgres::Row) -> Result<DomainEvent, FleetError> {
    let session_id: i64 = r.get(0);
    let bad = |what: &str| FleetError::Corrupt(format!("session {session_id}: domain row {what}"));
    let source: String = r.get(2);
    Ok(DomainEvent {
        session_id,
        time_ns: r.get(1),
        source: DomainSource::parse(&source).map_err(|_| bad("source"))?,
        domain: r.get(3),
        port: u16::try_from(r.get::<_, i32>(4)).map_err(|_| bad("port"))?,
        result: u8::try_from(r.get::<_, i16>(5)).map_err(|_| bad("result"))?,
        reason: r.get(6),
        addr: r.get(7),
        credential: r.get(8),
        pid: r.get::<_, Option<i64>>(9).and_then(|p| u32::try_from(p).ok()),
    })
}

impl Fleet {
    /// Domain rows of completely pushed sessions (of the chosen host), in
    /// session then time order, as [`Store::domains`] gives them: `q`'s
    /// session is a fleet id; an exact name is looked up by the index, a
    /// `*.suffix` glob reads the chosen sessions' rows and matches here.
    pub fn domains(&mut self, q: &DomainQuery) -> Result<Vec<DomainEvent>, FleetError> {
        let exact =
            q.domain.as_deref().filter(|d| !d.starts_with('*')).map(|d| d.to_ascii_lowercase().trim_end_matches('.').to_owned());
        let sql = format!(
            "SELECT d.session_id, d.time_ns, d.source, d.domain, d.port, d.result, d.reason, d.addr, d.credential, d.pid \
             FROM nono.domain_events d WHERE d.session_id IN (SELECT s.id FROM nono.sessions s WHERE {VISIBLE}) \
             AND ($2::bigint IS NULL OR d.session_id = $2) AND ($3::text IS NULL OR d.domain = $3) \
             AND (NOT $4 OR d.result = 1) ORDER BY d.session_id, d.time_ns, d.local_id"
        );
        let rows = self
            .client
            .query(&sql, &[&self.host, &q.session, &exact, &q.refused])
            .map_err(FleetError::pg("querying fleet domain rows"))?;
        let mut out = Vec::new();
        for r in &rows {
            let row = row_of(r)?;
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
