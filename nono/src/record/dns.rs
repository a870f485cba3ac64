//! Parsing the DNS messages the recorder captured (`op::DNS`, issue 23):
//! the question's name and type, and an answer's response code and A/AAAA
//! addresses. The kernel only copies bytes; every check is here.
//!
//! Threat model: the bytes come from the traced (possibly hostile) process
//! or from whatever answered it, and are cut at `dns::CAPTURE` bytes. The
//! parser never loops without bound (a compression pointer must point
//! strictly backwards, at most [`MAX_JUMPS`] of them per name), never
//! indexes out of range, and accepts only names a profile could hold:
//! labels of 1 to 63 bytes of letters, digits, `-` and `_`, at most 253
//! characters in all. Anything else is an error, so a name that reaches
//! the store or a profile is plain lower-case ASCII. Pure: no I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name.
pub const MAX_JUMPS: usize = 16;
/// Longest name in text form (RFC 1035's 255 wire bytes).
pub const MAX_NAME: usize = 253;
/// Longest label.
pub const MAX_LABEL: usize = 63;
/// Answer records read from one message.
pub const MAX_ANSWERS: usize = 32;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;

/// Why a captured message was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DnsError {
    #[error("message of {0} bytes is shorter than a DNS header")]
    Short(usize),
    #[error("message is not a standard query (opcode {0})")]
    Opcode(u8),
    #[error("message has no question")]
    NoQuestion,
    #[error("name runs past the end of the message")]
    Truncated,
    #[error("name longer than 253 characters")]
    NameTooLong,
    #[error("byte {0:#04x} is not allowed in a host name")]
    BadByte(u8),
    #[error("compression pointer that does not point backwards, or too many of them")]
    BadPointer,
    #[error("label type {0:#04x} is not supported")]
    LabelType(u8),
    #[error("the question is the root name")]
    Root,
}

/// What a captured message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// A response (QR set).
    pub response: bool,
    pub rcode: u8,
    pub qtype: u16,
    /// The first question's name: lower-case, no trailing dot.
    pub name: String,
    /// A response's A and AAAA addresses, in order (at most
    /// [`MAX_ANSWERS`]; those cut off by the capture are missing).
    pub addrs: Vec<IpAddr>,
}

/// Parses a captured message. Over TCP the message may start with its
/// 2-byte length (when the same call carried both): that form is tried
/// first when the length fits what was captured (`truncated`: the capture
/// was cut, so the declared length may exceed it).
pub fn parse(bytes: &[u8], tcp: bool, truncated: bool) -> Result<Message, DnsError> {
    if tcp && bytes.len() >= 2 {
        let declared = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let rest = bytes.len() - 2;
        if (declared == rest || (truncated && declared > rest))
            && let Ok(m) = parse_message(&bytes[2..])
        {
            return Ok(m);
        }
    }
    parse_message(bytes)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses one message without a length prefix.
pub fn parse_message(m: &[u8]) -> Result<Message, DnsError> {
    if m.len() < 12 {
        return Err(DnsError::Short(m.len()));
    }
    let flags = u16::from_be_bytes([m[2], m[3]]);
    let opcode = ((flags >> 11) & 0xf) as u8;
    if opcode != 0 {
        return Err(DnsError::Opcode(opcode));
    }
    let response = flags & 0x8000 != 0;
    let rcode = (flags & 0xf) as u8;
    let qdcount = u16::from_be_bytes([m[4], m[5]]);
    let ancount = u16::from_be_bytes([m[6], m[7]]);
    if qdcount == 0 {
        return Err(DnsError::NoQuestion);
    }
    let (name, mut pos) = read_name(m, 12)?;
    if name.is_empty() {
        return Err(DnsError::Root);
    }
    let qtype = be16(m, pos).ok_or(DnsError::Truncated)?;
    pos += 4;
    let mut addrs = Vec::new();
    if response && rcode == 0 {
        // Further questions (rare) are skipped; a cut capture ends the
        // answers early rather than failing the message.
        for _ in 1..qdcount {
            match skip_name(m, pos) {
                Some(p) => pos = p + 4,
                None => return Ok(Message { response, rcode, qtype, name, addrs }),
            }
        }
        for _ in 0..usize::from(ancount).min(MAX_ANSWERS) {
            let Some(p) = skip_name(m, pos) else { break };
            let (Some(rtype), Some(rdlen)) = (be16(m, p), be16(m, p + 8)) else { break };
            let start = p + 10;
            let end = start + usize::from(rdlen);
            let Some(rdata) = m.get(start..end) else { break };
            match (rtype, rdata.len()) {
                (TYPE_A, 4) => addrs.push(IpAddr::V4(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))),
                (TYPE_AAAA, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(rdata);
                    addrs.push(IpAddr::V6(Ipv6Addr::from(a)));
                }
                _ => {}
            }
            pos = end;
        }
    }
    Ok(Message { response, rcode, qtype, name, addrs })
}

/// Reads the name at `at`: its checked text and the position after it.
fn read_name(m: &[u8], at: usize) -> Result<(String, usize), DnsError> {
    let mut out = String::new();
    let mut pos = at;
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 => {}
            0xc0 => {
                let target = usize::from(be16(m, pos).ok_or(DnsError::Truncated)? & 0x3fff);
                // Strictly backwards: every jump lowers `pos`, so no loop.
                if target >= pos || jumps >= MAX_JUMPS {
                    return Err(DnsError::BadPointer);
                }
                jumps += 1;
                after.get_or_insert(pos + 2);
                pos = target;
                continue;
            }
            t => return Err(DnsError::LabelType(t)),
        }
        let len = usize::from(len);
        if len == 0 {
            return Ok((out, after.unwrap_or(pos + 1)));
        }
        // `len & 0xc0 == 0` above: at most MAX_LABEL (63) bytes.
        debug_assert!(len <= MAX_LABEL);
        let label = m.get(pos + 1..pos + 1 + len).ok_or(DnsError::Truncated)?;
        if !out.is_empty() {
            out.push('.');
        }
        for &b in label {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(DnsError::BadByte(b));
            }
            out.push(char::from(b.to_ascii_lowercase()));
        }
        if out.len() > MAX_NAME {
            return Err(DnsError::NameTooLong);
        }
        pos += 1 + len;
    }
}

/// The position after a (possibly compressed) name, without reading it.
fn skip_name(m: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *m.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xc0 => return Some(pos + 2),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (type A), as glibc sends it.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    /// An answer to `query(name)` with A records (compressed owner names).
    fn answer(name: &str, ips: &[[u8; 4]], rcode: u8) -> Vec<u8> {
        let mut m = query(name, TYPE_A);
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = ips.len() as u8;
        for ip in ips {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(ip);
        }
        m
    }

    #[test]
    fn a_question_gives_its_lower_case_name_and_type() {
        let m = parse(&query("Api.Example.COM", TYPE_AAAA), false, false).expect("parse");
        assert_eq!((m.name.as_str(), m.qtype, m.response), ("api.example.com", TYPE_AAAA, false));
        assert!(m.addrs.is_empty());
    }

    #[test]
    fn an_answer_gives_its_addresses_and_stops_cleanly_when_cut() {
        let a = answer("dns-only.test", &[[127, 0, 0, 1], [10, 0, 0, 2]], 0);
        let m = parse(&a, false, false).expect("parse");
        assert_eq!(m.addrs, vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([10, 0, 0, 2])]);
        // Cut inside the second record: the first address is kept.
        let m = parse(&a[..a.len() - 3], false, true).expect("parse");
        assert_eq!(m.addrs, vec![IpAddr::from([127, 0, 0, 1])]);
        let nx = parse(&answer("gone.test", &[], 3), false, false).expect("parse");
        assert_eq!((nx.rcode, nx.addrs.len()), (3, 0));
    }

    #[test]
    fn tcp_messages_with_and_without_their_length_prefix() {
        let q = query("tcp.test", TYPE_A);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        assert_eq!(parse(&framed, true, false).expect("framed").name, "tcp.test");
        assert_eq!(parse(&q, true, false).expect("bare").name, "tcp.test");
        // A cut capture: the declared length exceeds what was captured.
        let mut big = framed.clone();
        big[0] = 0x10;
        assert_eq!(parse(&big, true, true).expect("cut").name, "tcp.test");
    }

    #[test]
    fn hostile_messages_are_refused() {
        // A pointer to itself (a loop), and a forward pointer.
        let mut m = query("a.test", TYPE_A);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&m, false, false), Err(DnsError::BadPointer));
        m[13] = 40;
        assert_eq!(parse(&m, false, false), Err(DnsError::BadPointer));
        // Two labels pointing at each other through the answer section
        // cannot loop either: only strictly backwards jumps are followed.
        let mut ptrs = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'x', 0xc0, 12];
        ptrs.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse(&ptrs, false, false), Err(DnsError::BadPointer));
        // A label over 63 bytes (its length byte then sets the label type
        // bits, which no standard name uses), a name over 253.
        let long = "a".repeat(64);
        assert_eq!(parse(&query(&long, 1), false, false), Err(DnsError::LabelType(0x40)));
        let name = ["b".repeat(63).as_str(); 5].join(".");
        assert_eq!(parse(&query(&name, 1), false, false), Err(DnsError::NameTooLong));
        // Non-ASCII, a dot or a NUL inside a label, control characters.
        for bad in ["caf\u{e9}.test", "a\0b.test", "a\x1b[2Jb.test"] {
            assert!(matches!(parse(&query(bad, 1), false, false), Err(DnsError::BadByte(_))), "{bad:?}");
        }
        let mut dotted = query("ab.test", 1);
        dotted[14] = b'.';
        assert_eq!(parse(&dotted, false, false), Err(DnsError::BadByte(b'.')));
        // Garbage, an empty question, the root, other opcodes, label types.
        assert_eq!(parse(&[1, 2, 3], false, false), Err(DnsError::Short(3)));
        let mut none = query("a.test", 1);
        none[5] = 0;
        assert_eq!(parse(&none, false, false), Err(DnsError::NoQuestion));
        assert_eq!(parse(&query("", 1), false, false), Err(DnsError::Root));
        let mut update = query("a.test", 1);
        update[2] = 0x28;
        assert_eq!(parse(&update, false, false), Err(DnsError::Opcode(5)));
        let mut ext = query("a.test", 1);
        ext[12] = 0x41;
        assert_eq!(parse(&ext, false, false), Err(DnsError::LabelType(0x40)));
        // Truncated in the middle of a label.
        let q = query("truncated.test", 1);
        assert_eq!(parse(&q[..16], false, true), Err(DnsError::Truncated));
    }

    /// Every byte string of a few lengths either parses to a clean name or
    /// fails: no panic, no unbounded loop.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_u32;
        for len in 0..300 {
            for _ in 0..20 {
                let m: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        (seed & 0xff) as u8
                    })
                    .collect();
                if let Ok(msg) = parse(&m, len % 2 == 0, false) {
                    assert!(msg.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)));
                    assert!(msg.name.len() <= MAX_NAME);
                }
            }
        }
    }
}
