//! Denoising score matching end to end (issue 8): fit on exact `gmm`
//! samples, sample the exported weights with the runtime from `N(0, I)`.

use diffctl_runtime::prelude::*;
use diffctl_runtime::target::{Builtin, GaussianMixture};
use diffctl_trainer::data::Toy;
use diffctl_trainer::dsm::{fit, FitConfig};
use diffctl_trainer::eval::{sample_params, SampleOptions};
use diffctl_trainer::optimise::RunOptions;

fn gmm_cfg() -> FitConfig {
    FitConfig {
        threads: 2,
        seed: 1,
        ..FitConfig::default()
    }
}

fn tiny() -> FitConfig {
    FitConfig {
        iterations: 30,
        batch: 96,
        time_groups: 8,
        channels: 16,
        threads: 2,
        validate_every: 10,
        seed: 4,
        ..FitConfig::default()
    }
}

/// Fit and training share one optimisation loop (trainer/src/optimise.rs):
/// a fit stopped after iteration 13 (between validations) and resumed from
/// its checkpoint ends with the uninterrupted fit's weights, best validation
/// and best iteration; a checkpoint of other data is refused.
#[test]
fn resumed_fit_equals_uninterrupted_fit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = std::env::temp_dir().join(format!("diffctl-fit-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = Toy::TwoMoons.generate(500, 1).unwrap();
    let cfg = FitConfig {
        checkpoint_every: 5,
        ..tiny()
    };
    let straight = fit(&data, &cfg, &RunOptions::default(), &mut |_| {}).unwrap();

    let ckpt = dir.join("fit.ckpt");
    let stop = AtomicBool::new(false);
    let first = fit(
        &data,
        &cfg,
        &RunOptions {
            checkpoint: Some(ckpt.clone()),
            resume: false,
            stop: Some(&stop),
        },
        &mut |p| {
            if p.step.iteration == 13 {
                stop.store(true, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    assert!(first.interrupted && first.iterations == 13);
    let resume = RunOptions {
        checkpoint: Some(ckpt.clone()),
        resume: true,
        stop: None,
    };
    let resumed = fit(&data, &cfg, &resume, &mut |_| {}).unwrap();
    assert_eq!(resumed.iterations, straight.iterations);
    assert_eq!(resumed.weights, straight.weights, "resumed weights differ");
    assert_eq!(resumed.best_iteration, straight.best_iteration);
    assert_eq!(
        resumed.best_validation_loss.to_bits(),
        straight.best_validation_loss.to_bits()
    );
    let other = Toy::TwoMoons.generate(500, 2).unwrap();
    let err = fit(&other, &cfg, &resume, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("different target or data"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn same_seed_and_threads_give_identical_weights() {
    let data = Toy::TwoMoons.generate(500, 1).unwrap();
    let a = fit(&data, &tiny(), &RunOptions::default(), &mut |_| {}).unwrap();
    let b = fit(&data, &tiny(), &RunOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(a.weights, b.weights);
    assert_eq!(
        a.best_validation_loss.to_bits(),
        b.best_validation_loss.to_bits()
    );
    let c = fit(
        &data,
        &FitConfig { seed: 5, ..tiny() },
        &RunOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_ne!(a.weights, c.weights, "the seed must matter");
    // The file is a DSM model without a target, sampled from N(0, I) by the runtime.
    let model = Model::parse(&a.weights).unwrap();
    assert_eq!(model.header, a.header);
    assert_eq!(a.header.sampler, SamplerKind::Dsm);
    assert!(!a.header.shape.score_term && a.header.target.is_none());
    assert_eq!((a.n_train, a.n_validation), (450, 50));
    let s = sample_params(
        &a.header,
        &a.params,
        None,
        &SampleOptions {
            n: 64,
            threads: 1,
            ..SampleOptions::default()
        },
    )
    .unwrap();
    assert!(s.xs.iter().all(|v| v.is_finite()) && s.costs.is_none());
}

#[test]
fn early_stopping_keeps_the_best_validated_weights() {
    // A learning rate this large makes the validation loss wander: training
    // stops after `patience` validations without a new best, and returns it.
    let data = Toy::EightGaussians.generate(400, 2).unwrap();
    let cfg = FitConfig {
        iterations: 400,
        lr: 0.05,
        lr_final: 0.05,
        warmup: 0,
        ema_decay: 0.0,
        patience: 2,
        ..tiny()
    };
    let mut seen = Vec::new();
    let out = fit(&data, &cfg, &RunOptions::default(), &mut |p| {
        if let Some(v) = p.validation_loss {
            seen.push((p.step.iteration, v));
        }
    })
    .unwrap();
    let best = seen
        .iter()
        .cloned()
        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    assert_eq!(out.best_iteration, best.0);
    assert_eq!(out.best_validation_loss, best.1);
    assert!(out.stopped_early);
    assert_eq!(out.iterations, best.0 + 2 * cfg.validate_every);
    eprintln!(
        "early stopping: {seen:.3?} -> best {best:?}, stopped early {}",
        out.stopped_early
    );
}

#[test]
fn bad_configurations_and_data_are_rejected_with_a_message() {
    let data = Toy::TwoMoons.generate(100, 1).unwrap();
    for (cfg, needle) in [
        (FitConfig { batch: 0, ..tiny() }, "batch"),
        (
            FitConfig {
                time_groups: 200,
                ..tiny()
            },
            "time_groups",
        ),
        (FitConfig { eps: 2.0, ..tiny() }, "eps"),
        (
            FitConfig {
                lr: f32::NAN,
                ..tiny()
            },
            "lr",
        ),
        (
            FitConfig {
                validation_fraction: 1.0,
                ..tiny()
            },
            "validation_fraction",
        ),
        (
            FitConfig {
                sde: Sde::pis_reference(),
                ..tiny()
            },
            "VP",
        ),
    ] {
        let err = fit(&data, &cfg, &RunOptions::default(), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(needle) && !err.contains('\n'),
            "{needle}: {err}"
        );
    }
    let one = Dataset::new(2, vec![0.0, 1.0]).unwrap();
    let err = fit(&one, &tiny(), &RunOptions::default(), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 2"), "{err}");
}

#[test]
fn dsm_learns_gmm() {
    let started = std::time::Instant::now();
    let data = Toy::Target(TargetSpec::Gmm).generate(20_000, 11).unwrap();
    let cfg = gmm_cfg();
    let out = fit(&data, &cfg, &RunOptions::default(), &mut |p| {
        if let Some(v) = p.validation_loss {
            eprintln!(
                "{:5} loss {:.4} val {:.4} |g| {:.3} lr {:.2e} {:.1}s",
                p.step.iteration,
                p.step.loss,
                v,
                p.step.grad_norm,
                p.step.lr,
                p.step.elapsed.as_secs_f64()
            );
        }
    })
    .unwrap();
    let fit_seconds = started.elapsed().as_secs_f64();
    assert_eq!(out.header.sampler, SamplerKind::Dsm);
    assert_eq!(out.header.target, None);
    let samples = sample_params(
        &out.header,
        &out.params,
        None,
        &SampleOptions {
            n: 10_000,
            seed: 5,
            threads: 2,
            ..SampleOptions::default()
        },
    )
    .unwrap();
    let Builtin::Mixture(m) = TargetSpec::Gmm.build_builtin() else {
        unreachable!()
    };
    let mut counts = [0usize; 9];
    let mut sq = 0.0f64;
    for x in samples.xs.chunks_exact(2) {
        counts[GaussianMixture::nearest_component(&m, x)] += 1;
        sq += x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>();
    }
    let shares: Vec<f64> = counts.iter().map(|&c| c as f64 / 1e4).collect();
    let sq = sq / 1e4;
    eprintln!(
        "fit {fit_seconds:.1} s ({} iterations, best {} val {:.4}), total {:.1} s",
        out.iterations,
        out.best_iteration,
        out.best_validation_loss,
        started.elapsed().as_secs_f64()
    );
    eprintln!("mode shares {shares:.4?}");
    eprintln!("E|x|^2 {sq:.4} (true 33.933333)");
    for (i, s) in shares.iter().enumerate() {
        assert!((s - 1.0 / 9.0).abs() <= 0.03, "mode {i} holds {s:.4}");
    }
    assert!((sq / 33.933333 - 1.0).abs() <= 0.05, "E|x|^2 {sq}");

    // The likelihood bound on fresh (held-out) gmm samples, through the
    // shipped weights, against the data's own log-density: on average it
    // cannot be above it (Gibbs), beyond Monte-Carlo error.
    let held_out = Toy::Target(TargetSpec::Gmm).generate(2000, 12).unwrap();
    let elbo_started = std::time::Instant::now();
    let report = elbo_params(
        &out.header,
        &out.params,
        &held_out,
        &ElboConfig {
            threads: 2,
            ..ElboConfig::default()
        },
    )
    .unwrap();
    let log_p: Vec<f64> = (0..held_out.len())
        .map(|i| m.log_density(held_out.row(i)) as f64)
        .collect();
    let (gap, se) = paired(&report, &log_p);
    let true_nats = -log_p.iter().sum::<f64>() / (2.0 * log_p.len() as f64);
    eprintln!(
        "{report}; data's own {true_nats:.4} nats per dimension; bound - log p {gap:+.4} +- {se:.4} nats per point ({:.1} s)",
        elbo_started.elapsed().as_secs_f64()
    );
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        gap < 4.0 * se,
        "bound above the data log-likelihood: {gap} +- {se}"
    );
}

// ---------------------------------------------------------------------------
// The likelihood bound.

use diffctl_runtime::control::{vp_gaussian_marginal, GaussianOptimalControl, StationaryControl};
use diffctl_runtime::normal::{fill_normals, stream};
use diffctl_trainer::data::Dataset;
use diffctl_trainer::elbo::{elbo, elbo_params, ElboConfig, ElboReport};

const HALF_LOG_TAU: f64 = 0.918_938_533_204_672_7;

/// `n` points of `N(mean, diag(std^2))`.
fn gaussian_data(n: usize, mean: &[f32], std: &[f32], seed: u64) -> Dataset {
    let d = mean.len();
    let mut xs = vec![0.0f32; n * d];
    for (i, x) in xs.chunks_exact_mut(d).enumerate() {
        fill_normals(&mut stream(seed, i as u64), x);
        for ((v, &m), &s) in x.iter_mut().zip(mean).zip(std) {
            *v = m + s * *v;
        }
    }
    Dataset::new(d, xs).unwrap()
}

fn log_normal(y: &[f32], mean: &[f32], std: &[f32]) -> f64 {
    y.iter()
        .zip(mean)
        .zip(std)
        .map(|((&y, &m), &s)| {
            let z = (y as f64 - m as f64) / s as f64;
            -0.5 * z * z - (s as f64).ln() - HALF_LOG_TAU
        })
        .sum()
}

/// Mean and standard error of `report.per_point[i] - reference[i]`.
fn paired(report: &ElboReport, reference: &[f64]) -> (f64, f64) {
    let diff: Vec<f64> = report
        .per_point
        .iter()
        .zip(reference)
        .map(|(b, r)| b - r)
        .collect();
    let n = diff.len() as f64;
    let mean = diff.iter().sum::<f64>() / n;
    let var = diff.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// MATH.md §7's check: data `N(0, I)` and `u = -sigma x` (the runtime's
/// `StationaryControl`, `-sigma_bar(t) x` in generative time `t = T - s`, which
/// is `-sigma(s) x` at reference time `s`). The integrand's mean given `y` is
/// `beta/2 e^{-2A} (|y|^2 - d)`, whose integral cancels the prior term's
/// dependence on `A(T)`: the bound equals `log N(y; 0, I)` exactly, per point.
#[test]
fn elbo_of_the_stationary_control_is_the_exact_log_likelihood() {
    let d = 3;
    let sde = Sde::default();
    let data = gaussian_data(2000, &[0.0; 3], &[1.0; 3], 21);
    let control = StationaryControl { sde, d };
    let exact: Vec<f64> = (0..data.len())
        .map(|i| log_normal(data.row(i), &[0.0; 3], &[1.0; 3]))
        .collect();
    let exact_mean = exact.iter().sum::<f64>() / exact.len() as f64;
    // The plain estimator: unbiased, Monte-Carlo error only.
    let plain = ElboConfig {
        times: 256,
        threads: 2,
        control_variate: false,
        ..ElboConfig::default()
    };
    let report = elbo(&control, &sde, 1.0, &data, &plain).unwrap();
    let (gap, se) = paired(&report, &exact);
    eprintln!(
        "N(0, I), no control variate: bound {:.5} vs exact {exact_mean:.5}; paired gap {gap:+.5} +- {se:.5} nats ({report})",
        report.bound
    );
    assert!(gap.abs() < 4.0 * se, "gap {gap} +- {se}");
    assert!(se < 0.015, "Monte-Carlo error {se}");
    // With the control variate the integrand is exactly the control
    // variate's: only the f32 evaluation and finite differences remain.
    let cfg = ElboConfig {
        times: 16,
        threads: 2,
        ..ElboConfig::default()
    };
    let report = elbo(&control, &sde, 1.0, &data, &cfg).unwrap();
    let (gap, se) = paired(&report, &exact);
    eprintln!("N(0, I), control variate: paired gap {gap:+.2e} +- {se:.2e} nats");
    assert!(gap.abs() < 1e-4 && se < 1e-4, "gap {gap} +- {se}");
}

/// Data `N(m, diag(s^2))` with its closed-form optimal control. With `u = u*`
/// the only gap is the prior's: `log p(y) + E[log N(Y_T; 0, I) - log p_{Y_T}(Y_T) | y]`
/// (closed form, Gaussian), which is tiny and negative on average (minus a KL).
#[test]
fn elbo_of_the_gaussian_optimal_control_is_tight() {
    let sde = Sde::default();
    let (mean, std) = ([1.0f32, -0.5], [0.5f32, 1.5]);
    let data = gaussian_data(2000, &mean, &std, 22);
    let control = GaussianOptimalControl {
        sde,
        mean: &mean,
        std: &std,
    };
    let cfg = ElboConfig {
        times: 256,
        threads: 2,
        ..ElboConfig::default()
    };
    let report = elbo(&control, &sde, 1.0, &data, &cfg).unwrap();
    let t_end = sde.t_end() as f64;
    let a = (-sde.a(t_end)).exp();
    let exact: Vec<f64> = (0..data.len())
        .map(|i| log_normal(data.row(i), &mean, &std))
        .collect();
    let expected: Vec<f64> = (0..data.len())
        .map(|i| {
            let y = data.row(i);
            let mut gap = 0.0;
            for j in 0..2 {
                // Y_T | y ~ N(mu, v); p_{Y_T} = N(big_m, big_s^2).
                let (mu, v) = (a * y[j] as f64, 1.0 - a * a);
                let (big_m, big_s) =
                    vp_gaussian_marginal(&sde, t_end, mean[j] as f64, std[j] as f64);
                let big_v = big_s * big_s;
                gap += -(mu * mu + v) / 2.0
                    + 0.5 * big_v.ln()
                    + ((mu - big_m).powi(2) + v) / (2.0 * big_v);
            }
            exact[i] + gap
        })
        .collect();
    let (vs_expected, se1) = paired(&report, &expected);
    let (vs_exact, se2) = paired(&report, &exact);
    eprintln!(
        "N(m, s^2): bound - expected {vs_expected:+.5} +- {se1:.5}; bound - log p {vs_exact:+.5} +- {se2:.5} nats ({report})"
    );
    assert!(vs_expected.abs() < 4.0 * se1, "{vs_expected} +- {se1}");
    assert!(
        vs_exact < 4.0 * se2,
        "bound above the log-likelihood: {vs_exact} +- {se2}"
    );
    assert!(vs_exact.abs() < 0.02, "bound not tight: {vs_exact}");
}

/// The finite-difference divergence of the runtime network against the exact
/// Jacobian diagonal from `d` reverse passes of the trainer's tape.
#[test]
fn finite_difference_divergence_matches_the_tape() {
    use diffctl_runtime::network::NetworkRef;
    use diffctl_trainer::autodiff::{Grads, Params, Tape, Tensor};
    use diffctl_trainer::elbo::{divergence_fd, divergence_work_len};
    use diffctl_trainer::network::BatchedNetwork;

    let shape = NetworkShape {
        d: 3,
        channels: 32,
        layers: 4,
        score_term: false,
    };
    let mut params = Params::new();
    let net = BatchedNetwork::register(shape, &mut params, &mut stream(1, 0));
    // Random output layer (it starts at zero) and larger weights: a curved field.
    let mut rng = stream(2, 0);
    for t in &mut params.values {
        let mut z = vec![0.0f32; t.data.len()];
        fill_normals(&mut rng, &mut z);
        for (v, z) in t.data.iter_mut().zip(z) {
            *v = 0.3 * z;
        }
    }
    let flat = params.flatten();
    let rt = NetworkRef::from_flat(shape, &flat).unwrap();
    let n = 8;
    let mut xs = vec![0.0f32; n * 3];
    fill_normals(&mut rng, &mut xs);
    let x_id = params.add("x", Tensor::new(n, 3, xs.clone()));
    let t = 0.37f32;
    let mut g = Tape::new();
    let p = net.bind(&mut g, &params);
    let te = net.time_embedding(&mut g, &p, t);
    let xv = g.param(&params, x_id);
    let u = net.control(&mut g, &p, &te, xv, None);
    let mut exact = vec![0.0f64; n];
    for j in 0..3 {
        let mut seed = vec![0.0f32; n * 3];
        for i in 0..n {
            seed[i * 3 + j] = 1.0;
        }
        let mut grads = Grads::zeros_like(&params);
        g.backward_seeded(u, &seed, &mut grads);
        // Row i of d(sum_i u_ij)/dx is du_ij/dx_i (rows are independent).
        for (e, row) in exact
            .iter_mut()
            .zip(grads.tensors[x_id.0].data.chunks_exact(3))
        {
            *e += row[j] as f64;
        }
    }
    let mut cache = vec![0.0f32; shape.time_cache_len()];
    let mut scratch = vec![0.0f32; shape.scratch_len()];
    rt.prepare(t, &mut cache, &mut scratch);
    let control =
        diffctl_runtime::network::NetworkControl::<diffctl_runtime::target::Builtin>::new(
            rt,
            Sde::default(),
            diffctl_runtime::target::Prior::standard(3),
            None,
        )
        .unwrap();
    let mut work = vec![0.0f32; divergence_work_len(&control)];
    for i in 0..n {
        let mut x = xs[i * 3..(i + 1) * 3].to_vec();
        let fd = divergence_fd(&control, t, &cache, &mut x, 1e-2, &mut work);
        eprintln!("div: tape {:.6} fd {fd:.6}", exact[i]);
        assert!(
            (fd - exact[i]).abs() < 2e-3 * (1.0 + exact[i].abs()),
            "point {i}: finite differences {fd} vs tape {}",
            exact[i]
        );
    }
}
