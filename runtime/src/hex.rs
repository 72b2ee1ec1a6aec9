//! The device-check text format: one sample per line, its coordinates as the
//! hexadecimal bits of their `f32` values, so that two lines are equal exactly
//! when the samples are equal bit for bit.
//!
//! ```text
//! <seed> <index> <x_0 bits> <x_1 bits> ... <x_{d-1} bits>\n
//! ```
//!
//! `seed` and `index` in decimal; each coordinate as 8 lowercase hexadecimal
//! digits of `f32::to_bits` (so `-0.0` is `80000000`, distinct from `00000000`);
//! fields separated by one space; `\n` after the last field.
//!
//! The bits are written as they are, NaN included. Only finite samples are
//! comparable across targets: the sign and payload of a NaN are not portable
//! (an exploding path gives `7fc00000` in some coordinates on x86_64 where
//! WASM under V8 gives `ffc00000`), so device checks must use finite fixtures.
//!
//! ```
//! let mut line = String::new();
//! diffctl_runtime::hex::write_sample_line(&mut line, 42, 7, &[1.0, -0.5]).unwrap();
//! assert_eq!(line, "42 7 3f800000 bf000000\n");
//! ```

use core::fmt;

/// Writes sample `index` under `seed`, with coordinates `x`, as one line of
/// the format described in the module docs.
pub fn write_sample_line<W: fmt::Write + ?Sized>(
    out: &mut W,
    seed: u64,
    index: u64,
    x: &[f32],
) -> fmt::Result {
    write!(out, "{seed} {index}")?;
    for v in x {
        write!(out, " {:08x}", v.to_bits())?;
    }
    out.write_char('\n')
}

/// Length in bytes of the line [`write_sample_line`] writes for these values
/// (for sizing fixed output buffers): at most `2 * 20 + 2 + 9 * d + 1`.
pub fn line_len(seed: u64, index: u64, d: usize) -> usize {
    decimal_digits(seed) + 1 + decimal_digits(index) + 9 * d + 1
}

/// A [`fmt::Write`] into a fixed `[u8; N]`: holds one line without an
/// allocator (the Cortex-M firmware's output line). Writing past `N` bytes
/// is an [`fmt::Error`] and leaves the buffer as it was.
#[derive(Clone, Debug)]
pub struct LineBuf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> LineBuf<N> {
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The bytes written since the last [`LineBuf::clear`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for LineBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn decimal_digits(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let mut b = LineBuf::<128>::new();
        let x = [0.0, -0.0, 1.0, f32::MIN_POSITIVE / 2.0, -3.25];
        write_sample_line(&mut b, u64::MAX, 0, &x).unwrap();
        let line = core::str::from_utf8(b.as_bytes()).unwrap();
        assert_eq!(
            line,
            "18446744073709551615 0 00000000 80000000 3f800000 00400000 c0500000\n"
        );
        assert_eq!(line_len(u64::MAX, 0, x.len()), line.len());
        assert_eq!(line_len(9, 10, 0), "9 10\n".len());
    }

    #[test]
    fn line_buffer_refuses_overflow_and_clears() {
        let mut b = LineBuf::<8>::new();
        assert!(write_sample_line(&mut b, 1, 2, &[1.0]).is_err());
        b.clear();
        write_sample_line(&mut b, 1, 2, &[]).unwrap();
        assert_eq!(b.as_bytes(), b"1 2\n");
    }
}
