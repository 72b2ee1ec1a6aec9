//! Training runs with small budgets: they are deterministic, resume
//! bit-identically, stop on divergence, and learn `gmm` (issue 5's CI check).

use std::sync::atomic::{AtomicBool, Ordering};

use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{sample_file, SampleOptions};
use diffctl_trainer::optimise::{RunOptions, TrainError};
use diffctl_trainer::target::Known;
use diffctl_trainer::train::{train, Loss, TrainConfig};

fn gmm() -> Known {
    Known::preset("gmm").unwrap()
}

fn tiny(iterations: usize) -> TrainConfig {
    TrainConfig {
        iterations,
        batch: 64,
        steps: 20,
        channels: 16,
        threads: 2,
        eval_every: 0,
        eval_samples: 256,
        checkpoint_every: 5,
        seed: 7,
        ..TrainConfig::default()
    }
}

fn run(cfg: &TrainConfig, opts: &RunOptions) -> Vec<u8> {
    train(cfg, &gmm(), opts, &mut |_| {})
        .expect("training succeeds")
        .weights
}

#[test]
fn same_seed_and_threads_give_identical_weights() {
    for loss in [Loss::LogVariance, Loss::Kl] {
        let cfg = TrainConfig { loss, ..tiny(12) };
        let a = run(&cfg, &RunOptions::default());
        let b = run(&cfg, &RunOptions::default());
        assert_eq!(a, b, "{loss:?}");
        let other = run(
            &TrainConfig {
                seed: 8,
                ..cfg.clone()
            },
            &RunOptions::default(),
        );
        assert_ne!(a, other, "{loss:?}: the seed must matter");
    }
}

/// Checkpoints to `path`, resuming from it when `resume`; no stop flag.
fn checkpointed(path: &std::path::Path, resume: bool) -> RunOptions<'static> {
    RunOptions {
        checkpoint: Some(path.to_path_buf()),
        resume,
        stop: None,
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = std::env::temp_dir().join(format!("diffctl-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = tiny(20);
    let straight = run(&cfg, &RunOptions::default());

    // Interrupt after iteration 3 (as Ctrl-C would), inside the exploration
    // phase (the first quarter: iterations 0..5), then resume.
    let ckpt = dir.join("run.ckpt");
    let stop = AtomicBool::new(false);
    let opts = RunOptions {
        checkpoint: Some(ckpt.clone()),
        resume: false,
        stop: Some(&stop),
    };
    let first = train(&cfg, &gmm(), &opts, &mut |p| {
        if p.step.iteration == 3 {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.interrupted);
    assert_eq!(first.iterations, 3);
    assert!(ckpt.exists() && !dir.join("run.ckpt.tmp").exists());
    let resumed = train(&cfg, &gmm(), &checkpointed(&ckpt, true), &mut |_| {}).unwrap();
    assert_eq!(resumed.iterations, 20);
    assert_eq!(resumed.weights, straight, "resumed weights differ");

    // A checkpoint from another configuration is refused, not misused.
    let other = TrainConfig {
        lr: 1e-3,
        ..cfg.clone()
    };
    let resume = checkpointed(&ckpt, true);
    let err = train(&other, &gmm(), &resume, &mut |_| {}).unwrap_err();
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    // And one from another target of the same dimension.
    let other_target = Known::builtin(TargetSpec::Funnel { d: 2, sigma: 3.0 }).unwrap();
    let err = train(&cfg, &other_target, &resume, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("different target"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn divergence_stops_with_the_iteration_and_keeps_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("diffctl-diverge-{}", std::process::id()));
    let ckpt = dir.join("run.ckpt");
    // Adam moves every parameter by about lr per step: 1e30 overflows within a few steps.
    let cfg = TrainConfig {
        lr: 1e30,
        lr_final: 1e30,
        clip: 1e30,
        checkpoint_every: 1,
        ..tiny(50)
    };
    let err = train(&cfg, &gmm(), &checkpointed(&ckpt, false), &mut |_| {}).unwrap_err();
    let TrainError::Diverged {
        iteration,
        checkpoint,
        ..
    } = &err
    else {
        panic!("expected divergence, got {err}");
    };
    assert!(*iteration < 50);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("iteration {iteration}")) && !msg.contains('\n'),
        "{msg}"
    );
    if *iteration > 0 {
        assert_eq!(checkpoint.as_deref(), Some(ckpt.as_path()));
        assert!(ckpt.exists());
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_configurations_are_rejected_with_a_message() {
    for (cfg, needle) in [
        (
            TrainConfig {
                batch: 0,
                ..tiny(1)
            },
            "batch",
        ),
        (
            TrainConfig {
                lr: f32::NAN,
                ..tiny(1)
            },
            "lr",
        ),
        (
            TrainConfig {
                steps: 0,
                ..tiny(1)
            },
            "steps",
        ),
    ] {
        let err = train(&cfg, &gmm(), &RunOptions::default(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
    let err = Known::builtin(TargetSpec::Funnel { d: 10, sigma: -1.0 }).unwrap_err();
    assert!(err.contains("sigma"), "{err}");
}

/// Issue 5's CI check: DIS with the log-variance loss on `gmm`, a small
/// budget and a fixed seed, reaches |log Z_is| <= 0.2 and puts at least 5 %
/// of the samples in each of the 9 modes; the exported file, sampled again
/// through the runtime, reproduces the final evaluation's samples bit for bit.
#[test]
fn dis_learns_gmm_on_a_small_budget() {
    let cfg = TrainConfig {
        iterations: 400,
        batch: 512,
        steps: 50,
        threads: 2,
        eval_every: 0,
        eval_samples: 10_000,
        checkpoint_every: 0,
        seed: 1,
        ..TrainConfig::default()
    };
    let started = std::time::Instant::now();
    let out = train(&cfg, &gmm(), &RunOptions::default(), &mut |_| {}).unwrap();
    println!("{:.1} s\n{}", started.elapsed().as_secs_f64(), out.report);
    let err = out.report.log_z_is_error().unwrap();
    assert!(err.abs() <= 0.2, "log Z_is error {err}");
    for m in out.report.modes.as_ref().unwrap() {
        assert!(
            m.observed >= 0.05,
            "mode {} holds {:.3}",
            m.label,
            m.observed
        );
    }
    let again = sample_file(
        &out.weights,
        None,
        &SampleOptions {
            n: cfg.eval_samples,
            seed: cfg.seed,
            threads: 3,
            ..SampleOptions::default()
        },
    )
    .unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&again.xs), bits(&out.samples.xs));
}

/// A target returning NaN stops training with an error naming the
/// iteration and the number of paths; one returning `-inf` outside a
/// support trains (such paths have weight zero).
#[test]
fn nan_targets_are_errors_and_supports_are_respected() {
    use diffctl_runtime::Target;
    /// `N(0, I)` in 2-d, NaN (or -inf) where `x_0 > 2.5`.
    struct Broken(f32);
    impl Target for Broken {
        fn dim(&self) -> usize {
            2
        }
        fn log_density(&self, x: &[f32]) -> f32 {
            if x[0] > 2.5 {
                self.0
            } else {
                -0.5 * (x[0] * x[0] + x[1] * x[1])
            }
        }
        fn score(&self, x: &[f32], out: &mut [f32]) {
            out[0] = -x[0];
            out[1] = -x[1];
        }
    }
    let cfg = TrainConfig {
        batch: 256,
        ..tiny(3)
    };
    let err = train(&cfg, &Broken(f32::NAN), &RunOptions::default(), &mut |_| {}).unwrap_err();
    match err {
        TrainError::TargetNan {
            iteration, paths, ..
        } => assert!(iteration == 0 && paths > 0 && paths < 256, "{paths}"),
        other => panic!("{other}"),
    }
    let out = train(
        &cfg,
        &Broken(f32::NEG_INFINITY),
        &RunOptions::default(),
        &mut |_| {},
    )
    .expect("a support is not an error");
    let costs = out.samples.costs.as_ref().unwrap();
    let outside = costs.iter().filter(|c| c.r_disc == f64::INFINITY).count();
    assert!(outside > 0, "some evaluation paths end outside the support");
    assert!(out.report.estimates.log_z_is.is_finite());
    assert_eq!(out.report.estimates.log_z_lb, f64::NEG_INFINITY);
}

/// The KL loss (the DIS paper's, differentiated through the trajectory)
/// minimises `E[R]`, so training on it must raise `log Z_lb = -mean R`
/// (its objective, up to the zero-mean Ito term) well above the untrained
/// network's. It does not learn `gmm` as the log-variance loss does at this
/// budget: measured with the initialisation before issue 18 (300
/// iterations, batch 256, K = 50, exponential integrator, seed 1)
/// `log Z_lb` -2.99 -> -1.98 but 93 % of the samples in the central mode,
/// ESS 0.0008; the same with Euler–Maruyama, the
/// continuous cost, lr 1e-3 or 1000 iterations (smallest mode share at most
/// 0.005 of its due, ESS at most 0.008). Reverse KL is mode-seeking; the
/// objective and its gradient are checked in `losses.rs`.
#[test]
fn kl_training_raises_the_lower_bound_on_gmm() {
    let cfg = |iterations| TrainConfig {
        loss: Loss::Kl,
        iterations,
        batch: 256,
        steps: 50,
        integrator: Integrator::Exponential,
        threads: 2,
        eval_every: 0,
        eval_samples: 10_000,
        checkpoint_every: 0,
        seed: 1,
        ..TrainConfig::default()
    };
    let lb = |iterations| {
        let out = train(
            &cfg(iterations),
            &gmm(),
            &RunOptions::default(),
            &mut |_| {},
        )
        .unwrap();
        out.report.estimates.log_z_lb
    };
    let (before, after) = (lb(1), lb(300));
    assert!(after > before + 0.5, "log Z_lb {before:.3} -> {after:.3}");
}
