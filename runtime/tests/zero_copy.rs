//! Zero-copy weights: a network evaluated from the bytes of a weights file
//! (`Model::network`, `Model::sampler`) gives the same bits as one evaluated
//! from a buffer of `f32` (`Model::params_into` + `NetworkRef::from_flat`),
//! for every fixture and for each storage type (f32, f16, bf16), in samples
//! and in both path costs. And the compile-time shape reader agrees with the
//! parser.

use diffctl_runtime::prelude::*;
use diffctl_runtime::weights::{crc32, encode_into_with, encoded_len};

mod common;

use common::{fixture, FIXTURES};

const SEEDS: [u64; 3] = [0, 1, u64::MAX];
const N: usize = 40;

/// Samples `0..N` of every seed in batches of `batch`: the bits of every
/// coordinate and of both path costs.
fn bits<C: Control, T: Target>(sampler: &Sampler<'_, C, T>, batch: usize) -> Vec<u64> {
    common::sample_bits(sampler, &SEEDS, N, batch)
}

/// The buffered path and the zero-copy path on one file: equal bits.
fn assert_same_bits(bytes: &[u8], what: &str) {
    let model = Model::parse(bytes).unwrap();
    let header = model.header;

    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).unwrap();
    let net = NetworkRef::from_flat(header.shape, &params).unwrap();
    let target = model.target().unwrap();
    let buffered = header.sampler_for(net, Some(target), None, None).unwrap();

    let zero_copy = model.sampler().unwrap();
    assert!(
        zero_copy.control.net.time_w1.as_f32().is_none(),
        "{what}: the zero-copy network must read the file's bytes"
    );
    let want = bits(&buffered, N);
    assert!(want.iter().all(|&b| b != 0), "{what}: degenerate output");
    for batch in [1, 7, N] {
        assert!(
            bits(&zero_copy, batch) == want,
            "{what}: zero-copy samples (batch {batch}) differ from the buffered path"
        );
    }
}

#[test]
fn every_fixture_gives_the_buffered_bits_from_its_bytes() {
    for name in FIXTURES {
        assert_same_bits(&fixture(name), name);
    }
}

/// Every fixture's parameters stored as f32, f16 and bf16 (bf16 has no
/// fixture of its own): zero-copy == buffered for each.
#[test]
fn every_dtype_gives_the_buffered_bits_from_its_bytes() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let model = Model::parse(&bytes).unwrap();
        let mut params = vec![0.0f32; model.header.param_count()];
        model.params_into(&mut params).unwrap();
        for dtype in [Dtype::F32, Dtype::F16, Dtype::Bf16] {
            let header = Header {
                dtype,
                ..model.header
            };
            let mut out = vec![0u8; encoded_len(&header).unwrap()];
            let n = encode_into_with(&header, &params, model.target_data(), &mut out).unwrap();
            assert_same_bits(&out[..n], &format!("{name} as {dtype:?}"));
        }
    }
}

#[test]
fn a_non_finite_parameter_is_refused_in_place() {
    let bytes = fixture("gmm_f16");
    let model = Model::parse(&bytes).unwrap();
    let header = model.header;
    assert_eq!(header.dtype, Dtype::F16);
    let params_len = header.param_count() * 2;
    let start = bytes.len() - 4 - model.target_data().len() - params_len;
    for (index, half) in [
        (0usize, 0x7C00u16),
        (1234, 0xFE00),
        (params_len / 2 - 1, 0xFC00),
    ] {
        let mut bad = bytes.clone();
        bad[start + 2 * index..start + 2 * index + 2].copy_from_slice(&half.to_le_bytes());
        let n = bad.len() - 4;
        let crc = crc32(&bad[..n]);
        bad[n..].copy_from_slice(&crc.to_le_bytes());
        let model = Model::parse(&bad).unwrap();
        assert_eq!(
            model.network().unwrap_err(),
            DecodeError::NonFinite { index }
        );
        assert!(matches!(
            model.sampler().unwrap_err(),
            diffctl_runtime::Error::Decode(DecodeError::NonFinite { index: i }) if i == index
        ));
    }
}

/// The shape of an embedded file, at compile time: what firmware sizes its
/// buffers with.
const GMM_F16: &[u8] = include_bytes!("../../examples/fixtures/gmm_f16.dcw");
const GMM_SHAPE: NetworkShape = match shape_of(GMM_F16) {
    Some(shape) => shape,
    None => panic!("gmm_f16.dcw is not a weights file"),
};
const GMM_WORK: usize = GMM_SHAPE.sampler_work_len(1);

#[test]
fn shape_of_agrees_with_the_parser() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let model = Model::parse(&bytes).unwrap();
        assert_eq!(shape_of(&bytes), Some(model.header.shape), "{name}");
        let sampler = model.sampler().unwrap();
        assert!(sampler.work_len(1) <= model.header.shape.sampler_work_len(1));
    }
    assert_eq!(GMM_SHAPE, NetworkShape::reference(2));
    let work = [0.0f32; GMM_WORK];
    let sampler = Model::parse(GMM_F16).unwrap().sampler().unwrap();
    let mut xs = [0.0f32; GMM_SHAPE.d as usize];
    let mut paths: [PathState; 1] = Default::default();
    sampler
        .sample(0, 0, &mut xs, &mut paths, &mut work.clone())
        .unwrap();
    // Not a weights file, or cut before the shape ends: None, never a panic.
    assert_eq!(shape_of(b""), None);
    assert_eq!(shape_of(b"diffctl\0"), None);
    assert_eq!(shape_of(&GMM_F16[..16]), None);
    let mut wrong = GMM_F16.to_vec();
    wrong[0] = b'D';
    assert_eq!(shape_of(&wrong), None);
    for cut in 0..40 {
        let _ = shape_of(&GMM_F16[..cut]);
    }
}

/// From bytes to samples in three calls with one error type, and a buffer
/// too small is that error, not a panic.
#[test]
fn loading_takes_three_calls_and_one_error_type() {
    fn run(bytes: &[u8], work: &mut [f32]) -> Result<[f32; 2], diffctl_runtime::Error> {
        let model = Model::parse(bytes)?;
        let sampler = model.sampler()?;
        let mut xs = [0.0f32; 2];
        let mut paths: [PathState; 1] = Default::default();
        sampler.sample(7, 3, &mut xs, &mut paths, work)?;
        Ok(xs)
    }
    let mut work = [0.0f32; GMM_WORK];
    assert!(run(GMM_F16, &mut work).is_ok());
    assert!(matches!(
        run(GMM_F16, &mut work[..10]),
        Err(diffctl_runtime::Error::Sample(SampleError::Buffer {
            what: "work",
            ..
        }))
    ));
    assert!(matches!(
        run(&GMM_F16[..100], &mut work),
        Err(diffctl_runtime::Error::Decode(
            DecodeError::Truncated { .. }
        ))
    ));
}
