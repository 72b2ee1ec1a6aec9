//! Evaluation through the runtime: what ships is what is measured.
//!
//! Every number here comes from decoding a weights file with
//! `diffctl-runtime` and sampling it with `Sampler::sample`, exactly as a
//! device would. Sample `i` under seed `s` is the same whatever the thread
//! count, so `diffctl sample` reproduces the samples of an evaluation bit for bit.
//!
//! Estimators over `N` paths with costs `R_i` (MATH.md §4): `log Z_lb =
//! mean(-R_i)`, `log Z_is = log mean exp(-R_i)`, `ESS = (sum w)^2 / (N sum w^2)`.

//!
//! | file | what |
//! |---|---|
//! | [`sample`] | sampling a weights file on threads, resampling by weight |
//! | [`estimates`](mod@estimates) | `log Z_lb`, `log Z_is` and its standard error, ESS, k̂ |
//! | [`report`](mod@report) | the report: estimates, ground truth, modes, moments, sliced W2 |

pub mod estimates;
pub mod report;
pub mod sample;

pub use diffctl_runtime::integrate::CostForm;
pub use estimates::{estimates, Estimates};
pub use report::{
    report, sliced_w2_vs_target, CoordStats, EvalReport, ModeShare, Versus, SW2_SAMPLES,
};
pub use sample::{
    check_target, file_target, resample, sample_file, sample_params, EvalError, SampleOptions,
    Samples, DEFAULT_BLOCK, MAX_SAMPLES,
};

use diffctl_runtime::prelude::*;

use crate::target::TrainTarget;

/// Samples a weights file and reports on it (`diffctl eval`). Without
/// `target`, the file's own (a preset or a stored mixture) is used.
pub fn evaluate(
    bytes: &[u8],
    target: Option<&dyn TrainTarget>,
    opts: &SampleOptions,
    cost: CostForm,
) -> Result<EvalReport, EvalError> {
    let model = Model::parse(bytes)?;
    let own = file_target(&model);
    let target: &dyn TrainTarget = match (target, &own) {
        (Some(t), _) => t,
        (None, Some(k)) => k,
        (None, None) => {
            return Err(EvalError::Invalid(match model.header.target {
                Some(spec) => format!(
                    "the model's target, {spec}, is defined by a data set: give its config \
                     (--target-config)"
                ),
                None => "no target: the weights file names none; give one (--target or \
                         --target-config)"
                    .into(),
            }))
        }
    };
    let samples = sample_file(bytes, Some(target), opts)?;
    Ok(report(&samples, Some(target), cost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Known;
    use diffctl_runtime::target::GroundTruth;

    /// Weighted moments by hand: costs 0 and ln 3 give normalised weights
    /// 3/4 and 1/4, so for x = 1 and x = -3 the weighted E|x|^2 is
    /// 3/4 + 9/4 = 3, E|x|_1 is 3/4 + 3/4 = 1.5 and the weighted mean is 0;
    /// the raw ones are 5, 2 and -1.
    #[test]
    fn weighted_moments_by_hand() {
        use diffctl_runtime::integrate::PathCost;
        let cost = |r: f64| PathCost { r, r_disc: r };
        let samples = Samples {
            d: 1,
            first: 0,
            xs: vec![1.0, -3.0],
            costs: Some(vec![cost(0.0), cost(3f64.ln())]),
        };
        let rep = report(&samples, None, CostForm::Discrete);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(rep.sq_norm.estimate, 5.0) && close(rep.sq_norm.weighted.unwrap(), 3.0));
        assert!(close(rep.abs_norm.estimate, 2.0) && close(rep.abs_norm.weighted.unwrap(), 1.5));
        assert!(
            close(rep.coords[0].mean, -1.0) && close(rep.coords[0].weighted_mean.unwrap(), 0.0)
        );
        let text = rep.to_string();
        assert!(
            text.contains("E|x|^2           5.0000; weighted 3.0000"),
            "{text}"
        );
        // Without costs there are no weighted moments.
        let raw = report(
            &Samples {
                costs: None,
                ..samples
            },
            None,
            CostForm::Discrete,
        );
        assert!(raw.sq_norm.weighted.is_none() && raw.coords[0].weighted_mean.is_none());
    }

    /// MATH.md §8's table.
    #[test]
    fn true_moments_match_the_table() {
        let table = [
            ("gmm", 33.933333, 6.958013),
            ("funnel", 819.154182, 24.512571),
            ("mw5", 19.670523, 9.875075),
            ("dw20", 29.535297, 20.422541),
            ("mw50", 54.176709, 42.500780),
        ];
        for (name, sq, abs) in table {
            let target = TargetSpec::preset(name).unwrap().build_builtin();
            let (s, a) = target.moments().unwrap();
            assert!((s - sq).abs() < 1e-4 * sq, "{name}: E|x|^2 {s} vs {sq}");
            assert!((a - abs).abs() < 1e-4 * abs, "{name}: E|x|_1 {a} vs {abs}");
        }
    }

    #[test]
    fn estimators_on_known_weights() {
        // Equal costs: all three estimates equal -R and ESS = 1.
        let e = estimates(&[2.0; 10]);
        assert!((e.log_z_lb + 2.0).abs() < 1e-12 && (e.log_z_is + 2.0).abs() < 1e-12);
        assert!((e.ess - 1.0).abs() < 1e-12);
        // Weights 1 and 3: log mean = log 2, ESS = 16 / (2 * 10) = 0.8.
        let e = estimates(&[0.0, -(3f64.ln())]);
        assert!((e.log_z_is - 2f64.ln()).abs() < 1e-12);
        assert!((e.ess - 0.8).abs() < 1e-12);
        // Stable for huge costs.
        let e = estimates(&[1000.0, 1000.0]);
        assert!((e.log_z_is + 1000.0).abs() < 1e-9);
    }

    /// Systematic resampling keeps each sample about `m w_i / sum w`
    /// times (never more than one off), and needs weights.
    #[test]
    fn resampling_follows_the_weights() {
        let costs: Vec<PathCost> = [0.0, -(3f64.ln()), f64::INFINITY, 0.0]
            .iter()
            .map(|&r| PathCost { r, r_disc: r })
            .collect();
        let samples = Samples {
            d: 1,
            first: 0,
            xs: vec![0.0, 1.0, 2.0, 3.0],
            costs: Some(costs),
        };
        let out = resample(&samples, 600, 4).unwrap();
        let count = |v: f32| out.xs.iter().filter(|&&x| x == v).count() as i64;
        // Weights 1, 3, 0, 1 of 5.
        for (v, want) in [(0.0, 120), (1.0, 360), (2.0, 0), (3.0, 120)] {
            assert!((count(v) - want).abs() <= 1, "{v}: {}", count(v));
        }
        let bare = Samples {
            costs: None,
            ..samples
        };
        assert!(resample(&bare, 5, 0).is_err());
    }

    /// Exact samples of the target are close to the target's reference
    /// samples (an independent draw): the floor a perfect model would show.
    #[test]
    fn sliced_w2_of_exact_samples_is_small() {
        let gmm = Known::preset("gmm").unwrap();
        let data = crate::data::Toy::by_name("gmm")
            .unwrap()
            .generate(30_000, 3)
            .unwrap();
        let samples = Samples {
            d: data.d,
            first: 0,
            xs: data.xs,
            costs: None,
        };
        let r = report(&samples, Some(&gmm), CostForm::Discrete);
        let w = r.sliced_w2.unwrap();
        assert!(w > 0.0 && w < 0.15, "{w}");
        assert!(r.to_string().contains("sliced W2        "), "{r}");
        assert_eq!(report(&samples, None, CostForm::Discrete).sliced_w2, None);
    }
}
