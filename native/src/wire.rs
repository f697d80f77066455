//! Protobuf wire reading: varints, fixed64, length-delimited fields. Every length is checked against
//! what is left; anything unusual (groups, a field number 0, an over-long varint) reads as `None`, and
//! the caller then leaves the request to the Python transcoder.

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        // Most tags and lengths here fit one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Some(u64::from(b));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Option<u64> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None; // more than 64 bits
            }
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }

    /// A varint as upb reads it in a message: bits past 64 are dropped; an 11th byte is corrupt.
    pub fn varint_wide(&mut self) -> Option<u64> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }

    /// Bytes left to read.
    pub fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    #[inline]
    pub fn fixed64(&mut self) -> Option<u64> {
        let end = self.pos.checked_add(8)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    #[inline]
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    /// The next field's number and wire type.
    #[inline]
    pub fn tag(&mut self) -> Option<(u32, u8)> {
        let t = self.varint()?;
        let field = u32::try_from(t >> 3).ok()?;
        if field == 0 {
            return None;
        }
        Some((field, (t & 7) as u8))
    }

    /// Skips a field of an unknown number.
    pub fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.fixed64().map(|_| ()),
            LEN => self.bytes().map(|_| ()),
            FIXED32 => {
                let end = self.pos.checked_add(4)?;
                self.buf.get(self.pos..end)?;
                self.pos = end;
                Some(())
            }
            _ => None, // groups: never in this contract
        }
    }
}

/// A repeated varint field: one value (unpacked) or a packed run, appended to `out`.
pub fn varints(r: &mut Reader<'_>, wire: u8, out: &mut Vec<u64>) -> Option<()> {
    match wire {
        VARINT => out.push(r.varint()?),
        LEN => {
            let mut p = Reader::new(r.bytes()?);
            while !p.done() {
                out.push(p.varint()?);
            }
        }
        _ => return None,
    }
    Some(())
}

/// A repeated fixed64 field (doubles), unpacked or packed.
pub fn fixed64s(r: &mut Reader<'_>, wire: u8, out: &mut Vec<u64>) -> Option<()> {
    match wire {
        FIXED64 => out.push(r.fixed64()?),
        LEN => {
            let b = r.bytes()?;
            if b.len() % 8 != 0 {
                return None;
            }
            out.extend(
                b.chunks_exact(8)
                    .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            );
        }
        _ => return None,
    }
    Some(())
}
