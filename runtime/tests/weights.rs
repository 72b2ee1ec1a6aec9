//! The weights file: round trips, and every damaged file is an `Err`, never a panic.

mod common;

use common::random_params;
use diffctl_runtime::normal::stream;
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::{
    crc32, encode_into, encoded_len, DecodeError, EncodeError, FORMAT_VERSION,
};
use rand_core::Rng;

fn header(dtype: Dtype) -> Header {
    Header {
        sampler: SamplerKind::Dis,
        shape: NetworkShape {
            d: 2,
            channels: 8,
            layers: 4,
            score_term: true,
        },
        sde: Sde::default(),
        grid: TimeGrid::Quadratic,
        steps: 100,
        integrator: Integrator::Exponential,
        prior_nu: 1.0,
        score_clip: 100.0,
        target: Some(TargetSpec::Gmm),
        dtype,
    }
}

fn encode(h: &Header, params: &[f32]) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0u8; encoded_len(h)?];
    encode_into(h, params, &mut out)?;
    Ok(out)
}

fn file(dtype: Dtype) -> (Header, Vec<f32>, Vec<u8>) {
    let h = header(dtype);
    let params = random_params(h.shape, 1, 0.3);
    let bytes = encode(&h, &params).expect("valid model encodes");
    (h, params, bytes)
}

fn decode(bytes: &[u8]) -> Result<(Header, Vec<f32>), DecodeError> {
    let model = Model::parse(bytes)?;
    let mut out = vec![0.0; model.header.param_count()];
    model.params_into(&mut out)?;
    Ok((model.header, out))
}

/// Rewrites the stored checksum so that a deliberate edit reaches the parser.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn f32_round_trip_is_exact() {
    let (h, params, bytes) = file(Dtype::F32);
    let (h2, p2) = decode(&bytes).unwrap();
    assert_eq!(h, h2);
    assert_eq!(
        params.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        p2.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn half_precision_round_trips_within_rounding() {
    for (dtype, rel) in [(Dtype::F16, 2f32.powi(-11)), (Dtype::Bf16, 2f32.powi(-8))] {
        let (_, params, bytes) = file(dtype);
        let (_, p2) = decode(&bytes).unwrap();
        for (a, b) in params.iter().zip(&p2) {
            // Exactly the dtype's round-to-nearest, and within half an ulp.
            assert_eq!(dtype.round(*a).to_bits(), b.to_bits());
            assert!(
                (a - b).abs() <= rel * a.abs() + 6e-8,
                "{dtype:?}: {a} -> {b}"
            );
        }
    }
}

#[test]
fn fixed_size_network_loads_and_checks_dimensions() {
    let (h, params, bytes) = file(Dtype::F32);
    let model = Model::parse(&bytes).unwrap();
    let mut net = Network::<2, 8, 2>::zeroed(false);
    model.load_network(&mut net).unwrap();
    let mut flat = vec![0.0; h.param_count()];
    model.params_into(&mut flat).unwrap();
    assert_eq!(flat, params);
    let mut wrong = Network::<3, 8, 2>::zeroed(false);
    let err = model.load_network(&mut wrong).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Dimension {
            what: "d",
            file: 2,
            compiled: 3
        }
    );
    assert!(
        err.to_string().contains("the file has d = 2")
            && err.to_string().contains("compiled for d = 3")
    );
    let mut wrong = Network::<2, 16, 2>::zeroed(false);
    assert!(matches!(
        model.load_network(&mut wrong),
        Err(DecodeError::Dimension {
            what: "channels",
            ..
        })
    ));
}

/// Version 1 fed the network raw time `t`, version 2 feeds `t / T`: a
/// version-1 file is the same model when `T = 1` and is read; with any other
/// `T` it is refused with a reason.
#[test]
fn version_one_files_read_only_with_unit_horizon() {
    assert_eq!(FORMAT_VERSION, 2);
    let as_version_one = |mut b: Vec<u8>| {
        b[8..10].copy_from_slice(&1u16.to_le_bytes());
        reseal(&mut b);
        b
    };
    let (h, params, bytes) = file(Dtype::F32);
    assert_eq!(h.sde.t_end(), 1.0);
    assert_eq!(decode(&as_version_one(bytes)).unwrap(), (h, params.clone()));

    let pis = Header {
        sampler: SamplerKind::Pis,
        sde: Sde::pis_reference(),
        integrator: Integrator::EulerMaruyama,
        ..h
    };
    let bytes = encode(&pis, &params).unwrap();
    assert_eq!(decode(&bytes).unwrap().0, pis);
    let err = decode(&as_version_one(bytes)).unwrap_err();
    assert!(
        matches!(err, DecodeError::Invalid(why) if why.contains("retrain")),
        "{err}"
    );
}

#[test]
fn typed_errors_for_each_kind_of_damage() {
    let (_, _, bytes) = file(Dtype::F32);
    let mut b = bytes.clone();
    b[0] = b'X';
    assert_eq!(decode(&b).unwrap_err(), DecodeError::BadMagic);
    let mut b = bytes.clone();
    b[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert!(matches!(
        decode(&b),
        Err(DecodeError::UnsupportedVersion { found, supported })
            if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION
    ));
    assert!(matches!(
        decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut b = bytes.clone();
    b.push(0);
    assert!(matches!(decode(&b), Err(DecodeError::TrailingBytes { .. })));
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    assert!(matches!(decode(&b), Err(DecodeError::Checksum { .. })));
    // Sampler tag (first header byte) out of range, checksum repaired.
    let mut b = bytes.clone();
    b[14] = 9;
    reseal(&mut b);
    assert_eq!(decode(&b).unwrap_err(), DecodeError::UnknownTag);
    // A NaN parameter (the last one), checksum repaired.
    let mut b = bytes.clone();
    let n = b.len();
    b[n - 8..n - 4].copy_from_slice(&f32::NAN.to_le_bytes());
    reseal(&mut b);
    let count = header(Dtype::F32).param_count();
    assert_eq!(
        decode(&b).unwrap_err(),
        DecodeError::NonFinite { index: count - 1 }
    );
    // The encoder refuses what it cannot represent.
    let h = header(Dtype::F16);
    let mut params = random_params(h.shape, 1, 0.3);
    params[3] = 1e6;
    assert!(encode(&h, &params).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for dtype in [Dtype::F32, Dtype::F16] {
        let (_, _, bytes) = file(dtype);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }
}

#[test]
fn ten_thousand_random_mutations_are_errors() {
    let (_, _, bytes) = file(Dtype::F16);
    let mut rng = stream(99, 0);
    for trial in 0..10_000 {
        let mut b = bytes.clone();
        let edits = 1 + (rng.next_u64() % 4) as usize;
        for _ in 0..edits {
            let pos = (rng.next_u64() % b.len() as u64) as usize;
            if rng.next_u64().is_multiple_of(2) {
                b[pos] ^= 1 << (rng.next_u64() % 8); // one bit
            } else {
                b[pos] = rng.next_u64() as u8; // one byte
            }
        }
        if b == bytes {
            continue; // a byte rewritten with its own value: not a mutation
        }
        assert!(decode(&b).is_err(), "trial {trial}: mutated file decoded");
    }
    // Random byte strings, including ones with a valid preamble: errors, no panic.
    for trial in 0..10_000u64 {
        let mut rng = stream(100, trial);
        let len = (rng.next_u64() % 64) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if trial % 2 == 0 && len >= 14 {
            b[..8].copy_from_slice(b"diffctl\0");
            b[8..10].copy_from_slice(&1u16.to_le_bytes());
            // The file is 8 magic + 2 version + 4 length + body + 4 CRC bytes.
            // For len < 18 no body fits: the length wraps below zero on
            // purpose (about 4 GiB), and the CRC that `reseal` writes over
            // the last 4 bytes partly overwrites it; either way the declared
            // body does not fit the file.
            let body = (len as u32).wrapping_sub(18);
            b[10..14].copy_from_slice(&body.to_le_bytes());
            reseal(&mut b);
        }
        assert!(decode(&b).is_err());
    }
}
