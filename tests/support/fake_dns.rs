//! A fake DNS server on 127.0.0.1:53, UDP and TCP, for the DNS learning
//! test (issue 23): it answers A questions for its table's names with
//! their addresses, AAAA questions for them with no records (NOERROR),
//! and every other name with NXDOMAIN. Its threads run for the rest of the
//! test process (the sockets are closed when it exits).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Arc;

pub struct FakeDns {
    /// Names each protocol was asked, in order (lower-case).
    pub asked: Arc<std::sync::Mutex<Vec<(String, &'static str)>>>,
}

impl FakeDns {
    /// Binds 127.0.0.1:53 (UDP and TCP); `None` when the port is taken.
    pub fn start(table: &[(&str, Ipv4Addr)]) -> Option<FakeDns> {
        let udp = UdpSocket::bind("127.0.0.1:53").ok()?;
        let tcp = TcpListener::bind("127.0.0.1:53").ok()?;
        let table: Arc<HashMap<String, Ipv4Addr>> = Arc::new(table.iter().map(|(n, a)| ((*n).to_owned(), *a)).collect());
        let asked: Arc<std::sync::Mutex<Vec<(String, &'static str)>>> = Arc::default();
        let (t, a) = (Arc::clone(&table), Arc::clone(&asked));
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                if let Some((reply, name)) = answer(&buf[..n], &t) {
                    a.lock().expect("lock").push((name, "udp"));
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        let (t, a) = (table, Arc::clone(&asked));
        std::thread::spawn(move || {
            for mut conn in tcp.incoming().flatten() {
                let mut len = [0u8; 2];
                if conn.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if conn.read_exact(&mut msg).is_err() {
                    continue;
                }
                if let Some((reply, name)) = answer(&msg, &t) {
                    a.lock().expect("lock").push((name, "tcp"));
                    let mut framed = u16::try_from(reply.len()).expect("short").to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    let _ = conn.write_all(&framed);
                }
            }
        });
        Some(FakeDns { asked })
    }
}

/// The reply to a query, and the name it asked (uncompressed, as clients
/// send questions).
fn answer(q: &[u8], table: &HashMap<String, Ipv4Addr>) -> Option<(Vec<u8>, String)> {
    if q.len() < 12 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*q.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + len)?).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(pos)?, *q.get(pos + 1)?]);
    let question_end = pos + 4;
    let name = labels.join(".");
    let mut r = Vec::with_capacity(question_end + 16);
    r.extend_from_slice(&q[..2]);
    let addr = table.get(&name);
    let rcode = if addr.is_some() { 0 } else { 3 };
    r.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
    r.extend_from_slice(q.get(12..question_end)?);
    if let (Some(a), 1) = (addr, qtype) {
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&a.octets());
    }
    Some((r, name))
}
