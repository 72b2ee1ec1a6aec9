//! The weights file: one self-describing file per trained model.
//!
//! ```text
//! offset  size  content
//! 0       8     magic  b"diffctl\0"
//! 8       2     format version, u16 little endian (currently 2)
//! 10      4     body length n, u32 little endian
//! 14      n     body: postcard(Header), then the parameters in
//!               NetworkShape::params order, little endian, in header.dtype,
//!               then the target's parameter block (TargetSpec::data_len
//!               bytes: a stored mixture's parameters, else nothing)
//! 14+n    4     CRC-32 (IEEE) of bytes 0 .. 14+n, little endian
//! ```
//!
//! Decoding borrows the input, allocates nothing and never panics: any byte
//! string gives either a model or a [`DecodeError`] saying what is wrong. The
//! checksum is verified before the header is parsed, so a corrupted file reads
//! as [`DecodeError::Checksum`] and a cut one as [`DecodeError::Truncated`].
//!
//! Versions: 2 feeds the network the normalised time `t / T`
//! ([`crate::network`]); 1 fed it `t`. They mean the same model when `T = 1`,
//! so version-1 files with `T = 1` are read as they are and the others are
//! refused ([`DecodeError::Invalid`]): their networks were trained on raw time.

use core::fmt;

use half::{bf16, f16};
use serde::{Deserialize, Serialize};

use crate::integrate::Integrator;
use crate::kernels::Weights;
use crate::network::NetworkShape;
use crate::sde::{Sde, TimeGrid};
use crate::target::{Builtin, TargetSpec};

/// First bytes of every weights file.
pub const MAGIC: [u8; 8] = *b"diffctl\0";
/// The format version this crate writes (it also reads version 1 with `T = 1`).
pub const FORMAT_VERSION: u16 = 2;
/// Largest step count a header may declare.
pub const MAX_STEPS: u32 = 1 << 20;
const PREAMBLE: usize = 14;

/// How the model was trained (decides how its control is read, MATH.md §4, §6, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Time-reversed diffusion sampler (VP SDE).
    Dis,
    /// Path integral sampler (Brownian reference).
    Pis,
    /// Denoising diffusion sampler (VP SDE, control relative to the OU process).
    Dds,
    /// Denoising score matching on data (no target).
    Dsm,
}

/// Storage type of the parameters in the file (evaluation is always `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    /// Bytes per parameter.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }

    /// `v` rounded to this dtype and back.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Dtype::F32 => v,
            Dtype::F16 => f16::from_f32(v).to_f32(),
            Dtype::Bf16 => bf16::from_f32(v).to_f32(),
        }
    }
}

/// Everything about a model except its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub sampler: SamplerKind,
    pub shape: NetworkShape,
    pub sde: Sde,
    pub grid: TimeGrid,
    /// Default number of steps `K`.
    pub steps: u32,
    pub integrator: Integrator,
    /// Prior `N(0, nu^2 I)` of `X_0` (VP SDEs).
    pub prior_nu: f32,
    /// Each coordinate of the target score entering the control is clamped
    /// to `[-score_clip, score_clip]` (as the PIS and DIS reference codes do):
    /// explicit steps through a cubic score (double wells) otherwise blow up.
    pub score_clip: f32,
    /// The target the model was trained on, if it is one the file can name
    /// (a preset, a stored mixture, a data-defined target); `None` for a
    /// target defined in code.
    pub target: Option<TargetSpec>,
    pub dtype: Dtype,
}

impl Header {
    /// Checks every field for range and consistency.
    pub fn validate(&self) -> Result<(), &'static str> {
        self.shape.validate()?;
        self.sde.validate()?;
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err("step count must be in 1..=1048576");
        }
        if !(self.prior_nu.is_finite() && self.prior_nu > 0.0) {
            return Err("prior nu must be finite and positive");
        }
        if self.score_clip.is_nan() || self.score_clip <= 0.0 {
            return Err("score clip must be positive (infinity: no clipping)");
        }
        if let Some(t) = &self.target {
            t.validate()?;
            if t.dim() != self.shape.d as usize {
                return Err("target dimension differs from the network's");
            }
        }
        match (self.sampler, self.sde) {
            (SamplerKind::Pis, Sde::Pis { .. }) => Ok(()),
            (SamplerKind::Pis, _) | (_, Sde::Pis { .. }) => {
                Err("PIS models, and only they, use the PIS reference SDE")
            }
            _ => Ok(()),
        }
    }

    /// Number of parameters in the file.
    pub fn param_count(&self) -> usize {
        self.shape.param_count()
    }
}

/// Why a byte string is not a usable weights file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    UnsupportedVersion {
        found: u16,
        supported: u16,
    },
    /// The file ends after `got` bytes; its preamble announces `needed`.
    Truncated {
        needed: usize,
        got: usize,
    },
    /// Bytes after the checksum.
    TrailingBytes {
        expected: usize,
        got: usize,
    },
    Checksum {
        stored: u32,
        computed: u32,
    },
    /// An enum tag (sampler, SDE, target, dtype, ...) this version does not know.
    UnknownTag,
    /// The header does not parse.
    MalformedHeader,
    /// A header field is out of range.
    Invalid(&'static str),
    /// The parameter block has `got` bytes where the header implies `expected`.
    PayloadLength {
        expected: usize,
        got: usize,
    },
    /// The file's dimension `what` is `file`; the code was compiled for `compiled`.
    Dimension {
        what: &'static str,
        file: u32,
        compiled: u32,
    },
    /// Parameter number `index` is NaN or infinite.
    NonFinite {
        index: usize,
    },
    /// The caller's parameter buffer holds `got` floats, the file has `needed`.
    BufferTooSmall {
        needed: usize,
        got: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError::*;
        match *self {
            BadMagic => f.write_str("not a diffctl weights file (bad magic bytes)"),
            UnsupportedVersion { found, supported } => write!(
                f,
                "weights format version {found} is not supported (this build reads version {supported}, \
                 and version 1 when T = 1)"
            ),
            Truncated { needed, got } => {
                write!(f, "weights file is truncated: {got} bytes of {needed}")
            }
            TrailingBytes { expected, got } => {
                write!(f, "weights file has {got} bytes, expected {expected}: trailing data")
            }
            Checksum { stored, computed } => write!(
                f,
                "weights file is corrupt: checksum {computed:#010x} does not match stored {stored:#010x}"
            ),
            UnknownTag => f.write_str("weights header contains an unknown enum tag"),
            MalformedHeader => f.write_str("weights header is malformed"),
            Invalid(why) => write!(f, "weights header is invalid: {why}"),
            PayloadLength { expected, got } => write!(
                f,
                "weights payload has {got} bytes, the header implies {expected}"
            ),
            Dimension {
                what,
                file,
                compiled,
            } => write!(
                f,
                "dimension mismatch: the file has {what} = {file}, this code was compiled for {what} = {compiled}"
            ),
            NonFinite { index } => write!(f, "parameter {index} is NaN or infinite"),
            BufferTooSmall { needed, got } => {
                write!(f, "parameter buffer holds {got} floats, the model needs {needed}")
            }
        }
    }
}

/// Why a model could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    Invalid(&'static str),
    /// `params` has `got` floats where the shape needs `expected`.
    ParamCount {
        expected: usize,
        got: usize,
    },
    /// Parameter `index` is not finite, or overflows the chosen dtype.
    NotRepresentable {
        index: usize,
    },
    BufferTooSmall {
        needed: usize,
        got: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EncodeError::Invalid(why) => write!(f, "invalid header: {why}"),
            EncodeError::ParamCount { expected, got } => {
                write!(f, "{got} parameters given, the network has {expected}")
            }
            EncodeError::NotRepresentable { index } => {
                write!(f, "parameter {index} is not finite in the chosen dtype")
            }
            EncodeError::BufferTooSmall { needed, got } => {
                write!(f, "output buffer holds {got} bytes, needs {needed}")
            }
        }
    }
}

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) lookup table.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `bytes` (the checksum of zip, PNG and Ethernet).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A decoded file: the header and the raw parameter bytes it describes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    pub header: Header,
    pub(crate) payload: &'a [u8],
    target_data: &'a [u8],
}

impl<'a> Model<'a> {
    /// Checks magic, version, length and checksum, then parses and validates the header.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(bytes) {
                DecodeError::Truncated {
                    needed: PREAMBLE,
                    got: bytes.len(),
                }
            } else {
                DecodeError::BadMagic
            });
        }
        if bytes[..8] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes.len() < PREAMBLE {
            return Err(DecodeError::Truncated {
                needed: PREAMBLE,
                got: bytes.len(),
            });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != FORMAT_VERSION && version != 1 {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let body_len = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]) as usize;
        let total = PREAMBLE
            .checked_add(body_len)
            .and_then(|n| n.checked_add(4))
            .ok_or(DecodeError::MalformedHeader)?;
        if bytes.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                got: bytes.len(),
            });
        }
        if bytes.len() > total {
            return Err(DecodeError::TrailingBytes {
                expected: total,
                got: bytes.len(),
            });
        }
        let (covered, tail) = bytes.split_at(total - 4);
        let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        let computed = crc32(covered);
        if stored != computed {
            return Err(DecodeError::Checksum { stored, computed });
        }
        let body = &covered[PREAMBLE..];
        let (header, payload) = postcard::take_from_bytes::<Header>(body).map_err(|e| match e {
            // serde's derived enum visitors report an out-of-range variant
            // index as a custom error; the header has no other custom errors.
            postcard::Error::DeserializeBadEnum
            | postcard::Error::DeserializeBadOption
            | postcard::Error::SerdeDeCustom => DecodeError::UnknownTag,
            _ => DecodeError::MalformedHeader,
        })?;
        header.validate().map_err(DecodeError::Invalid)?;
        if version == 1 && header.sde.t_end() != 1.0 {
            return Err(DecodeError::Invalid(
                "a version-1 file with T != 1 (its network took raw time, this build takes t / T): \
                 retrain it",
            ));
        }
        let params_len = header.param_count() * header.dtype.size();
        let data_len = header.target.map_or(0, |t| t.data_len());
        let expected = params_len + data_len;
        if payload.len() != expected {
            return Err(DecodeError::PayloadLength {
                expected,
                got: payload.len(),
            });
        }
        let (payload, target_data) = payload.split_at(params_len);
        if let Some(spec) = header.target {
            if data_len > 0 {
                spec.build(target_data).map_err(DecodeError::Invalid)?;
            }
        }
        Ok(Model {
            header,
            payload,
            target_data,
        })
    }

    /// The file's target, when the file alone defines it (a preset or a
    /// stored mixture); `None` when it has none or it needs a data set.
    pub fn target(&self) -> Option<Builtin<'a>> {
        self.header.target?.build(self.target_data).ok()
    }

    /// The target's parameter block (empty but for stored mixtures).
    pub fn target_data(&self) -> &'a [u8] {
        self.target_data
    }

    /// The parameters where they are, in the file's bytes (no copy).
    pub fn weights(&self) -> Weights<'a> {
        match self.header.dtype {
            Dtype::F32 => Weights::F32Le(self.payload),
            Dtype::F16 => Weights::F16Le(self.payload),
            Dtype::Bf16 => Weights::Bf16Le(self.payload),
        }
    }

    /// Parameter `index` as `f32` (`index < header.param_count()`).
    pub(crate) fn param(&self, index: usize) -> f32 {
        self.weights().at(index)
    }
}

/// The network shape of a weights file, read in a `const` context, so that
/// firmware can size its buffers at compile time from the very file it
/// embeds:
///
/// ```
/// use diffctl_runtime::weights::shape_of;
/// use diffctl_runtime::network::NetworkShape;
/// # const WEIGHTS: &[u8] = &[];
/// // const WEIGHTS: &[u8] = include_bytes!("model.dcw");
/// const SHAPE: NetworkShape = match shape_of(WEIGHTS) {
///     Some(shape) => shape,
///     None => NetworkShape::reference(2), // a real firmware: panic!("not a weights file")
/// };
/// const WORK: usize = SHAPE.sampler_work_len(1);
/// let work = [0.0f32; WORK];
/// # assert_eq!(work.len(), SHAPE.sampler_work_len(1));
/// ```
///
/// Reads the magic, the version and the start of the header only (postcard:
/// the sampler kind, then `d`, `channels`, `layers` as varints, `score_term`
/// as a byte); [`Model::parse`] checks everything else, and its header's shape
/// equals this one (tested on every fixture). `None` when the bytes do not
/// start like a weights file or the shape is out of range.
pub const fn shape_of(bytes: &[u8]) -> Option<NetworkShape> {
    if bytes.len() < PREAMBLE {
        return None;
    }
    let mut i = 0;
    while i < MAGIC.len() {
        if bytes[i] != MAGIC[i] {
            return None;
        }
        i += 1;
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != FORMAT_VERSION && version != 1 {
        return None;
    }
    let at = PREAMBLE;
    // The sampler kind, then the shape's three integers.
    let Some((_, at)) = varint_u32(bytes, at) else {
        return None;
    };
    let Some((d, at)) = varint_u32(bytes, at) else {
        return None;
    };
    let Some((channels, at)) = varint_u32(bytes, at) else {
        return None;
    };
    let Some((layers, at)) = varint_u32(bytes, at) else {
        return None;
    };
    if at >= bytes.len() || bytes[at] > 1 {
        return None;
    }
    let shape = NetworkShape {
        d,
        channels,
        layers,
        score_term: bytes[at] == 1,
    };
    if d == 0
        || d > crate::network::MAX_WIDTH
        || channels < 2
        || channels > crate::network::MAX_WIDTH
        || layers < 2
        || layers as usize > crate::network::MAX_LAYERS
    {
        return None;
    }
    Some(shape)
}

/// A postcard (LEB128) `u32` at `bytes[at..]`: its value and the next offset.
const fn varint_u32(bytes: &[u8], mut at: usize) -> Option<(u32, usize)> {
    let mut value = 0u32;
    let mut shift = 0;
    while shift < 35 {
        if at >= bytes.len() {
            return None;
        }
        let b = bytes[at];
        at += 1;
        if shift == 28 && b > 0x0F {
            return None;
        }
        value |= ((b & 0x7F) as u32) << shift;
        if b & 0x80 == 0 {
            return Some((value, at));
        }
        shift += 7;
    }
    None
}

/// Bytes [`encode_into`] writes for this header.
pub fn encoded_len(header: &Header) -> Result<usize, EncodeError> {
    let header_len = postcard::experimental::serialized_size(header)
        .map_err(|_| EncodeError::Invalid("header does not serialise"))?;
    let data_len = header.target.map_or(0, |t| t.data_len());
    Ok(PREAMBLE + header_len + header.param_count() * header.dtype.size() + data_len + 4)
}

/// Writes a weights file into `out`; returns the number of bytes written.
/// Parameters are rounded to `header.dtype` (round to nearest even). For a
/// target with a parameter block use [`encode_into_with`].
pub fn encode_into(header: &Header, params: &[f32], out: &mut [u8]) -> Result<usize, EncodeError> {
    encode_into_with(header, params, &[], out)
}

/// [`encode_into`] with the target's parameter block `target_data`
/// ([`TargetSpec::data_len`] bytes, checked by building the target).
pub fn encode_into_with(
    header: &Header,
    params: &[f32],
    target_data: &[u8],
    out: &mut [u8],
) -> Result<usize, EncodeError> {
    header.validate().map_err(EncodeError::Invalid)?;
    let data_len = header.target.map_or(0, |t| t.data_len());
    if target_data.len() != data_len {
        return Err(EncodeError::Invalid(
            "target parameter block has the wrong length",
        ));
    }
    if let Some(spec) = header.target.filter(|_| data_len > 0) {
        spec.build(target_data).map_err(EncodeError::Invalid)?;
    }
    let expected = header.param_count();
    if params.len() != expected {
        return Err(EncodeError::ParamCount {
            expected,
            got: params.len(),
        });
    }
    let total = encoded_len(header)?;
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall {
            needed: total,
            got: out.len(),
        });
    }
    let out = &mut out[..total];
    let body_len = u32::try_from(total - PREAMBLE - 4)
        .map_err(|_| EncodeError::Invalid("model larger than 4 GiB"))?;
    out[..8].copy_from_slice(&MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[10..14].copy_from_slice(&body_len.to_le_bytes());
    let header_len = postcard::to_slice(header, &mut out[PREAMBLE..])
        .map_err(|_| EncodeError::Invalid("header does not serialise"))?
        .len();
    let size = header.dtype.size();
    let payload = &mut out[PREAMBLE + header_len..total - 4 - data_len];
    for (index, (&v, slot)) in params
        .iter()
        .zip(payload.chunks_exact_mut(size))
        .enumerate()
    {
        if !header.dtype.round(v).is_finite() {
            return Err(EncodeError::NotRepresentable { index });
        }
        match header.dtype {
            Dtype::F32 => slot.copy_from_slice(&v.to_le_bytes()),
            Dtype::F16 => slot.copy_from_slice(&f16::from_f32(v).to_le_bytes()),
            Dtype::Bf16 => slot.copy_from_slice(&bf16::from_f32(v).to_le_bytes()),
        }
    }
    out[total - 4 - data_len..total - 4].copy_from_slice(target_data);
    let crc = crc32(&out[..total - 4]);
    out[total - 4..].copy_from_slice(&crc.to_le_bytes());
    Ok(total)
}

/// [`encode_into`] a new `Vec`.
#[cfg(feature = "alloc")]
pub fn encode(header: &Header, params: &[f32]) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    encode_with(header, params, &[])
}

/// [`encode_into_with`] a new `Vec`.
#[cfg(feature = "alloc")]
pub fn encode_with(
    header: &Header,
    params: &[f32],
    target_data: &[u8],
) -> Result<alloc::vec::Vec<u8>, EncodeError> {
    let mut out = alloc::vec![0u8; encoded_len(header)?];
    let n = encode_into_with(header, params, target_data, &mut out)?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
