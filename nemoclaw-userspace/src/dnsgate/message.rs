//! DNS wire format for the DNS gateway: validating a sandboxed client's query, building the
//! query we send upstream, and turning the upstream's reply into the client's reply.
//!
//! Queries are rebuilt, never forwarded, because DNS is an exfiltration channel: a query
//! relayed as sent carries whatever the client put in it, past any name check, to every
//! resolver on the way to the attacker's nameserver: the ID (16 bits), the case of each
//! letter (one bit per letter), EDNS options (cookies, padding, arbitrary option codes) and
//! records in any section. So the upstream only ever receives a query built here from the
//! validated parts: the name lowercased (which the gateway checks against the policy; which
//! types and classes may go upstream is its decision too), the type, the class, an ID the
//! gateway chooses and our own OPT record. The client's ID, RD bit and question bytes stay on
//! our side and are put back into the reply it receives.
//!
//! Parsing never panics (every read is bounds-checked) and always terminates: compression
//! pointers must point strictly before the name segment they occur in, a name takes at most
//! 64 of them and at most 255 bytes uncompressed.

use std::fmt::Write as _;
use std::net::IpAddr;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_REFUSED: u8 = 5;
/// The UDP payload size we advertise upstream and to EDNS clients.
pub const EDNS_UDP_SIZE: u16 = 1232;

const HEADER_LEN: usize = 12;
/// Most compression pointers followed while reading one name.
const MAX_POINTERS: usize = 64;
/// Header flag bits: QR and TC, RD (first flags byte); RA (second).
const QR: u8 = 0x80;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
/// Our OPT record: root owner, type OPT, class = UDP size, TTL 0 (extended rcode 0,
/// version 0, no DO bit), no options.
const OPT_RECORD: [u8; 11] = {
    let t = TYPE_OPT.to_be_bytes();
    let s = EDNS_UDP_SIZE.to_be_bytes();
    [0, t[0], t[1], s[0], s[1], 0, 0, 0, 0, 0, 0]
};

/// A client's query, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// The client's RD bit, echoed in replies.
    pub rd: bool,
    /// The question name in presentation form: ASCII letters lowercased, labels joined by
    /// '.', no trailing dot ("" for the root); any byte outside `[a-z0-9-_]` (after
    /// lowercasing) written as `\DDD` (three decimal digits), '.' and '\' inside a label
    /// included, so the text is unambiguous and safe to print in a log.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Whether the client sent an OPT record (EDNS).
    pub edns: bool,
    /// Largest UDP reply the client accepts: 512 without OPT; with OPT, the OPT's class
    /// field clamped to 512..=[`EDNS_UDP_SIZE`].
    pub udp_limit: usize,
    /// The question section exactly as the client sent it (name, type, class), echoed in
    /// replies. Its name has no compression pointer.
    question: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("shorter than a DNS header")]
    TooShort,
    #[error("QR bit set: not a query")]
    NotAQuery,
    #[error("opcode {0}: only QUERY (0) is served")]
    Opcode(u8),
    #[error("{0} questions: exactly one required")]
    QuestionCount(u16),
    #[error("records other than one OPT record with root owner")]
    Records,
    #[error("compression pointer in the question")]
    CompressedName,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("bytes after the last record")]
    Trailing,
    #[error("message ends inside a field")]
    Truncated,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    #[error("reply ID {0:#06x} is not our query's")]
    WrongId(u16),
    #[error("QR bit clear: not a reply")]
    NotAReply,
    #[error("reply opcode {0}")]
    Opcode(u8),
    #[error("reply has {0} questions")]
    QuestionCount(u16),
    #[error("reply question is not ours")]
    QuestionMismatch,
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
}

/// The client's reply made by [`Query::relay`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub bytes: Vec<u8>,
    /// The upstream's rcode (the header's four bits).
    pub rcode: u8,
    /// Whether `bytes` has TC set: cut by us to the limit, or truncated by the upstream.
    pub truncated: bool,
    /// CNAME records (class IN) of the answer section as relayed (none when we cut it),
    /// owner and target decompressed, in presentation form as [`Query::name`], in order.
    pub cnames: Vec<Cname>,
    /// A and AAAA records (class IN) of the answer section as relayed, in order.
    pub addresses: Vec<Address>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cname {
    pub owner: String,
    pub target: String,
    pub ttl: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub owner: String,
    pub addr: IpAddr,
    pub ttl: u32,
}

/// The fixed header of a message.
struct Header {
    id: u16,
    flags: [u8; 2],
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
}

impl Header {
    fn parse(msg: &[u8]) -> Option<Self> {
        let &[i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1] = msg.first_chunk()?;
        let w = u16::from_be_bytes;
        Some(Self {
            id: w([i0, i1]),
            flags: [f0, f1],
            qd: w([q0, q1]),
            an: w([a0, a1]),
            ns: w([n0, n1]),
            ar: w([r0, r1]),
        })
    }

    fn opcode(&self) -> u8 {
        (self.flags[0] >> 3) & 0x0f
    }
}

/// A header's bytes: ID, flags, then the four section counts.
fn header_bytes(id: u16, flags: [u8; 2], counts: [u16; 4]) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags);
    for count in counts {
        m.extend_from_slice(&count.to_be_bytes());
    }
    m
}

fn be16(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes(*msg.get(pos..)?.first_chunk()?))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NameError {
    Truncated,
    Pointer,
    ForwardPointer,
    TooManyPointers,
    LabelType,
    TooLong,
}

impl NameError {
    fn text(self) -> &'static str {
        match self {
            Self::Truncated => "name runs past the end",
            Self::Pointer => "unexpected compression pointer",
            Self::ForwardPointer => "compression pointer not pointing backwards",
            Self::TooManyPointers => "too many compression pointers",
            Self::LabelType => "unknown label type",
            Self::TooLong => "name longer than 255 bytes",
        }
    }
}

impl From<NameError> for QueryError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::Truncated => Self::Truncated,
            NameError::LabelType => Self::LabelTooLong,
            NameError::TooLong => Self::NameTooLong,
            NameError::Pointer | NameError::ForwardPointer | NameError::TooManyPointers => {
                Self::CompressedName
            }
        }
    }
}

impl From<NameError> for RelayError {
    fn from(e: NameError) -> Self {
        Self::Malformed(e.text())
    }
}

/// Reads the name at `start`: its uncompressed wire form (letter case kept) and the offset
/// just after it in `msg`. Without `compression`, a pointer is an error. A pointer must point
/// strictly before the start of the segment it occurs in, so the walk cannot loop.
fn read_name(msg: &[u8], start: usize, compression: bool) -> Result<(Vec<u8>, usize), NameError> {
    let mut wire = Vec::with_capacity(64);
    let (mut pos, mut segment, mut end, mut pointers) = (start, start, None, 0);
    loop {
        let len = *msg.get(pos).ok_or(NameError::Truncated)?;
        match len & 0xc0 {
            0 if len == 0 => {
                wire.push(0);
                return Ok((wire, end.unwrap_or(pos + 1)));
            }
            0 => {
                let l = usize::from(len);
                if wire.len() + l + 2 > 255 {
                    return Err(NameError::TooLong);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(NameError::Truncated)?;
                wire.push(len);
                wire.extend_from_slice(label);
                pos += 1 + l;
            }
            0xc0 if !compression => return Err(NameError::Pointer),
            0xc0 => {
                let target = usize::from(be16(msg, pos).ok_or(NameError::Truncated)? & 0x3fff);
                if target >= segment {
                    return Err(NameError::ForwardPointer);
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(NameError::TooManyPointers);
                }
                end.get_or_insert(pos + 2);
                (pos, segment) = (target, target);
            }
            // 0x40 and 0x80: extended and reserved label types, or a length over 63.
            _ => return Err(NameError::LabelType),
        }
    }
}

/// The address in the data of an A (`rtype` [`TYPE_A`]) or AAAA record.
fn address(rtype: u16, rdata: &[u8]) -> Result<IpAddr, RelayError> {
    let addr = if rtype == TYPE_A {
        <[u8; 4]>::try_from(rdata).map(IpAddr::from)
    } else {
        <[u8; 16]>::try_from(rdata).map(IpAddr::from)
    };
    addr.map_err(|_| RelayError::Malformed("address data of the wrong length"))
}

/// Presentation form of an uncompressed wire name, as described at [`Query::name`].
fn presentation(wire: &[u8]) -> String {
    let mut out = String::with_capacity(wire.len());
    let mut pos = 0;
    while let Some(&len) = wire.get(pos).filter(|&&l| l != 0) {
        if pos != 0 {
            out.push('.');
        }
        let label = wire.get(pos + 1..pos + 1 + usize::from(len));
        for b in label.unwrap_or_default().iter().map(u8::to_ascii_lowercase) {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "\\{b:03}");
            }
        }
        pos += 1 + usize::from(len);
    }
    out
}

/// Validates a client's query: one question with an uncompressed name, nothing else but an
/// optional OPT record, nothing after it.
pub fn parse_query(msg: &[u8]) -> Result<Query, QueryError> {
    let h = Header::parse(msg).ok_or(QueryError::TooShort)?;
    if h.flags[0] & QR != 0 {
        return Err(QueryError::NotAQuery);
    }
    if h.opcode() != 0 {
        return Err(QueryError::Opcode(h.opcode()));
    }
    if h.qd != 1 {
        return Err(QueryError::QuestionCount(h.qd));
    }
    if h.an != 0 || h.ns != 0 || h.ar > 1 {
        return Err(QueryError::Records);
    }
    let (wire, name_end) = read_name(msg, HEADER_LEN, false)?;
    let qtype = be16(msg, name_end).ok_or(QueryError::Truncated)?;
    let qclass = be16(msg, name_end + 2).ok_or(QueryError::Truncated)?;
    let mut pos = name_end + 4;
    let question = msg
        .get(HEADER_LEN..pos)
        .ok_or(QueryError::Truncated)?
        .to_vec();
    let mut udp_limit = 512;
    if h.ar == 1 {
        // An OPT record: root owner (one zero byte), type, class (UDP size), TTL, RDATA.
        match msg.get(pos) {
            None => return Err(QueryError::Truncated),
            Some(0) => {}
            Some(_) => return Err(QueryError::Records),
        }
        if be16(msg, pos + 1).ok_or(QueryError::Truncated)? != TYPE_OPT {
            return Err(QueryError::Records);
        }
        let size = be16(msg, pos + 3).ok_or(QueryError::Truncated)?;
        let rdlen = usize::from(be16(msg, pos + 9).ok_or(QueryError::Truncated)?);
        pos += 11 + rdlen;
        if pos > msg.len() {
            return Err(QueryError::Truncated);
        }
        udp_limit = usize::from(size.clamp(512, EDNS_UDP_SIZE));
    }
    if pos != msg.len() {
        return Err(QueryError::Trailing);
    }
    Ok(Query {
        id: h.id,
        rd: h.flags[0] & RD != 0,
        name: presentation(&wire),
        qtype,
        qclass,
        edns: h.ar == 1,
        udp_limit,
        question,
    })
}

/// For a message that could not be parsed as a query: a reply with the same ID, QR=1,
/// opcode copied, RD copied, the given rcode, all counts zero. None when `msg` is shorter
/// than a header (12 bytes) or already has QR set (never answer a response: no reflection
/// loops).
#[must_use]
pub fn error_reply(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let h = Header::parse(msg).filter(|h| h.flags[0] & QR == 0)?;
    let flags = [QR | (h.flags[0] & (0x78 | RD)), rcode & 0x0f];
    Some(header_bytes(h.id, flags, [0; 4]))
}

impl Query {
    /// The reply we send ourselves: header (client id, QR=1, opcode 0, client's RD, RA=1,
    /// rcode), qdcount 1, the client's question bytes, no records except our OPT (UDP size
    /// [`EDNS_UDP_SIZE`], no options) when the client sent one.
    #[must_use]
    pub fn reply(&self, rcode: u8) -> Vec<u8> {
        let flags = [QR | u8::from(self.rd), RA | (rcode & 0x0f)];
        let mut m = header_bytes(self.id, flags, [1, 0, 0, u16::from(self.edns)]);
        m.extend_from_slice(&self.question);
        if self.edns {
            m.extend_from_slice(&OPT_RECORD);
        }
        m
    }

    /// The query we send upstream: header `id`, RD=1, qdcount 1, arcount 1; the question
    /// with the name lowercased (from the client's wire labels); our OPT record. Nothing else
    /// from the client.
    #[must_use]
    pub fn upstream(&self, id: u16) -> Vec<u8> {
        let mut m = header_bytes(id, [RD, 0], [1, 0, 0, 1]);
        // Label length bytes are at most 63, below b'A': lowercasing every byte of the
        // uncompressed name changes only letters. Type and class are kept as they are.
        let (name, type_class) = self.question.split_at(self.name_len());
        m.extend(name.iter().map(u8::to_ascii_lowercase));
        m.extend_from_slice(type_class);
        m.extend_from_slice(&OPT_RECORD);
        m
    }

    /// Wire length of the question's name.
    fn name_len(&self) -> usize {
        self.question.len().saturating_sub(4)
    }

    /// Turns the upstream's reply to `self.upstream(upstream_id)` into the client's reply.
    ///
    /// The reply must have ID `upstream_id`, QR set, opcode 0, one question, and that
    /// question must be ours byte for byte up to letter case in the name (so a compressed or
    /// otherwise re-encoded question is a mismatch, and the client's question bytes have the
    /// same length: compression pointers into or past it stay valid). The answer and authority
    /// records are checked (names decompressed, data within bounds) and copied byte for byte;
    /// the additional section is dropped, our OPT appended if and only if the client sent
    /// one. Header flags are the upstream's, with the client's ID and RD bit.
    ///
    /// Longer than `limit` (`self.udp_limit` for UDP, 65535 for TCP): a reply with TC set,
    /// the upstream's rcode, the question only, and our OPT if the client sent one.
    pub fn relay(
        &self,
        reply: &[u8],
        upstream_id: u16,
        limit: usize,
    ) -> Result<Relayed, RelayError> {
        let h = Header::parse(reply).ok_or(RelayError::Malformed("shorter than a header"))?;
        if h.id != upstream_id {
            return Err(RelayError::WrongId(h.id));
        }
        if h.flags[0] & QR == 0 {
            return Err(RelayError::NotAReply);
        }
        if h.opcode() != 0 {
            return Err(RelayError::Opcode(h.opcode()));
        }
        if h.qd != 1 {
            return Err(RelayError::QuestionCount(h.qd));
        }
        let records_start = HEADER_LEN + self.question.len();
        let theirs = reply
            .get(HEADER_LEN..records_start)
            .ok_or(RelayError::QuestionMismatch)?;
        let (their_name, their_tc) = theirs.split_at(self.name_len());
        let (our_name, our_tc) = self.question.split_at(self.name_len());
        if !their_name.eq_ignore_ascii_case(our_name) || their_tc != our_tc {
            return Err(RelayError::QuestionMismatch);
        }

        let (mut cnames, mut addresses) = (Vec::new(), Vec::new());
        let mut pos = records_start;
        for i in 0..u32::from(h.an) + u32::from(h.ns) {
            let (owner, end) = read_name(reply, pos, true)?;
            let Some(&[t0, t1, c0, c1, l0, l1, l2, l3, r0, r1]) =
                reply.get(end..).and_then(<[u8]>::first_chunk)
            else {
                return Err(RelayError::Malformed("truncated record"));
            };
            let rdata_start = end + 10;
            pos = rdata_start + usize::from(u16::from_be_bytes([r0, r1]));
            let rdata = reply
                .get(rdata_start..pos)
                .ok_or(RelayError::Malformed("truncated record data"))?;
            if i >= u32::from(h.an) || u16::from_be_bytes([c0, c1]) != CLASS_IN {
                continue;
            }
            // RFC 2181 section 8: a TTL with the top bit set is read as zero.
            let ttl = Some(u32::from_be_bytes([l0, l1, l2, l3])).filter(|&t| t <= 0x7fff_ffff);
            let (owner, ttl) = (presentation(&owner), ttl.unwrap_or(0));
            match u16::from_be_bytes([t0, t1]) {
                TYPE_CNAME => {
                    let (target, end) = read_name(reply, rdata_start, true)?;
                    if end != pos {
                        return Err(RelayError::Malformed("CNAME data is not one name"));
                    }
                    let target = presentation(&target);
                    cnames.push(Cname { owner, target, ttl });
                }
                rtype @ (TYPE_A | TYPE_AAAA) => {
                    let addr = address(rtype, rdata)?;
                    addresses.push(Address { owner, addr, ttl });
                }
                _ => {}
            }
        }

        let mut records = reply.get(records_start..pos).unwrap_or_default();
        let opt: &[u8] = if self.edns { &OPT_RECORD } else { &[] };
        let mut flags = [(h.flags[0] & !RD) | u8::from(self.rd), h.flags[1]];
        let (mut an, mut ns) = (h.an, h.ns);
        if HEADER_LEN + self.question.len() + records.len() + opt.len() > limit {
            flags[0] |= TC;
            (an, ns, records) = (0, 0, &[]);
            cnames.clear();
            addresses.clear();
        }
        let mut bytes = header_bytes(self.id, flags, [1, an, ns, u16::from(self.edns)]);
        bytes.extend_from_slice(&self.question);
        bytes.extend_from_slice(records);
        bytes.extend_from_slice(opt);
        Ok(Relayed {
            bytes,
            rcode: flags[1] & 0x0f,
            truncated: flags[0] & TC != 0,
            cnames,
            addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const API: &str = "api.example.com";
    const MIXED: &str = "ApI.ExAmple.COM";

    /// A message: header then body parts.
    fn msg(id: u16, flags: [u8; 2], counts: [u16; 4], body: &[&[u8]]) -> Vec<u8> {
        [header_bytes(id, flags, counts), body.concat()].concat()
    }

    /// Wire form of a dotted name (test names contain no escapes).
    fn wire(name: &str) -> Vec<u8> {
        let labels = name.split('.').filter(|l| !l.is_empty());
        let mut w: Vec<u8> = labels
            .flat_map(|l| [&[l.len() as u8], l.as_bytes()].concat())
            .collect();
        w.push(0);
        w
    }

    /// A question section for `name`, type A, class IN.
    fn question(name: &str) -> Vec<u8> {
        [wire(name), vec![0, 1, 0, 1]].concat()
    }

    /// The query glibc sends (ID 0xbeef, RD, one question), with OPT record `opt` if given.
    fn glibc(name: &str, opt: Option<&[u8]>) -> Vec<u8> {
        let counts = [1, 0, 0, u16::from(opt.is_some())];
        msg(
            0xbeef,
            [RD, 0],
            counts,
            &[&question(name), opt.unwrap_or_default()],
        )
    }

    fn query(name: &str, opt: Option<&[u8]>) -> Query {
        parse_query(&glibc(name, opt)).unwrap()
    }

    /// An OPT record advertising `size`, carrying `options`.
    fn opt(size: u16, options: &[u8]) -> Vec<u8> {
        let ([s0, s1], [l0, l1]) = (size.to_be_bytes(), (options.len() as u16).to_be_bytes());
        [&[0, 0, 41, s0, s1, 0, 0, 0, 0, l0, l1], options].concat()
    }

    #[test]
    fn glibc_queries() {
        let q = query(API, None);
        assert_eq!(
            (q.id, q.rd, q.name.as_str(), q.qtype, q.qclass),
            (0xbeef, true, API, 1, 1)
        );
        assert_eq!((q.edns, q.udp_limit), (false, 512));
        for (size, limit) in [(1200, 1200), (4096, 1232), (100, 512)] {
            let q = query(API, Some(&opt(size, &[])));
            assert_eq!((q.edns, q.udp_limit), (true, limit));
        }
        assert_eq!(query("", None).name, "");
    }

    /// A cookie and padding: neither reaches the upstream query, which is entirely ours.
    #[test]
    fn upstream_is_rebuilt() {
        let options = [&[0, 10, 0, 8][..], b"exfil!!!", &[0, 12, 0, 4, 1, 2, 3, 4]].concat();
        let q = query(MIXED, Some(&opt(4096, &options)));
        assert_eq!(q.name, API);
        let expected = msg(0x4242, [1, 0], [1, 0, 0, 1], &[&question(API), &OPT_RECORD]);
        assert_eq!(q.upstream(0x4242), expected);
        assert_eq!(OPT_RECORD, [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            query(API, None).upstream(0x4242),
            expected,
            "OPT sent either way"
        );
    }

    #[test]
    fn odd_bytes_escaped() {
        let name = [
            &[3, b'a', b'.', b'b', 4, 0, b' ', b'\\', 0xc4, 6][..],
            b"_Dm-4X\0",
        ]
        .concat();
        let q = parse_query(&msg(1, [0, 0], [1, 0, 0, 0], &[&name, &[0, 16, 0, 1]])).unwrap();
        assert_eq!(q.name, "a\\046b.\\000\\032\\092\\196._dm-4x");
        assert!(!q.rd);
        let lower = [&name[..10], b"_dm-4x\0"].concat();
        assert_eq!(q.upstream(9).get(12..12 + name.len()), Some(&lower[..]));
    }

    #[test]
    fn query_errors() {
        use QueryError as E;
        let ok = glibc("a.b", None);
        let with = |i: usize, b: u8| {
            let mut m = ok.clone();
            m[i] = b;
            parse_query(&m)
        };
        assert_eq!(parse_query(&ok[..11]), Err(E::TooShort));
        assert_eq!(with(2, 0x81), Err(E::NotAQuery));
        assert_eq!(with(2, 0x11), Err(E::Opcode(2)));
        assert_eq!(with(5, 2), Err(E::QuestionCount(2)));
        assert_eq!(with(5, 0), Err(E::QuestionCount(0)));
        for (i, count) in [(7, 1), (9, 1), (11, 2)] {
            assert_eq!(with(i, count), Err(E::Records));
        }
        let a_record = [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4];
        let extra = msg(1, [0, 0], [1, 0, 0, 1], &[&question("a.b"), &a_record]);
        assert_eq!(
            parse_query(&extra),
            Err(E::Records),
            "additional record not OPT"
        );
        let x_opt = [&[1, b'x'], &opt(512, &[])[1..]].concat();
        let x_opt = msg(1, [0, 0], [1, 0, 0, 1], &[&question("a.b"), &x_opt]);
        assert_eq!(
            parse_query(&x_opt),
            Err(E::Records),
            "OPT with a non-root owner"
        );
        let compressed = msg(1, [0, 0], [1, 0, 0, 0], &[&[1, b'a', 0xc0, 12, 0, 1, 0, 1]]);
        assert_eq!(parse_query(&compressed), Err(E::CompressedName));
        assert_eq!(with(12, 64), Err(E::LabelTooLong));
        let long = |last: usize| format!("{0}.{0}.{0}.{1}", "x".repeat(63), "y".repeat(last));
        assert_eq!(
            query(&long(61), None).name.len(),
            253,
            "255 bytes on the wire"
        );
        assert_eq!(parse_query(&glibc(&long(62), None)), Err(E::NameTooLong));
        assert_eq!(parse_query(&[&ok[..], &[0]].concat()), Err(E::Trailing));
        let cookie = glibc(
            "a.b",
            Some(&opt(1232, &[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])),
        );
        for cut in 12..cookie.len() {
            assert_eq!(
                parse_query(&cookie[..cut]),
                Err(E::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(
            E::Opcode(2).to_string(),
            "opcode 2: only QUERY (0) is served"
        );
    }

    #[test]
    fn error_replies() {
        let mut m = glibc("a.b", None);
        m[2] |= 0x10; // opcode 2
        let header = |rcode| Some(msg(0xbeef, [0x91, rcode], [0; 4], &[]));
        assert_eq!(error_reply(&m, RCODE_FORMERR), header(1));
        assert_eq!(error_reply(&m[..12], RCODE_SERVFAIL), header(2));
        assert_eq!(error_reply(&m[..11], RCODE_FORMERR), None);
        m[2] |= QR;
        assert_eq!(
            error_reply(&m, RCODE_FORMERR),
            None,
            "never answer a response"
        );
    }

    #[test]
    fn refused_replies() {
        let expected = msg(0xbeef, [0x81, 0x85], [1, 0, 0, 0], &[&question(MIXED)]);
        assert_eq!(query(MIXED, None).reply(RCODE_REFUSED), expected);
        let q = query(MIXED, Some(&opt(1232, &[0, 10, 0, 0])));
        let expected = msg(
            0xbeef,
            [0x81, 0x85],
            [1, 0, 0, 1],
            &[&question(MIXED), &OPT_RECORD],
        );
        assert_eq!(q.reply(RCODE_REFUSED), expected);
    }

    /// The upstream's reply to api.example.com A: a compressed CNAME chain
    /// api.example.com -> cdn.example.net -> edge.example.net, then an A and an AAAA record.
    fn upstream_reply(id: u16, additional: &[u8], ar: u16) -> Vec<u8> {
        let mut m = msg(id, [0x81, 0x80], [1, 4, 0, ar], &[&question(API)]);
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44, 0, 17]);
        let cdn = m.len() as u8;
        m.extend_from_slice(&wire("cdn.example.net"));
        m.extend_from_slice(&[0xc0, cdn, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7, 4]);
        let edge = m.len() as u8 - 1;
        m.extend_from_slice(&[b'e', b'd', b'g', b'e', 0xc0, cdn + 4]);
        m.extend_from_slice(&[0xc0, edge, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        m.extend_from_slice(&[
            0xc0, edge, 0, 28, 0, 1, 0xff, 0, 0, 0, 0, 16, 0x20, 1, 0xd, 0xb8,
        ]);
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m.extend_from_slice(additional);
        m
    }

    #[test]
    fn relays_answers() {
        let q = parse_query(&msg(0x1111, [0, 0], [1, 0, 0, 0], &[&question(MIXED)])).unwrap();
        let reply = upstream_reply(0x2222, &[], 0);
        let r = q.relay(&reply, 0x2222, q.udp_limit).unwrap();
        let expected = msg(
            0x1111,
            [0x80, 0x80],
            [1, 4, 0, 0],
            &[&question(MIXED), &reply[33..]],
        );
        assert_eq!(
            r.bytes, expected,
            "client ID, client RD (clear), client question bytes"
        );
        assert_eq!((r.rcode, r.truncated), (0, false));
        let cname = |owner: &str, target: &str, ttl| Cname {
            owner: owner.into(),
            target: target.into(),
            ttl,
        };
        let cdn = "cdn.example.net";
        let chain = [cname(API, cdn, 300), cname(cdn, "edge.example.net", 60)];
        assert_eq!(r.cnames, chain);
        let address = |addr: &str, ttl| Address {
            owner: "edge.example.net".into(),
            addr: addr.parse().unwrap(),
            ttl,
        };
        let addresses = [address("192.0.2.1", 30), address("2001:db8::1", 0)];
        assert_eq!(r.addresses, addresses, "TTL over 2^31 read as 0");
    }

    /// An NXDOMAIN with the SOA (and, oddly, an A record) in the authority section: both
    /// copied, neither taken for an answer.
    #[test]
    fn relays_authority() {
        let mut reply = msg(8, [0x81, 0x83], [1, 0, 2, 0], &[&question(API)]);
        reply.extend_from_slice(&[
            0xc0, 16, 0, 6, 0, 1, 0, 0, 0, 60, 0, 27, 2, b'n', b's', 0xc0,
        ]);
        reply.extend_from_slice(&[16, 0xc0, 16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        reply.extend_from_slice(&[
            0, 0, 0, 5, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4,
        ]);
        let r = query(API, None).relay(&reply, 8, 512).unwrap();
        assert_eq!(r.bytes, [&[0xbe, 0xef], &reply[2..]].concat());
        assert_eq!((r.rcode, r.cnames.len(), r.addresses.len()), (3, 0, 0));
    }

    /// The upstream's additional section (glue, its OPT) never reaches the client; our OPT
    /// does when the client had one.
    #[test]
    fn drops_additional_section() {
        let glue = [1, b'x', 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 9, 0, 4, 10, 0, 0, 1];
        let additional = [&glue[..], &opt(4096, &[0, 10, 0, 0])].concat();
        let reply = upstream_reply(7, &additional, 2);
        let records = &reply[33..reply.len() - additional.len()];
        let r = query(API, None).relay(&reply, 7, 512).unwrap();
        let expected = msg(
            0xbeef,
            [0x81, 0x80],
            [1, 4, 0, 0],
            &[&question(API), records],
        );
        assert_eq!((r.bytes, r.addresses.len()), (expected, 2));
        let r = query(API, Some(&opt(1232, &[])))
            .relay(&reply, 7, 512)
            .unwrap();
        let body = [&question(API), records, &OPT_RECORD];
        assert_eq!(r.bytes, msg(0xbeef, [0x81, 0x80], [1, 4, 0, 1], &body));
    }

    #[test]
    fn truncates_to_limit() {
        let q = query(API, None);
        let mut reply = msg(3, [0x85, 0x80], [1, 40, 0, 0], &[&question(API)]);
        for i in 0..40 {
            reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, i]);
        }
        let r = q.relay(&reply, 3, q.udp_limit).unwrap();
        let expected = msg(0xbeef, [0x87, 0x80], [1, 0, 0, 0], &[&question(API)]);
        assert_eq!(
            (r.bytes, r.truncated, r.addresses.len()),
            (expected, true, 0)
        );
        assert_eq!(
            q.relay(&reply, 3, 65535).unwrap().addresses.len(),
            40,
            "fits in TCP"
        );
        let edns = query(API, Some(&opt(512, &[])));
        let r = edns.relay(&reply, 3, edns.udp_limit).unwrap();
        assert!(r.truncated && r.bytes.ends_with(&OPT_RECORD));
        assert_eq!(r.bytes.get(6..12), Some(&[0, 0, 0, 0, 0, 1][..]));
    }

    #[test]
    fn relay_errors() {
        use RelayError as E;
        let q = query(API, None);
        let reply = upstream_reply(5, &[], 0);
        let relay = |m: &[u8]| q.relay(m, 5, 65535);
        let with = |i: usize, b: u8| {
            let mut m = reply.clone();
            m[i] = b;
            relay(&m)
        };
        assert_eq!(q.relay(&reply, 6, 512), Err(E::WrongId(5)));
        assert_eq!(
            E::WrongId(5).to_string(),
            "reply ID 0x0005 is not our query's"
        );
        assert_eq!(
            relay(&reply[..11]),
            Err(E::Malformed("shorter than a header"))
        );
        assert_eq!(with(2, 0x01), Err(E::NotAReply));
        assert_eq!(with(2, 0x89), Err(E::Opcode(1)));
        assert_eq!(with(5, 0), Err(E::QuestionCount(0)));
        assert_eq!(with(13, b'x'), Err(E::QuestionMismatch), "other name");
        assert_eq!(with(30, 28), Err(E::QuestionMismatch), "other type");
        let compressed = msg(
            5,
            [0x81, 0x80],
            [1, 0, 0, 0],
            &[&[0xc0, 12, 0, 1, 0, 1], &[0; 20]],
        );
        assert_eq!(
            relay(&compressed),
            Err(E::QuestionMismatch),
            "compressed question"
        );
        let head = &reply[..33];
        let backwards = Err(E::Malformed("compression pointer not pointing backwards"));
        assert_eq!(
            relay(&[head, &[1, b'x', 0xc0, 35, 0, 1]].concat()),
            backwards,
            "self"
        );
        assert_eq!(
            relay(&[head, &[0xc0, 40, 0, 1]].concat()),
            backwards,
            "forward"
        );
        // A TXT record whose data holds "z" then a pointer to the next record's owner, which
        // points back at "z": a loop.
        let txt = [0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 4, 1, b'z', 0xc0, 49];
        let looped = [head, &txt, &[0xc0, 45, 0, 16, 0, 1, 0, 0, 0, 1, 0, 0]].concat();
        assert_eq!(relay(&looped), backwards, "loop");
        // A TXT record holding the root then `n` pointers, each to the one before; then a
        // record whose owner points at the last: n + 1 pointers in all.
        let chain = |n: usize| {
            let mut m = [
                head,
                &[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 1, 0, 1 + 2 * n as u8, 0],
            ]
            .concat();
            m[7] = 2;
            let mut target = 45;
            for _ in 0..n {
                m.extend_from_slice(&[0xc0, target]);
                target = m.len() as u8 - 2;
            }
            relay(&[&m[..], &[0xc0, target, 0, 16, 0, 1, 0, 0, 0, 1, 0, 0]].concat())
        };
        assert!(chain(MAX_POINTERS - 1).is_ok());
        let too_many = Err(E::Malformed("too many compression pointers"));
        assert_eq!(chain(MAX_POINTERS), too_many);
        for cut in 33..reply.len() {
            assert!(
                matches!(relay(&reply[..cut]), Err(E::Malformed(_))),
                "cut at {cut}"
            );
        }
        assert_eq!(
            with(44, 18),
            Err(E::Malformed("CNAME data is not one name"))
        );
        let short_a = [head, &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]].concat();
        assert_eq!(
            relay(&short_a),
            Err(E::Malformed("address data of the wrong length"))
        );
    }

    proptest! {
        #[test]
        fn parse_query_never_panics(m in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_query(&m);
            let _ = error_reply(&m, RCODE_FORMERR);
        }

        /// Arbitrary records after a matching question; arbitrary messages.
        #[test]
        fn relay_never_panics(
            counts in any::<[u8; 3]>(),
            tail in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let q = query(API, Some(&opt(1232, &[])));
            let [an, ns, ar] = counts.map(|c| u16::from(c % 8));
            let m = msg(9, [0x81, 0x80], [1, an, ns, ar], &[&question(API), &tail]);
            if let Ok(r) = q.relay(&m, 9, 512) {
                prop_assert!(r.bytes.len() <= 512);
            }
            let _ = q.relay(&tail, 9, 512);
        }

        /// A query for any name parses; its text holds only safe characters; the upstream
        /// query parses back to the same question.
        #[test]
        fn upstream_round_trips(
            labels in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 0..5),
            qtype in any::<u16>(),
        ) {
            let labels = labels.iter().flat_map(|l| [&[l.len() as u8], &l[..]].concat());
            let name: Vec<u8> = labels.chain([0]).collect();
            let m = msg(1, [0, 0], [1, 0, 0, 0], &[&name, &qtype.to_be_bytes(), &[0, 1]]);
            let q = parse_query(&m).unwrap();
            let safe = b"abcdefghijklmnopqrstuvwxyz0123456789-_.\\";
            prop_assert!(q.name.bytes().all(|b| safe.contains(&b)));
            let up = parse_query(&q.upstream(2)).unwrap();
            prop_assert_eq!((up.name, up.qtype, up.edns), (q.name.clone(), qtype, true));
        }
    }
}
