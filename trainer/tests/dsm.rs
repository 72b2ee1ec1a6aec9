//! Denoising score matching end to end (issue 8): fit on exact `gmm`
//! samples, sample the exported weights with the runtime from `N(0, I)`.

use diffctl_runtime::prelude::*;
use diffctl_runtime::target::{Builtin, GaussianMixture};
use diffctl_trainer::data::Toy;
use diffctl_trainer::dsm::{fit, FitConfig};
use diffctl_trainer::eval::{sample_params, SampleOptions};

fn gmm_cfg() -> FitConfig {
    FitConfig {
        threads: 2,
        seed: 1,
        ..FitConfig::default()
    }
}

#[test]
fn dsm_learns_gmm() {
    let started = std::time::Instant::now();
    let data = Toy::Target(TargetSpec::Gmm).generate(20_000, 11).unwrap();
    let cfg = gmm_cfg();
    let out = fit(&data, &cfg, &mut |p| {
        if let Some(v) = p.validation_loss {
            eprintln!(
                "{:5} loss {:.4} val {:.4} |g| {:.3} lr {:.2e} {:.1}s",
                p.iteration,
                p.loss,
                v,
                p.grad_norm,
                p.lr,
                p.elapsed.as_secs_f64()
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
    let Builtin::Mixture(m) = TargetSpec::Gmm.build() else {
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
}
