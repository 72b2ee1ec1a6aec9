//! The trainer's random streams: one named function per purpose.
//!
//! Everything random comes from the runtime's counter-based streams
//! [`stream(seed, index)`](diffctl_runtime::normal::stream). The runtime
//! gives sample `i` under seed `s` the stream `stream(s, i)`: indices count up
//! from 0. The trainer's own purposes take indices near `2^63` or counted
//! down from `u64::MAX`, far from any sample index, so a run's draws are
//! functions of `(seed, purpose, k)` only: not of thread counts or of the
//! order work is done in. (Rows of data sets, exact target samples and the
//! likelihood bound's paths are samples in this sense: they take
//! `stream(seed, i)` under their own seed.)
//!
//! | function | stream | used by |
//! |---|---|---|
//! | [`init`] | `stream(seed, 2^63 - 1)` | network initialisation (train, fit) |
//! | [`iteration`] | first word of `stream(seed, u64::MAX - k)` | iteration `k`'s paths (train) or batch (fit) |
//! | [`evaluation`] | [`iteration`]`(seed ^ 0xE7A1, k)` | the periodic evaluation after iteration `k` (train) |
//! | [`group_time`] | `stream(iteration seed, u64::MAX - j)` | fit: the time of group `j` in an iteration |
//! | [`validation`] | first word of `stream(seed, u64::MAX - 0x7A1)` | fit: the validation set's times and noise |
//! | [`validation_order`] | `stream(validation seed, u64::MAX)` | fit: the shuffle of the validation strata |
//! | [`split`] | `stream(seed, u64::MAX - 7)` | fit: the train/validation split |
//! | [`resample`] | `stream(seed, 2^63)` | `sample --resample`: the systematic resampling's offset |
//! | [`SW2_TRUTH_SEED`] | a fixed seed | the exact target samples the sliced W2 compares with |
//! | [`SW2_DIRECTION_SEED`] | a fixed seed | the sliced W2's projection directions |
//!
//! Within a purpose, row `i` takes `stream(purpose seed, i)`, as samples do.
//! The two fixed seeds are far from the small seeds models are sampled
//! with, so the reference samples never coincide with a model's.
//!
//! Two of these share an index with [`iteration`] under the same seed:
//! [`split`] with iteration 7 and [`validation`] with iteration 1953 (the
//! split's shuffle and iteration 7's seed are the same draws, as are the
//! validation seed and iteration 1953's). Each use derives everything
//! else from its own draws, so no two sample the same thing, but the values
//! are kept as they are because every fitted model and fit result so far
//! depends on them; a change would be a format-level decision with its
//! results regenerated.

use diffctl_runtime::normal::{stream, PathRng};
use rand_core::Rng;

/// Seed of the exact target samples behind the report's sliced W2.
pub const SW2_TRUTH_SEED: u64 = 0x7377_325f_7472_7574;
/// Seed of the projection directions behind the report's sliced W2.
pub const SW2_DIRECTION_SEED: u64 = 0x7377_325f_6469_7273;

/// Network initialisation.
pub fn init(seed: u64) -> PathRng {
    stream(seed, u64::MAX / 2)
}

/// Seed of iteration `k`'s draws (paths, or a batch of data and noise).
pub fn iteration(seed: u64, k: usize) -> u64 {
    stream(seed, u64::MAX - k as u64).next_u64()
}

/// Seed of the periodic evaluation after iteration `k`.
pub fn evaluation(seed: u64, k: usize) -> u64 {
    iteration(seed ^ 0xE7A1, k)
}

/// Fit: the stream of group `j`'s time in the iteration seeded `iteration_seed`.
pub fn group_time(iteration_seed: u64, j: usize) -> PathRng {
    stream(iteration_seed, u64::MAX - j as u64)
}

/// Fit: the seed of the validation set (its rows take `stream(seed, i)`).
pub fn validation(seed: u64) -> u64 {
    stream(seed, u64::MAX - 0x7A1).next_u64()
}

/// Fit: the shuffle of the validation set's time strata.
pub fn validation_order(validation_seed: u64) -> PathRng {
    stream(validation_seed, u64::MAX)
}

/// Fit: the shuffle that splits the data into training and validation rows.
pub fn split(seed: u64) -> PathRng {
    stream(seed, u64::MAX - 7)
}

/// `sample --resample`: the stream of the systematic resampling's offset
/// for paths sampled under `seed` (index `2^63`, next to [`init`]'s and far
/// from the paths' own indices, so the offset is independent of the paths).
pub fn resample(seed: u64) -> PathRng {
    stream(seed, u64::MAX / 2 + 1)
}
