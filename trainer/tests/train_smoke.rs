//! Small-budget DIS training runs: they learn, they are deterministic, and
//! they resume bit-identically.

use diffctl_trainer::eval::CostForm;
use diffctl_trainer::train::{train, Loss, RunOptions, TrainConfig};

fn small(loss: Loss, iterations: usize) -> TrainConfig {
    TrainConfig {
        loss,
        iterations,
        batch: 256,
        steps: 50,
        threads: 2,
        eval_every: 0,
        eval_samples: 4000,
        checkpoint_every: 0,
        seed: 1,
        ..TrainConfig::default()
    }
}

#[test]
#[ignore]
fn explore() {
    for loss in [Loss::LogVariance, Loss::Kl] {
        let cfg = small(loss, 300);
        let t = std::time::Instant::now();
        let out = train(&cfg, &RunOptions::default(), &mut |p| {
            if p.iteration % 50 == 0 {
                println!(
                    "{loss:?} it {} loss {:.4} grad {:.3} lr {:.4}",
                    p.iteration, p.loss, p.grad_norm, p.lr
                );
            }
        })
        .unwrap();
        println!(
            "{loss:?}: {:.1}s\n{}",
            t.elapsed().as_secs_f64(),
            out.report
        );
        let _ = CostForm::Discrete;
    }
}
