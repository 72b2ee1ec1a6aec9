//! Ad-hoc training run for tuning: `cargo run --release -p diffctl-trainer --example explore -- KEY=VALUE ...`
//! Keys: target, iterations, batch, steps, lr, lr_final, clip, ema, loss (lv|kl), integrator (em|exp), grid, threads, seed, eval_every, explore, explore_decay, sampler (dis|pis|dds).
use diffctl_runtime::prelude::*;
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::target::Known;
use diffctl_trainer::train::{train, Loss, TrainConfig};

fn main() {
    let mut cfg = TrainConfig {
        eval_every: 250,
        checkpoint_every: 0,
        ..TrainConfig::default()
    };
    let mut target = "gmm".to_string();
    for arg in std::env::args().skip(1) {
        let (k, v) = arg.split_once('=').expect("KEY=VALUE");
        match k {
            "target" => target = v.to_string(),
            "iterations" => cfg.iterations = v.parse().unwrap(),
            "batch" => cfg.batch = v.parse().unwrap(),
            "steps" => cfg.steps = v.parse().unwrap(),
            "lr" => cfg.lr = v.parse().unwrap(),
            "lr_final" => cfg.lr_final = v.parse().unwrap(),
            "clip" => cfg.clip = v.parse().unwrap(),
            "ema" => cfg.ema_decay = v.parse().unwrap(),
            "threads" => cfg.threads = v.parse().unwrap(),
            "seed" => cfg.seed = v.parse().unwrap(),
            "eval_every" => cfg.eval_every = v.parse().unwrap(),
            "explore" => cfg.explore = Some(v.parse().unwrap()),
            "explore_decay" => cfg.explore_decay = v.parse().unwrap(),
            "sampler" => {
                cfg.sampler = match v {
                    "pis" => SamplerKind::Pis,
                    "dds" => SamplerKind::Dds,
                    _ => SamplerKind::Dis,
                };
                if cfg.sampler == SamplerKind::Pis {
                    cfg.sde = Sde::pis_reference();
                }
            }
            "loss" => {
                cfg.loss = if v == "kl" {
                    Loss::Kl
                } else {
                    Loss::LogVariance
                }
            }
            "integrator" => {
                cfg.integrator = if v == "exp" {
                    Integrator::Exponential
                } else {
                    Integrator::EulerMaruyama
                }
            }
            "grid" => {
                cfg.grid = match v {
                    "quadratic" => TimeGrid::Quadratic,
                    "cosine" => TimeGrid::Cosine,
                    _ => TimeGrid::Uniform,
                }
            }
            _ => panic!("unknown key {k}"),
        }
    }
    println!("{cfg:?}");
    let known = Known::preset(&target).expect("a preset");
    let out = train(&cfg, &known, &RunOptions::default(), &mut |p| {
        if let (Some(e), true) = (&p.last_eval, p.step.iteration % cfg.eval_every.max(1) == 0) {
            println!(
                "it {:5} {:6.1}s loss {:.4} | log Z_is err {:+.4} lb {:+.4} ESS {:.3} worst mode {:.3}",
                p.step.iteration,
                p.step.elapsed.as_secs_f64(),
                p.step.loss,
                e.log_z_is_error().unwrap_or(f64::NAN),
                e.log_z_lb_error().unwrap_or(f64::NAN),
                e.estimates.ess,
                e.worst_mode_ratio().unwrap_or(f64::NAN)
            );
        }
    })
    .unwrap();
    println!(
        "final after {} its, {:.1}s:\n{}",
        out.iterations, out.seconds, out.report
    );
}
