//! kvmd-streamer's H.264 feed (`/streamer/h264` on its socket; kvmd-webrtc reads it): the
//! framing of its access units, shared by the writer and the reader.
//!
//! Each unit is a 16-byte header and the access unit (Annex B, start codes included):
//!
//! ```text
//! 0      'H'
//! 1      flags: 1 key frame (IDR, SPS and PPS before it), 2 the source had a signal
//! 2      GOP the frame was encoded with (0: key frames only when asked for)
//! 3      0
//! 4..8   length of the access unit, big endian
//! 8..16  CLOCK_MONOTONIC microseconds when its capture began, big endian
//! ```

/// The header's size.
pub const HEADER: usize = 16;
/// The largest access unit a reader accepts (a 4K key frame at the highest bitrate is far less).
pub const MAX_UNIT: usize = 16 << 20;

const MAGIC: u8 = b'H';
const KEY: u8 = 1;
const ONLINE: u8 = 2;

/// What the header says about one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitHeader {
    /// An IDR frame (with SPS and PPS).
    pub key: bool,
    /// The source had a signal (else the no-signal picture).
    pub online: bool,
    /// The GOP in effect.
    pub gop: u8,
    /// Bytes of the access unit that follow.
    pub len: u32,
    /// CLOCK_MONOTONIC microseconds when its capture began.
    pub captured_us: u64,
}

/// Why a header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// Not this framing.
    #[error("not an H.264 feed header")]
    Magic,
    /// Longer than [`MAX_UNIT`].
    #[error("an access unit of {0} bytes is too long")]
    TooLong(u32),
}

impl UnitHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = MAGIC;
        h[1] = if self.key { KEY } else { 0 } | if self.online { ONLINE } else { 0 };
        h[2] = self.gop;
        h[4..8].copy_from_slice(&self.len.to_be_bytes());
        h[8..16].copy_from_slice(&self.captured_us.to_be_bytes());
        h
    }

    /// Reads a header.
    pub fn decode(h: &[u8; HEADER]) -> Result<Self, FeedError> {
        if h[0] != MAGIC {
            return Err(FeedError::Magic);
        }
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if len as usize > MAX_UNIT {
            return Err(FeedError::TooLong(len));
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&h[8..16]);
        Ok(Self {
            key: h[1] & KEY != 0,
            online: h[1] & ONLINE != 0,
            gop: h[2],
            len,
            captured_us: u64::from_be_bytes(t),
        })
    }
}

/// Splits a byte stream into units: feed it what arrives, take the units out.
#[derive(Debug, Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    /// Appends bytes read from the feed.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole unit, if one has arrived.
    pub fn next_unit(&mut self) -> Result<Option<(UnitHeader, Vec<u8>)>, FeedError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let mut h = [0u8; HEADER];
        h.copy_from_slice(&self.buf[..HEADER]);
        let header = UnitHeader::decode(&h)?;
        let end = HEADER + header.len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let data = self.buf[HEADER..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((header, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_survive_any_split() {
        let units = [
            (UnitHeader { key: true, online: true, gop: 30, len: 5, captured_us: 123_456_789 }, vec![0, 0, 0, 1, 0x67]),
            (UnitHeader { key: false, online: false, gop: 0, len: 3, captured_us: 7 }, vec![0, 0, 1]),
        ];
        let mut wire = Vec::new();
        for (h, d) in &units {
            wire.extend_from_slice(&h.encode());
            wire.extend_from_slice(d);
        }
        for split in 0..wire.len() {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                r.push(part);
                while let Some(u) = r.next_unit().unwrap_or_else(|e| panic!("{e}")) {
                    got.push(u);
                }
            }
            assert_eq!(got, units.to_vec(), "split at {split}");
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let mut h = UnitHeader { key: false, online: true, gop: 0, len: 1, captured_us: 0 }.encode();
        h[0] = b'X';
        assert_eq!(UnitHeader::decode(&h), Err(FeedError::Magic));
        let h = UnitHeader { key: false, online: true, gop: 0, len: MAX_UNIT as u32 + 1, captured_us: 0 }.encode();
        assert_eq!(UnitHeader::decode(&h), Err(FeedError::TooLong(MAX_UNIT as u32 + 1)));
    }
}
