//! Golden samples: every device fixture in `examples/fixtures/`, sampled on
//! the host, must give exactly the committed lines in
//! `examples/fixtures/golden/` (format of `diffctl_runtime::hex`). Every other
//! bit-identity check compares two live runs; this one pins the samples
//! across versions ("same file, same seed, same samples"). A change of
//! samples must be deliberate: regenerate with `bash examples/fixtures/golden.sh`
//! and say why in the commit. `.ci/device-check.sh` checks QEMU and WASM
//! against the same files.

use std::path::PathBuf;

use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;

mod common;

use common::FIXTURES;

/// Must match `.ci/device-check.sh` and `examples/fixtures/golden.sh`.
const SEEDS: [u64; 3] = [0, 1, u64::MAX];
const N: usize = 100;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/fixtures")
}

/// The lines of one fixture, drawn in batches of `batch` (the golden files
/// were written with one batch of 100; a sample must not depend on its batch).
fn host_lines(bytes: &[u8], batch: usize) -> String {
    let model = Model::parse(bytes).unwrap();
    let header = model.header;
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).unwrap();
    let net = NetworkRef::from_flat(header.shape, &params).unwrap();
    let target = model.target().expect("fixtures name their target");
    let sampler = header.sampler_for(net, Some(target), None, None).unwrap();
    let mut out = String::new();
    common::for_each_sample(&sampler, &SEEDS, N, batch, |seed, index, x, _| {
        write_sample_line(&mut out, seed, index, x).unwrap();
    });
    out
}

#[test]
fn host_samples_match_the_committed_golden_lines() {
    for name in FIXTURES {
        let dir = fixtures_dir();
        let bytes = std::fs::read(dir.join(format!("{name}.dcw"))).unwrap();
        let golden = std::fs::read_to_string(dir.join(format!("golden/{name}.hex")))
            .unwrap_or_else(|e| panic!("golden/{name}.hex: {e} (run examples/fixtures/golden.sh)"));
        assert_eq!(golden.lines().count(), SEEDS.len() * N, "{name}");
        for batch in [N, 7] {
            let got = host_lines(&bytes, batch);
            if got != golden {
                let (line, (g, w)) = got
                    .lines()
                    .zip(golden.lines())
                    .enumerate()
                    .find(|(_, (g, w))| g != w)
                    .expect("same lines, different length");
                panic!(
                    "{name} (batch {batch}): samples differ from golden/{name}.hex at line {}:\n  \
                     host:   {g}\n  golden: {w}\nIf the change is deliberate, regenerate with \
                     `bash examples/fixtures/golden.sh` and say why in the commit.",
                    line + 1
                );
            }
        }
    }
}
