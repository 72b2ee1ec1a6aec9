//! The time branch tabulated per grid time (`NetworkControl::tabulate`):
//! the same bits as computing it at every step, for every fixture, and the
//! table is really used.

use diffctl_runtime::prelude::*;

mod common;

use common::{fixture, FIXTURES};

/// Samples 0..12 of seed 5 in batches of `batch`: coordinates and both costs.
fn bits<C: Control, T: Target>(sampler: &Sampler<'_, C, T>, batch: usize) -> Vec<u64> {
    common::sample_bits(sampler, &[5], 12, batch)
}

#[test]
fn a_tabulated_time_branch_gives_the_same_bits() {
    for name in FIXTURES {
        let bytes = fixture(name);
        let model = Model::parse(&bytes).unwrap();
        let shape = model.header.shape;
        let plain = model.sampler().unwrap();
        let want = bits(&plain, 1);

        let mut table = vec![0.0f32; shape.time_table_len(plain.steps)];
        let mut sampler = model.sampler().unwrap();
        sampler.control.time_table = Some(
            sampler
                .control
                .tabulate(sampler.grid, sampler.steps, &mut table)
                .unwrap(),
        );
        for batch in [1, 5] {
            assert!(
                bits(&sampler, batch) == want,
                "{name}: tabulated samples (batch {batch}) differ"
            );
        }

        // The table is used: with its caches zeroed the samples change.
        let mut poisoned = table.clone();
        let row = 1 + shape.time_cache_len();
        for entry in poisoned[..plain.steps * row].chunks_exact_mut(row) {
            entry[1..].fill(0.0);
        }
        let mut sampler = model.sampler().unwrap();
        sampler.control.time_table = Some(&poisoned[..plain.steps * row]);
        assert!(bits(&sampler, 1) != want, "{name}: the table was not read");

        // A table for another grid is never wrongly hit: every lookup misses
        // and the branch is computed.
        let mut other = vec![0.0f32; shape.time_table_len(plain.steps + 1)];
        let mut sampler = model.sampler().unwrap();
        let table = sampler
            .control
            .tabulate(sampler.grid, sampler.steps + 1, &mut other)
            .unwrap();
        let mut zeroed = table.to_vec();
        for entry in zeroed.chunks_exact_mut(row).skip(1) {
            entry[1..].fill(0.0);
        }
        sampler.control.time_table = Some(&zeroed);
        // t_0 = 0 is on both grids (its entry is intact); no other time is.
        assert!(bits(&sampler, 1) == want, "{name}: a foreign time was hit");
    }
}

#[test]
fn a_short_table_buffer_is_an_error() {
    let bytes = fixture("gmm_f16");
    let model = Model::parse(&bytes).unwrap();
    let sampler = model.sampler().unwrap();
    let mut table = vec![0.0f32; model.header.shape.time_table_len(sampler.steps) - 1];
    assert!(sampler
        .control
        .tabulate(sampler.grid, sampler.steps, &mut table)
        .is_err());
}
