//! The NumPy `.npy` format, version 1.0, for an `(n, d)` array of `f32`.
//!
//! ```text
//! b"\x93NUMPY" 1 0 <u16 LE header length> <header: Python dict literal, space padded, '\n'> <data>
//! ```
//!
//! The header is `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`,
//! padded so that the data starts at a multiple of 64 bytes; the data is
//! little-endian `f32` in C (row-major) order.

const MAGIC: &[u8] = b"\x93NUMPY";

/// The `.npy` file of the row-major `rows x cols` array `data`
/// (`data.len() == rows * cols`). (`diffctl sample` streams [`header`] and
/// the data chunk by chunk; this is the whole file at once.)
#[cfg(test)]
pub fn encode_f32(rows: usize, cols: usize, data: &[f32]) -> Vec<u8> {
    let mut out = header(rows, cols);
    out.reserve(4 * data.len());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Magic, version, header length and the padded header of an `(rows, cols)` `<f4` array.
pub fn header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + dict + padding + '\n' = 64 k bytes.
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    let header_len = dict.len() + 1 + (64 - unpadded % 64) % 64;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // A shape of two integers keeps the dict far below 65535 bytes.
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    out
}

/// The header dictionary and data offset of a version 1.0 `.npy` file.
#[cfg(test)]
pub fn parse_header(bytes: &[u8]) -> Option<(&str, usize)> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC || bytes[6..8] != [1, 0] {
        return None;
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let dict = std::str::from_utf8(bytes.get(10..10 + len)?).ok()?;
    Some((dict, 10 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_data_round_trip() {
        let data = [1.0f32, -2.5, 0.0, f32::MIN_POSITIVE, 3.0, -0.0];
        let bytes = encode_f32(3, 2, &data);
        let (dict, offset) = parse_header(&bytes).unwrap();
        assert_eq!(offset % 64, 0);
        assert!(dict.ends_with('\n'));
        assert_eq!(
            dict.trim_end(),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }"
        );
        assert_eq!(bytes.len(), offset + 4 * data.len());
        let back: Vec<f32> = bytes[offset..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(
            back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn padding_for_any_shape() {
        for (r, c) in [(1, 1), (10, 2), (123_456, 50), (usize::MAX / 8, 7)] {
            let bytes = header(r, c);
            let (_, offset) = parse_header(&bytes).unwrap();
            assert_eq!(offset % 64, 0, "{r} x {c}");
        }
    }
}
