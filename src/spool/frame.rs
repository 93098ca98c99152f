//! The file spool's on-disk record framing: `magic (2) | length (u32 LE) |
//! CRC-32C of the payload (u32 LE) | payload`. Pure, so the recovery rules are
//! tested without a disk.
//!
//! A reader walks a segment frame by frame. A frame whose header or checksum does
//! not hold — a tail torn by a crash mid-write, bytes damaged on disk — is reported
//! as corrupt with its extent, and reading resumes at the next offset where a whole,
//! checksummed frame starts: nothing before a damaged record is lost, and a damaged
//! record in the middle costs only itself.

const MAGIC: [u8; 2] = *b"CS";
pub const HEADER_BYTES: usize = 10;
/// A record larger than this is refused when written and treated as damage when read.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The bytes to append for `payload`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// What a reader finds at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole record whose checksum holds; the next frame starts at `end`.
    Record { offset: usize, end: usize, payload: &'a [u8] },
    /// Bytes `offset..end` are not a valid frame: `reason` says how.
    Corrupt { offset: usize, end: usize, reason: &'static str },
}

/// The frames of a segment, from `start`.
pub fn frames(buf: &[u8], start: usize) -> Frames<'_> {
    Frames { buf, at: start }
}

pub struct Frames<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let offset = self.at;
        if offset >= self.buf.len() {
            return None;
        }
        match check(self.buf, offset) {
            Ok((end, payload)) => {
                self.at = end;
                Some(Frame::Record { offset, end, payload })
            }
            Err(reason) => {
                // Resynchronise on the next whole frame; none: the rest is damage.
                let next = (offset + 1..self.buf.len()).find(|&at| check(self.buf, at).is_ok());
                let end = next.unwrap_or(self.buf.len());
                self.at = end;
                let reason = if next.is_none() && reason != "checksum mismatch" { "torn tail" } else { reason };
                Some(Frame::Corrupt { offset, end, reason })
            }
        }
    }
}

/// The frame at `at`: its end and payload, or why it is not one.
fn check(buf: &[u8], at: usize) -> Result<(usize, &[u8]), &'static str> {
    let header = buf.get(at..at + HEADER_BYTES).ok_or("short header")?;
    if header[..2] != MAGIC {
        return Err("bad magic");
    }
    let len = u32::from_le_bytes(header[2..6].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD_BYTES {
        return Err("impossible length");
    }
    let crc = u32::from_le_bytes(header[6..10].try_into().expect("4 bytes"));
    let start = at + HEADER_BYTES;
    let payload = buf.get(start..start + len).ok_or("short payload")?;
    if CRC.checksum(payload) != crc {
        return Err("checksum mismatch");
    }
    Ok((start + len, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        payloads.iter().flat_map(|p| encode(p)).collect()
    }

    fn records(buf: &[u8]) -> Vec<Vec<u8>> {
        frames(buf, 0)
            .filter_map(|f| match f {
                Frame::Record { payload, .. } => Some(payload.to_vec()),
                Frame::Corrupt { .. } => None,
            })
            .collect()
    }

    #[test]
    fn whole_records_read_back_in_order() {
        let buf = segment(&[b"one", b"", b"three"]);
        assert_eq!(records(&buf), vec![b"one".to_vec(), vec![], b"three".to_vec()]);
    }

    #[test]
    fn a_torn_tail_is_reported_and_the_records_before_it_kept() {
        let mut buf = segment(&[b"first", b"second"]);
        let whole = buf.len();
        buf.extend_from_slice(&encode(b"third, cut short")[..12]);
        let all: Vec<_> = frames(&buf, 0).collect();
        assert_eq!(records(&buf), vec![b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(all.last(), Some(&Frame::Corrupt { offset: whole, end: buf.len(), reason: "torn tail" }));
    }

    #[test]
    fn a_damaged_record_in_the_middle_costs_only_itself() {
        let mut buf = segment(&[b"first", b"second", b"third"]);
        let second = encode(b"first").len();
        buf[second + HEADER_BYTES + 2] ^= 0xff; // a flipped bit in "second"
        assert_eq!(records(&buf), vec![b"first".to_vec(), b"third".to_vec()]);
        let corrupt: Vec<_> = frames(&buf, 0).filter(|f| matches!(f, Frame::Corrupt { .. })).collect();
        let end = second + encode(b"second").len();
        assert_eq!(corrupt, vec![Frame::Corrupt { offset: second, end, reason: "checksum mismatch" }]);
    }

    proptest! {
        /// Whatever is cut off or overwritten after the first `keep` records, those
        /// records read back intact and in order, and every byte is accounted for.
        #[test]
        fn damage_never_costs_an_earlier_record(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..12),
            keep in 0usize..12,
            garbage in proptest::collection::vec(any::<u8>(), 0..40),
            cut in 0usize..64,
        ) {
            let keep = keep.min(payloads.len());
            let mut buf: Vec<u8> = payloads[..keep].iter().flat_map(|p| encode(p)).collect();
            let intact = buf.len();
            let rest: Vec<u8> = payloads[keep..].iter().flat_map(|p| encode(p)).collect();
            buf.extend_from_slice(&rest[..cut.min(rest.len())]);
            buf.extend_from_slice(&garbage);
            let read = records(&buf);
            prop_assert!(read.len() >= keep);
            prop_assert_eq!(&read[..keep], &payloads[..keep]);
            // Frames tile the buffer: no byte read twice or skipped silently.
            let mut at = 0;
            for f in frames(&buf, 0) {
                let (offset, end) = match f {
                    Frame::Record { offset, end, .. } | Frame::Corrupt { offset, end, .. } => (offset, end),
                };
                prop_assert_eq!(offset, at);
                prop_assert!(end > offset);
                at = end;
            }
            prop_assert_eq!(at, buf.len());
            prop_assert!(intact <= buf.len());
        }
    }
}
