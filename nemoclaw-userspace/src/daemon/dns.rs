//! A minimal DNS stub client: A and AAAA queries over UDP (TCP when truncated), with the
//! answers' TTLs, which host-name rules need for refreshing. Nameservers come from a
//! resolv.conf-format file.

use std::{
    io::{self, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const TIMEOUT: Duration = Duration::from_secs(3);

/// The `nameserver` lines of a resolv.conf text, as port-53 socket addresses.
#[must_use]
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// One resolved address and how long it may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub addr: IpAddr,
    pub ttl: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("no nameserver configured")]
    NoServer,
    #[error("invalid name {0:?}")]
    BadName(String),
    #[error("{server}: {source}")]
    Io {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("{server}: malformed reply")]
    Malformed { server: SocketAddr },
    #[error("{server}: {name} does not exist (NXDOMAIN)")]
    NxDomain { server: SocketAddr, name: String },
    #[error("{server}: server failure (rcode {rcode})")]
    ServerFailure { server: SocketAddr, rcode: u8 },
}

fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&l| (1..=63).contains(&l));
        let len = len.ok_or_else(|| DnsError::BadName(name.to_owned()))?;
        q.push(len);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// Skips a (possibly compressed) name; returns the offset after it.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *msg.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => return Some(pos + 2),
            l => pos += 1 + usize::from(l),
        }
    }
    None
}

fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Parsed reply: (truncated, rcode, answers of `qtype`).
fn decode_reply(msg: &[u8], id: u16, qtype: u16) -> Option<(bool, u8, Vec<Answer>)> {
    if be16(msg, 0)? != id || msg.get(2)? & 0x80 == 0 {
        return None;
    }
    let truncated = msg[2] & 0x02 != 0;
    let rcode = msg.get(3)? & 0x0f;
    let qd = be16(msg, 4)?;
    let an = be16(msg, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        pos = skip_name(msg, pos)?;
        let rtype = be16(msg, pos)?;
        let ttl = u32::from_be_bytes(msg.get(pos + 4..pos + 8)?.try_into().ok()?);
        let rdlen = usize::from(be16(msg, pos + 8)?);
        let data = msg.get(pos + 10..pos + 10 + rdlen)?;
        pos += 10 + rdlen;
        let addr = match (rtype, data.len()) {
            (TYPE_A, 4) if rtype == qtype => {
                IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))
            }
            (TYPE_AAAA, 16) if rtype == qtype => {
                let octets: [u8; 16] = data.try_into().ok()?;
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            _ => continue, // CNAMEs and other records of the chain
        };
        answers.push(Answer { addr, ttl });
    }
    Some((truncated, rcode, answers))
}

fn query_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

fn exchange_udp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(io::Error::other)?;
    let sock = UdpSocket::bind(bind)?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.connect(server)?;
    sock.send(query)?;
    let mut buf = vec![0; 4096];
    let n = sock.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn exchange_tcp(server: SocketAddr, query: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&server, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let len = u16::try_from(query.len()).map_err(io::Error::other)?;
    s.write_all(&[&len.to_be_bytes()[..], query].concat())?;
    let mut len = [0; 2];
    s.read_exact(&mut len)?;
    let mut buf = vec![0; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf)?;
    Ok(buf)
}

fn query_one(server: SocketAddr, name: &str, qtype: u16) -> Result<Vec<Answer>, DnsError> {
    let id = query_id();
    let query = encode_query(id, name, qtype)?;
    let io_err = |source| DnsError::Io { server, source };
    let reply = exchange_udp(server, &query).map_err(io_err)?;
    let (mut truncated, mut rcode, mut answers) =
        decode_reply(&reply, id, qtype).ok_or(DnsError::Malformed { server })?;
    if truncated {
        let reply = exchange_tcp(server, &query).map_err(io_err)?;
        (truncated, rcode, answers) =
            decode_reply(&reply, id, qtype).ok_or(DnsError::Malformed { server })?;
        let _ = truncated;
    }
    match rcode {
        0 => Ok(answers),
        3 => Err(DnsError::NxDomain {
            server,
            name: name.to_owned(),
        }),
        rcode => Err(DnsError::ServerFailure { server, rcode }),
    }
}

/// All A and AAAA records of `name`, from the first server that answers.
pub fn resolve(servers: &[SocketAddr], name: &str) -> Result<Vec<Answer>, DnsError> {
    let mut last = DnsError::NoServer;
    for &server in servers {
        let v4 = query_one(server, name, TYPE_A);
        let v6 = query_one(server, name, TYPE_AAAA);
        match (v4, v6) {
            (Ok(mut a), Ok(b)) => {
                a.extend(b);
                return Ok(a);
            }
            (Ok(a), Err(_)) | (Err(_), Ok(a)) => return Ok(a),
            (Err(e @ DnsError::NxDomain { .. }), _) => return Err(e),
            (Err(e), _) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers() {
        let conf = "# c\nsearch x\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver ::1\nnameserver bogus\n";
        let got: Vec<String> = nameservers(conf).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["127.0.0.53:53", "[fe80::1]:53", "[::1]:53"]);
    }

    #[test]
    fn query_encoding() {
        let q = encode_query(0x1234, "api.example.com", TYPE_A).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..], b"\x03api\x07example\x03com\x00\x00\x01\x00\x01");
        assert!(encode_query(1, "a..b", TYPE_A).is_err());
        assert!(encode_query(1, &"x".repeat(64), TYPE_A).is_err());
    }

    /// A reply with a CNAME then two A records, names compressed.
    #[test]
    fn decodes_reply_with_cname_chain() {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03api\x07example\x03com\x00\x00\x01\x00\x01");
        // CNAME -> pointer to offset 12
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 1]);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 10, 0, 0, 2]);
        let (tc, rcode, answers) = decode_reply(&m, 0x1234, TYPE_A).unwrap();
        assert!(!tc);
        assert_eq!(rcode, 0);
        assert_eq!(
            answers,
            [
                Answer {
                    addr: "10.0.0.1".parse().unwrap(),
                    ttl: 30
                },
                Answer {
                    addr: "10.0.0.2".parse().unwrap(),
                    ttl: 256
                }
            ]
        );
        assert!(decode_reply(&m, 0x9999, TYPE_A).is_none(), "wrong id");
        assert!(
            decode_reply(&m[..20], 0x1234, TYPE_A).is_none(),
            "truncated message"
        );
    }
}
