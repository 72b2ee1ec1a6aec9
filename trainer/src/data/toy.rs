//! Built-in data: 2-d toy sets ([`Toy`]) and exact samples of targets
//! ([`exact_samples`]). Sample `i` under seed `s` is drawn from the runtime's
//! stream `(s, i)` alone, so it does not depend on `n`.

use diffctl_runtime::normal::{normal_pair, stream, PathRng};
use diffctl_runtime::target::{GroundTruth, TargetSpec};
use serde::{Deserialize, Serialize};

use rand_core::Rng;

use super::{uniform, uniform_index, Dataset};

/// A built-in data generator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Toy {
    /// Two interleaved half circles (scikit-learn's `make_moons`, noise 0.1),
    /// scaled by 2 and centred: `2 (p - (0.5, 0.25))`.
    TwoMoons,
    /// A 4 x 4 checkerboard on `[-4, 4]^2`: uniform on its 8 dark squares of side 2.
    Checkerboard,
    /// 8 Gaussians of std 0.5 / sqrt 2 at radius 4 / sqrt 2 on a circle.
    EightGaussians,
    /// The swiss roll `t (cos t, sin t) / 5`, `t ~ U(1.5 pi, 4.5 pi)`, noise 0.2.
    SwissRoll,
    /// Exact samples of a built-in target (`gmm`, `funnel`, multi-well).
    Target(TargetSpec),
}

impl Toy {
    /// Names accepted by [`Toy::by_name`] besides the target presets.
    pub const NAMES: [&'static str; 4] = ["moons", "checkerboard", "8gaussians", "swissroll"];

    /// `moons`, `checkerboard`, `8gaussians`, `swissroll`, or a target preset
    /// (`gmm`, `funnel`, `mw5`, `dw20`, `mw50`, `gmm25`, `manywell32`).
    pub fn by_name(name: &str) -> Option<Self> {
        Some(match name {
            "moons" | "two-moons" => Toy::TwoMoons,
            "checkerboard" => Toy::Checkerboard,
            "8gaussians" | "eight-gaussians" => Toy::EightGaussians,
            "swissroll" | "swiss-roll" => Toy::SwissRoll,
            other => Toy::Target(TargetSpec::preset(other)?),
        })
    }

    pub fn dim(&self) -> usize {
        match self {
            Toy::Target(t) => t.dim(),
            _ => 2,
        }
    }

    /// `n` samples under `seed` (sample `i` from stream `(seed, i)`).
    pub fn generate(&self, n: usize, seed: u64) -> Result<Dataset, String> {
        if n == 0 {
            return Err("the number of samples must be at least 1".into());
        }
        let d = self.dim();
        let mut xs = vec![0.0f32; n * d];
        match self {
            Toy::Target(spec) => {
                let target = spec.build(&[]).map_err(|e| e.to_string())?;
                return exact_samples(&target, n, seed);
            }
            toy => {
                for (i, x) in xs.chunks_exact_mut(2).enumerate() {
                    let p = toy_point(*toy, &mut stream(seed, i as u64));
                    x[0] = p[0] as f32;
                    x[1] = p[1] as f32;
                }
            }
        }
        Dataset::new(d, xs)
    }
}

/// `n` exact samples of a target under `seed` (sample `i` from stream
/// `(seed, i)`), or an error if it has no exact sampler.
pub fn exact_samples(target: &dyn GroundTruth, n: usize, seed: u64) -> Result<Dataset, String> {
    let d = target.dim();
    let mut xs = vec![0.0f32; n * d];
    for (i, x) in xs.chunks_exact_mut(d).enumerate() {
        if !target.sample_exact(&mut stream(seed, i as u64), x) {
            return Err("the target has no exact sampler".into());
        }
    }
    Dataset::new(d, xs)
}

/// One point of a 2-d toy set (f64).
fn toy_point(toy: Toy, rng: &mut PathRng) -> [f64; 2] {
    use std::f64::consts::{FRAC_1_SQRT_2, PI};
    match toy {
        Toy::TwoMoons => {
            let theta = PI * uniform(rng);
            let (c, s) = (theta.cos(), theta.sin());
            let p = if rng.next_u64() & 1 == 0 {
                [c, s]
            } else {
                [1.0 - c, 0.5 - s]
            };
            let (a, b) = normal_pair(rng);
            [
                2.0 * (p[0] + 0.1 * a as f64 - 0.5),
                2.0 * (p[1] + 0.1 * b as f64 - 0.25),
            ]
        }
        Toy::Checkerboard => {
            // x1 ~ U(-4, 4); x2 in the squares of the other parity.
            let x1 = 8.0 * uniform(rng) - 4.0;
            let col = (x1 / 2.0).floor() as i64; // -2..=1
            let row = 2 * uniform_index(rng, 2) as i64 + (col + 1).rem_euclid(2); // 0..=3
            let x2 = -4.0 + 2.0 * row as f64 + 2.0 * uniform(rng);
            [x1, x2]
        }
        Toy::EightGaussians => {
            let k = uniform_index(rng, 8) as f64;
            let angle = PI / 4.0 * k;
            let (a, b) = normal_pair(rng);
            let r = 4.0 * FRAC_1_SQRT_2;
            [
                r * angle.cos() + 0.5 * FRAC_1_SQRT_2 * a as f64,
                r * angle.sin() + 0.5 * FRAC_1_SQRT_2 * b as f64,
            ]
        }
        Toy::SwissRoll => {
            let t = 1.5 * PI * (1.0 + 2.0 * uniform(rng));
            let (a, b) = normal_pair(rng);
            [
                (t * t.cos()) / 5.0 + 0.2 * a as f64,
                (t * t.sin()) / 5.0 + 0.2 * b as f64,
            ]
        }
        Toy::Target(_) => unreachable!("targets are sampled by TargetSampler"),
    }
}
