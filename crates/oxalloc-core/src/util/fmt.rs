//! Formatting without allocating: a `fmt::Write` into a fixed buffer, and byte counts in human
//! units. Everything the allocator prints (statistics, fatal messages) goes through these.

use core::fmt::{self, Write};

/// A `fmt::Write` into a fixed buffer, for printing without allocating. Output past the end of
/// the buffer is dropped.
pub struct FixedBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FixedBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        FixedBuf {
            buf: [0; N],
            len: 0,
        }
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Forgets what was written.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for FixedBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for FixedBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Writes `bytes` in a human unit (B, KiB, MiB, GiB).
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b < 1024 {
            write!(f, "{b} B")
        } else if b < 1024 * 1024 {
            write!(f, "{}.{} KiB", b / 1024, b % 1024 * 10 / 1024)
        } else if b < 1024 * 1024 * 1024 {
            write!(f, "{}.{} MiB", b >> 20, ((b & 0xfffff) * 10) >> 20)
        } else {
            write!(f, "{}.{} GiB", b >> 30, ((b & 0x3fff_ffff) * 10) >> 30)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human_and_output_is_truncated() {
        let mut buf = FixedBuf::<64>::new();
        write!(buf, "{} {} {}", Bytes(12), Bytes(1536), Bytes(3 << 20)).unwrap();
        assert_eq!(buf.as_bytes(), b"12 B 1.5 KiB 3.0 MiB");
        let mut small = FixedBuf::<4>::new();
        small.write_str("abcdef").unwrap();
        assert_eq!(small.as_bytes(), b"abcd");
    }
}
