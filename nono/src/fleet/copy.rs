//! The `PostgreSQL` binary COPY format, encoded by hand for `nono.events`.
//!
//! The driver's row writer blocks on its async runtime once per row, which
//! cost more than everything else in a push; this encodes rows into one
//! buffer and hands the connection large writes instead. Format (`COPY`
//! docs, "Binary Format"): a signature and two zero words, then per row a
//! 16-bit field count and, per field, a 32-bit length (-1 for NULL) and the
//! value in network byte order; a -1 field count ends the data.

use crate::event::Event;
use crate::store::{access_bits, outcome_columns};

/// Signature, flags (no OIDs) and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Columns of a row, as in `push::EVENT_COLUMNS`.
const FIELDS: i16 = 25;

/// A growing buffer of encoded rows.
pub(super) struct CopyBuf {
    pub(super) buf: Vec<u8>,
}

impl CopyBuf {
    pub(super) fn new() -> CopyBuf {
        let mut buf = Vec::with_capacity(1 << 19);
        buf.extend_from_slice(HEADER);
        CopyBuf { buf }
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn i16(&mut self, v: i16) {
        self.buf.extend_from_slice(&2i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn text(&mut self, s: Option<&str>) {
        match s {
            // A field over 2 GiB cannot be a path; encode it as NULL-free
            // text anyway truncated by the server's own limit (1 GB) check.
            Some(s) => {
                self.buf.extend_from_slice(&i32::try_from(s.len()).unwrap_or(i32::MAX).to_be_bytes());
                self.buf.extend_from_slice(s.as_bytes());
            }
            None => self.null(),
        }
    }

    fn opt_i32(&mut self, v: Option<i32>) {
        match v {
            Some(v) => self.i32(v),
            None => self.null(),
        }
    }

    /// Appends one event of fleet session `session` with local id `id` and
    /// chain link `link`.
    pub(super) fn row(&mut self, session: i64, id: i64, link: Option<i32>, e: &Event) {
        let (result, errno, denied_by) = outcome_columns(e.outcome);
        let net = e.net.as_ref();
        self.buf.extend_from_slice(&FIELDS.to_be_bytes());
        self.i64(session);
        self.i64(id);
        self.i64(e.time_ns);
        self.i64(i64::from(e.pid));
        self.i64(i64::from(e.tid));
        self.i64(i64::from(e.ppid));
        self.i64(i64::from(e.uid));
        self.text(Some(&e.comm));
        self.text(e.exe.as_deref());
        self.i16(e.op.code() as i16);
        self.text(e.path.as_deref());
        self.text(e.path2.as_deref());
        self.i16(access_bits(e.access) as i16);
        self.i64(e.arg as i64);
        self.i64(i64::from(e.file_type));
        self.i16(result as i16);
        self.i32(errno as i32);
        match denied_by {
            Some(d) => self.i16(d as i16),
            None => self.null(),
        }
        self.opt_i32(net.map(|n| i32::from(n.family)));
        let addr = net.and_then(|n| n.addr.map(|a| a.to_string()));
        self.text(addr.as_deref());
        self.opt_i32(net.map(|n| i32::from(n.port)));
        self.opt_i32(net.map(|n| i32::from(n.sock_type)));
        self.opt_i32(net.map(|n| i32::from(n.protocol)));
        self.buf.extend_from_slice(&1i32.to_be_bytes());
        self.buf.push(u8::from(e.incomplete));
        self.opt_i32(link);
    }

    /// Appends the end-of-data marker.
    pub(super) fn trailer(&mut self) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
    }
}
