//! Sample files: CSV and NumPy `.npy`, read ([`load`], [`parse_csv`],
//! [`parse_npy`]) and written ([`to_csv`], [`to_npy`], [`npy_header`]: the
//! one `.npy` writer, which `diffctl sample` streams too).

use std::path::Path;

use super::Dataset;

/// Reads a sample file: `.npy` by extension (or by its magic bytes),
/// otherwise CSV. `expect_d` checks the dimension. Errors start with the path.
pub fn load(path: &Path, expect_d: Option<usize>) -> Result<Dataset, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        || bytes.starts_with(NPY_MAGIC);
    let parsed = if is_npy {
        parse_npy(&bytes)
    } else {
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| format!("not UTF-8 text (byte {})", e.valid_up_to()))?;
        parse_csv(text)
    };
    let data = parsed.map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(d) = expect_d {
        data.expect_dim(d)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(data)
}

/// Parses CSV text: one sample per line, values separated by commas (or
/// semicolons, tabs, spaces). Blank lines and lines starting with `#` are
/// skipped; a first line that is not numeric is taken as a header. Errors
/// name the 1-based line.
pub fn parse_csv(text: &str) -> Result<Dataset, String> {
    let mut xs = Vec::new();
    let mut d: Option<(usize, usize)> = None; // (d, line it was set on)
    let mut first_content = true;
    for (k, raw) in text.lines().enumerate() {
        let line_no = k + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split([',', ';', '\t', ' '])
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .collect();
        // A first line of names only is a header.
        if std::mem::take(&mut first_content) && fields.iter().all(|f| f.parse::<f64>().is_err()) {
            continue;
        }
        match d {
            None => d = Some((fields.len(), line_no)),
            Some((d0, at)) if fields.len() != d0 => {
                return Err(format!(
                    "line {line_no} has {} values, line {at} has {d0} (ragged rows)",
                    fields.len()
                ))
            }
            _ => {}
        }
        for (j, f) in fields.iter().enumerate() {
            let v: f64 = f
                .parse()
                .map_err(|_| format!("line {line_no}, column {}: {f:?} is not a number", j + 1))?;
            if !v.is_finite() {
                return Err(format!(
                    "line {line_no}, column {}: {f} (NaN and infinities are not data)",
                    j + 1
                ));
            }
            let v32 = v as f32;
            if !v32.is_finite() {
                return Err(format!(
                    "line {line_no}, column {}: {f} overflows f32",
                    j + 1
                ));
            }
            xs.push(v32);
        }
    }
    let Some((d, _)) = d else {
        return Err("no data rows (the file is empty)".into());
    };
    Dataset::new(d, xs)
}

pub(crate) const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Parses a NumPy `.npy` file (format 1.0, 2.0 or 3.0) holding a 2-d
/// (`n x d`) or 1-d (`n x 1`) array of `f4` or `f8`, either byte order, C or
/// Fortran order.
pub fn parse_npy(bytes: &[u8]) -> Result<Dataset, String> {
    if !bytes.starts_with(NPY_MAGIC) || bytes.len() < 10 {
        return Err("not a .npy file (bad magic bytes)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(".npy header is truncated".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or(".npy header is truncated")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| ".npy header is not text")?;
    let descr = npy_field(header, "descr").ok_or(".npy header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let (size, big_endian) = match descr {
        "<f4" | "=f4" | "f4" => (4, false),
        ">f4" => (4, true),
        "<f8" | "=f8" | "f8" => (8, false),
        ">f8" => (8, true),
        other => {
            return Err(format!(
                ".npy dtype {other} is not supported (need float32 or float64)"
            ))
        }
    };
    let fortran = match npy_field(header, "fortran_order") {
        Some("True") => true,
        Some("False") => false,
        _ => return Err(".npy header has no valid 'fortran_order'".into()),
    };
    let shape = npy_field(header, "shape").ok_or(".npy header has no 'shape'")?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!(".npy shape {shape} does not parse"))?;
    let (n, d) = match dims[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(format!(
                ".npy array has shape {shape}: need n x d (2-d) or n (1-d)"
            ))
        }
    };
    if n == 0 || d == 0 {
        return Err(format!(".npy array has shape {shape}: no data (empty)"));
    }
    let count = n.checked_mul(d).ok_or(".npy shape overflows")?;
    let payload = &bytes[end..];
    let needed = count.checked_mul(size).ok_or(".npy shape overflows")?;
    if payload.len() != needed {
        return Err(format!(
            ".npy data has {} bytes, shape {shape} of {descr} needs {needed}",
            payload.len()
        ));
    }
    let value = |k: usize| -> f64 {
        let b = &payload[k * size..(k + 1) * size];
        if size == 4 {
            let a = [b[0], b[1], b[2], b[3]];
            f32::from_bits(if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }) as f64
        } else {
            let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
            f64::from_bits(if big_endian {
                u64::from_be_bytes(a)
            } else {
                u64::from_le_bytes(a)
            })
        }
    };
    let mut xs = Vec::with_capacity(count);
    for i in 0..n {
        for j in 0..d {
            // C order: element (i, j) at i d + j; Fortran order: at j n + i.
            let v = value(if fortran { j * n + i } else { i * d + j });
            let v32 = v as f32;
            if !v32.is_finite() {
                let what = if v.is_nan() {
                    "NaN".to_string()
                } else if v.is_infinite() {
                    format!("{v}")
                } else {
                    format!("{v} (overflows f32)")
                };
                return Err(format!(
                    "row {}, column {} is {what} (NaN and infinities are not data)",
                    i + 1,
                    j + 1
                ));
            }
            xs.push(v32);
        }
    }
    Dataset::new(d, xs)
}

/// The raw value text of `key` in a `.npy` header dict (`{'descr': '<f4', ...}`).
fn npy_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let at = header
        .find(&pat_single)
        .map(|i| i + pat_single.len())
        .or_else(|| header.find(&pat_double).map(|i| i + pat_double.len()))?;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Writes `data` as CSV text (one sample per line, shortest round-trip floats).
pub fn to_csv(data: &Dataset) -> String {
    let mut out = String::new();
    for x in data.xs.chunks_exact(data.d) {
        let row: Vec<String> = x.iter().map(|v| format!("{v}")).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

/// Magic, version, header length and the padded header of a version 1.0
/// `.npy` file of an `(rows, cols)` little-endian `f4` array: the data
/// (row-major) starts right after it, at a multiple of 64 bytes.
pub fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Pad with spaces so that magic + version + length + dict + '\n' is a multiple of 64.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = NPY_MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    // A shape of two integers keeps the dict far below 65535 bytes.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Encodes `data` as a little-endian `f4` `.npy` file (format 1.0).
pub fn to_npy(data: &Dataset) -> Vec<u8> {
    let mut out = npy_header(data.len(), data.d);
    out.reserve(4 * data.xs.len());
    for v in &data.xs {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's header is what `parse_npy` reads, data at a multiple of
    /// 64 bytes, values bit for bit.
    #[test]
    fn npy_round_trip_and_padding() {
        let xs = vec![1.0f32, -2.5, 0.0, f32::MIN_POSITIVE, 3.0, -0.0];
        let data = Dataset::new(2, xs.clone()).unwrap();
        let bytes = to_npy(&data);
        let header = npy_header(3, 2);
        assert_eq!(header.len() % 64, 0);
        assert_eq!(&bytes[..header.len()], &header[..]);
        assert!(String::from_utf8_lossy(&header).contains("'shape': (3, 2), }"));
        let back = parse_npy(&bytes).unwrap();
        assert_eq!(back.d, 2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.xs), bits(&xs));
        for (r, c) in [(1, 1), (10, 2), (123_456, 50), (usize::MAX / 8, 7)] {
            assert_eq!(npy_header(r, c).len() % 64, 0, "{r} x {c}");
        }
    }
}
