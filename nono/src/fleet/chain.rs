//! The audit hash chain as the fleet holds it (fleet schema 2): each
//! session's chain columns, its events with their links, and its seals,
//! read back so `nono audit verify --db postgres://...` recomputes the
//! chain with the same [`Verifier`] as the local store.

use super::read::{EVENT_SELECT, FleetSession, event_from_row};
use super::{Fleet, FleetError};
use crate::store::chain::Hash;
use crate::store::{ChainCheck, ChainMeta, Seal, Verifier};

/// A stored digest column: NULL, or exactly 32 bytes.
fn hash(v: Option<Vec<u8>>, what: &str, id: i64) -> Result<Option<Hash>, FleetError> {
    v.map(|b| Hash::try_from(b.as_slice()).map_err(|_| FleetError::Corrupt(format!("session {id}: {what} is not 32 bytes"))))
        .transpose()
}

impl Fleet {
    /// The chain columns of fleet session `id`.
    pub fn chain_meta(&mut self, id: i64) -> Result<ChainMeta, FleetError> {
        let row = self
            .client
            .query_opt("SELECT chain_head, chain_state, chain_count, chain_root FROM nono.sessions WHERE id = $1", &[&id])
            .map_err(FleetError::pg("reading a fleet session's chain"))?
            .ok_or_else(|| FleetError::UnknownSession(id.to_string()))?;
        let count: Option<i64> = row.get(2);
        Ok(ChainMeta {
            head: hash(row.get(0), "chain_head", id)?,
            state: hash(row.get(1), "chain_state", id)?,
            count: count
                .map(|c| u64::try_from(c).map_err(|_| FleetError::Corrupt(format!("session {id}: chain_count {c}"))))
                .transpose()?,
            root: hash(row.get(3), "chain_root", id)?,
        })
    }

    /// The seals pushed for fleet session `id`, oldest first.
    pub fn seals(&mut self, id: i64) -> Result<Vec<Seal>, FleetError> {
        let rows = self
            .client
            .query(
                "SELECT sealed_ns, message, signature FROM nono.session_seals WHERE session_id = $1 ORDER BY sealed_ns, signature",
                &[&id],
            )
            .map_err(FleetError::pg("reading a fleet session's seals"))?;
        Ok(rows.iter().map(|r| Seal { sealed_ns: r.get(0), message: r.get(1), signature: r.get(2) }).collect())
    }

    /// Recomputes fleet session `which`'s chain (an id, or `last`) from the
    /// rows the server holds.
    pub fn verify_chain(&mut self, which: &str) -> Result<(FleetSession, ChainCheck), FleetError> {
        let session = self.session(which)?;
        let id = session.session.id;
        let meta = self.chain_meta(id)?;
        let mut v = Verifier::new(session.session.clone(), meta);
        let what = "reading fleet events";
        let columns = EVENT_SELECT
            .strip_suffix(" FROM nono.events e")
            .ok_or_else(|| FleetError::Corrupt("internal: the fleet event column list changed shape".into()))?;
        let mut tx = self.client.transaction().map_err(FleetError::pg(what))?;
        let stmt = tx
            .prepare(&format!("{columns}, e.chain FROM nono.events e WHERE e.session_id = $1 ORDER BY e.local_id"))
            .map_err(FleetError::pg(what))?;
        let portal = tx.bind(&stmt, &[&id]).map_err(FleetError::pg(what))?;
        loop {
            let rows = tx.query_portal(&portal, 10_000).map_err(FleetError::pg(what))?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let row = event_from_row(r)?;
                v.event(row.id, r.get(24), &row.event);
            }
        }
        tx.commit().map_err(FleetError::pg(what))?;
        Ok((session, v.finish()))
    }
}
