//! Just enough of the DNS wire format (RFC 1035) for one question and A answers.

pub const TYPE_A: u16 = 1;
pub const CLASS_IN: u16 = 1;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    /// The query's flags word (opcode and RD are echoed back).
    pub flags: u16,
    pub name: String,
    /// Raw bytes of the question section, echoed in the answer.
    pub raw_question: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Too short to even carry an id: drop it.
    Garbage,
    /// Has an id: answer FORMERR (or NOTIMP for an opcode other than QUERY).
    Format(u16, u8),
}

pub fn parse_query(msg: &[u8]) -> Result<Question, ParseError> {
    if msg.len() < 12 {
        return Err(ParseError::Garbage);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if flags & 0x8000 != 0 {
        return Err(ParseError::Garbage); // a response, not a query
    }
    if (flags >> 11) & 0xF != 0 {
        return Err(ParseError::Format(id, RCODE_NOTIMP));
    }
    if qdcount != 1 {
        return Err(ParseError::Format(id, RCODE_FORMERR));
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(pos).ok_or(ParseError::Format(id, RCODE_FORMERR))? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers have no business in a question; labels are at most 63 bytes.
        if len > 63 {
            return Err(ParseError::Format(id, RCODE_FORMERR));
        }
        let label = msg.get(pos..pos + len).ok_or(ParseError::Format(id, RCODE_FORMERR))?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        pos += len;
        if pos - 12 > 255 {
            return Err(ParseError::Format(id, RCODE_FORMERR));
        }
    }
    let tail = msg.get(pos..pos + 4).ok_or(ParseError::Format(id, RCODE_FORMERR))?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Ok(Question { id, flags, name: labels.join("."), raw_question: msg[12..pos + 4].to_vec(), qtype, qclass })
}

fn header(id: u16, query_flags: u16, rcode: u8, qd: u16, an: u16) -> Vec<u8> {
    // QR=1, opcode echoed, AA=1, RD echoed, RA=0.
    let flags: u16 = 0x8000 | (query_flags & 0x7800) | 0x0400 | (query_flags & 0x0100) | u16::from(rcode & 0xF);
    let mut h = Vec::with_capacity(512);
    for v in [id, flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

/// An answer with `rcode` and, for NOERROR with an address, one A record (TTL 0: names follow
/// membership changes immediately).
pub fn response(q: &Question, rcode: u8, addr: Option<std::net::Ipv4Addr>) -> Vec<u8> {
    let mut out = header(q.id, q.flags, rcode, 1, u16::from(addr.is_some()));
    out.extend_from_slice(&q.raw_question);
    if let Some(ip) = addr {
        out.extend_from_slice(&[0xC0, 0x0C]); // pointer to the question name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// An error answer for a query we could only partly read.
pub fn error_response(id: u16, rcode: u8) -> Vec<u8> {
    header(id, 0, rcode, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dig a2.n1.internal` as sent by dig (with an EDNS OPT record).
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for l in name.split('.') {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&[0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]); // OPT
        m
    }

    #[test]
    fn parses_a_question_and_answers_it() {
        let q = parse_query(&query("a2.n1.internal", TYPE_A)).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype, q.qclass), (0x1234, "a2.n1.internal", TYPE_A, CLASS_IN));
        let r = response(&q, 0, Some("10.0.1.3".parse().unwrap()));
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "QR set");
        assert_eq!(r[3] & 0x0F, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1, "one answer");
        assert_eq!(&r[r.len() - 4..], &[10, 0, 1, 3]);
        let nx = response(&q, RCODE_NXDOMAIN, None);
        assert_eq!(nx[3] & 0x0F, RCODE_NXDOMAIN);
        assert_eq!(u16::from_be_bytes([nx[6], nx[7]]), 0);
    }

    #[test]
    fn malformed_queries() {
        assert_eq!(parse_query(&[1, 2, 3]), Err(ParseError::Garbage));
        let mut q = query("a.b", TYPE_A);
        q.truncate(15);
        assert_eq!(parse_query(&q), Err(ParseError::Format(0x1234, RCODE_FORMERR)));
        let mut ptr = query("a.b", TYPE_A);
        ptr[12] = 0xC0;
        assert_eq!(parse_query(&ptr), Err(ParseError::Format(0x1234, RCODE_FORMERR)));
        let mut notquery = query("a.b", TYPE_A);
        notquery[2] |= 0x10; // opcode 2 (STATUS)
        assert_eq!(parse_query(&notquery), Err(ParseError::Format(0x1234, RCODE_NOTIMP)));
    }
}
