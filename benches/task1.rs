//! Issue 7 (Task 1 of the slides): how the moment errors of trained DIS and
//! PIS models change with the number of sampling steps K.
//!
//! `cargo bench --bench task1 [-- --quick]`. For `dw20` and `gmm`: trains DIS
//! (VP SDE, log-variance loss, Euler–Maruyama, K = 100, batch 512) and PIS
//! (Brownian reference `Sde::pis_reference()`, Euler–Maruyama, K = 100) with
//! seed 0 and the trainer's default exploration (path noise scaled by 2,
//! decaying to on-policy over the first quarter), then samples each model through the runtime at K = 25 ... 400
//! (20,000 paths each, a seed training never used) with DIS under
//! Euler–Maruyama, the exponential integrator and the probability-flow ODE,
//! and PIS under Euler–Maruyama. Writes `benches/results/task1.{csv,md}` and
//! one plot per target, `benches/results/task1_<target>.svg` (`--quick`:
//! 200 iterations, files `task1_quick*`; `--plot-only`: redraw the plots from
//! the CSV).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{report, sample_params, CostForm, SampleOptions};
use diffctl_trainer::optimise::RunOptions;
use diffctl_trainer::target::{Known, TrainTarget};
use diffctl_trainer::train::{train, TrainConfig, TrainOutcome};
use plotters::prelude::*;

const TARGETS: [&str; 2] = ["dw20", "gmm"];
const STEPS: [usize; 5] = [25, 50, 100, 200, 400];
const SAMPLES: usize = 20_000;
/// Sampling seed of the evaluations (training uses seed 0).
const EVAL_SEED: u64 = 7;

/// One evaluated variant: the model it samples and the integrator.
struct Variant {
    label: &'static str,
    sampler: &'static str,
    integrator: Integrator,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        label: "DIS, Euler–Maruyama",
        sampler: "dis",
        integrator: Integrator::EulerMaruyama,
    },
    Variant {
        label: "DIS, exponential",
        sampler: "dis",
        integrator: Integrator::Exponential,
    },
    Variant {
        label: "DIS, probability flow",
        sampler: "dis",
        integrator: Integrator::ProbabilityFlow,
    },
    Variant {
        label: "PIS, Euler–Maruyama",
        sampler: "pis",
        integrator: Integrator::EulerMaruyama,
    },
];

fn config(sampler: &str, iterations: usize) -> TrainConfig {
    let base = TrainConfig {
        integrator: Integrator::EulerMaruyama,
        steps: 100,
        batch: 512,
        iterations,
        eval_every: 0,
        eval_samples: 4096,
        checkpoint_every: 0,
        seed: 0,
        ..TrainConfig::default()
    };
    match sampler {
        "pis" => TrainConfig {
            sampler: SamplerKind::Pis,
            sde: Sde::pis_reference(),
            ..base
        },
        _ => base,
    }
}

/// One row of the results.
struct Row {
    target: &'static str,
    variant: usize,
    steps: usize,
    sq: f64,
    abs: f64,
    log_z_is: Option<f64>,
    worst_mode: Option<f64>,
}

/// The rows of a CSV written by this harness (for `--plot-only`).
fn read_rows(csv: &str) -> Vec<Row> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let target = TARGETS
                .into_iter()
                .find(|t| *t == f[0])
                .expect("known target");
            let variant = VARIANTS
                .iter()
                .position(|v| v.sampler == f[1] && format!("{:?}", v.integrator) == f[2])
                .expect("known variant");
            let num = |s: &str| s.parse::<f64>().ok();
            Row {
                target,
                variant,
                steps: f[3].parse().expect("step count"),
                sq: num(f[4]).expect("E|x|^2 error"),
                abs: num(f[5]).expect("E|x|_1 error"),
                log_z_is: num(f[6]),
                worst_mode: num(f[7]),
            }
        })
        .collect()
}

fn write_plots(dir: &Path, suffix: &str, rows: &[Row]) {
    for target in TARGETS {
        let svg = plot(target, rows).expect("plot");
        std::fs::write(dir.join(format!("task1_{target}{suffix}.svg")), svg).expect("write svg");
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
    let suffix = if quick { "_quick" } else { "" };
    if std::env::args().any(|a| a == "--plot-only") {
        // Redraw the plots from the CSV of an earlier run.
        let csv =
            std::fs::read_to_string(dir.join(format!("task1{suffix}.csv"))).expect("read csv");
        write_plots(&dir, suffix, &read_rows(&csv));
        return;
    }
    let iterations = if quick { 200 } else { 1500 };
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut train_lines = String::new();
    for target in TARGETS {
        let known = Known::preset(target).expect("known preset");
        let point = known.point();
        let mut models: Vec<(&str, TrainOutcome)> = Vec::new();
        for sampler in ["dis", "pis"] {
            let cfg = config(sampler, iterations);
            let t0 = Instant::now();
            let out = train(&cfg, &known, &RunOptions::default(), &mut |p| {
                if p.step.iteration % 250 == 0 {
                    eprintln!(
                        "{target}/{sampler}: iteration {} loss {:.4} ({:.0} s)",
                        p.step.iteration,
                        p.step.loss,
                        p.step.elapsed.as_secs_f64()
                    );
                }
            })
            .expect("training succeeds");
            let secs = t0.elapsed().as_secs_f64();
            let line = format!(
                "{target}/{sampler}: {} iterations in {secs:.0} s",
                out.iterations
            );
            eprintln!("{line}");
            writeln!(train_lines, "{line}").unwrap();
            models.push((sampler, out));
        }
        for (vi, v) in VARIANTS.iter().enumerate() {
            let model = &models
                .iter()
                .find(|(s, _)| *s == v.sampler)
                .expect("trained")
                .1;
            for k in STEPS {
                let opts = SampleOptions {
                    n: SAMPLES,
                    seed: EVAL_SEED,
                    steps: Some(k),
                    integrator: Some(v.integrator),
                    ..SampleOptions::default()
                };
                let samples = sample_params(&model.header, &model.params, Some(&*point), &opts)
                    .expect("sampling succeeds");
                let r = report(&samples, Some(&known), CostForm::Discrete);
                let row = Row {
                    target,
                    variant: vi,
                    steps: k,
                    sq: r.sq_norm.error().expect("known truth"),
                    abs: r.abs_norm.error().expect("known truth"),
                    log_z_is: r.log_z_is_error().filter(|e| e.is_finite()),
                    worst_mode: r.worst_mode_ratio(),
                };
                eprintln!(
                    "{target} {} K = {k}: E|x|^2 err {:+.4}, E|x|_1 err {:+.4}",
                    v.label, row.sq, row.abs
                );
                rows.push(row);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();

    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:+.p$}"));
    let mut csv = String::from(
        "target,sampler,integrator,steps,sq_norm_err,abs_norm_err,log_z_is_err,worst_mode_ratio\n",
    );
    let mut md = format!(
        "Trained at K = 100 ({iterations} iterations, batch 512, seed 0, exploration 2 decaying \
         to on-policy over the first quarter), evaluated on \
         {SAMPLES} paths per row (seed {EVAL_SEED}); errors are model minus truth. \
         `worst mode` = smallest observed mode share / expected share.\n\n\
         | target | sampler | integrator | K | E\\|x\\|² err | E\\|x\\|₁ err | log Z_is err | worst mode |\n\
         |---|---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        let v = &VARIANTS[r.variant];
        let integ = format!("{:?}", v.integrator);
        writeln!(
            csv,
            "{},{},{},{},{:.6},{:.6},{},{}",
            r.target,
            v.sampler,
            integ,
            r.steps,
            r.sq,
            r.abs,
            r.log_z_is.map_or(String::new(), |x| format!("{x:.6}")),
            r.worst_mode.map_or(String::new(), |x| format!("{x:.4}")),
        )
        .unwrap();
        writeln!(
            md,
            "| {} | {} | {} | {} | {:+.3} | {:+.3} | {} | {} |",
            r.target,
            v.sampler.to_uppercase(),
            integ,
            r.steps,
            r.sq,
            r.abs,
            opt(r.log_z_is, 3),
            r.worst_mode.map_or("-".to_string(), |x| format!("{x:.2}")),
        )
        .unwrap();
    }
    writeln!(md, "\n```\n{train_lines}total wall time {wall:.0} s\n```").unwrap();
    println!("{md}");

    std::fs::create_dir_all(&dir).expect("results directory");
    std::fs::write(dir.join(format!("task1{suffix}.csv")), csv).expect("write csv");
    std::fs::write(dir.join(format!("task1{suffix}.md")), md).expect("write markdown");
    write_plots(&dir, suffix, &rows);
}

const COLORS: [RGBColor; 4] = [
    RGBColor(49, 110, 180),
    RGBColor(230, 130, 20),
    RGBColor(40, 150, 70),
    RGBColor(200, 40, 40),
];

/// |error of E|x|^2| against K, both axes logarithmic, one line per variant.
fn plot(target: &str, rows: &[Row]) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| format!("drawing the plot: {e}");
    const FLOOR: f64 = 1e-3;
    let pts: Vec<&Row> = rows.iter().filter(|r| r.target == target).collect();
    let ymax = pts
        .iter()
        .map(|r| r.sq.abs())
        .fold(FLOOR, f64::max)
        .max(10.0 * FLOOR);
    let ymin = pts
        .iter()
        .map(|r| r.sq.abs().max(FLOOR))
        .fold(ymax, f64::min);
    // Whole decades, ticks at 1, 2 and 5 of each.
    let (y0, y1) = (
        10f64.powf(ymin.log10().floor()),
        10f64.powf(ymax.log10().ceil()),
    );
    let mut yticks = Vec::new();
    let mut decade = y0;
    while decade < y1 * 1.001 {
        yticks.extend(
            [decade, 2.0 * decade, 5.0 * decade]
                .iter()
                .filter(|&&t| t <= y1 * 1.001),
        );
        decade *= 10.0;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{target}: |error of E|x|^2| vs K (trained at K = 100)"),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (20f64..500f64)
                    .log_scale()
                    .with_key_points(STEPS.iter().map(|&k| k as f64).collect()),
                (y0..y1).log_scale().with_key_points(yticks),
            )
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|k| format!("{k:.0}"))
            .y_label_formatter(&|e| format!("{e}"))
            .x_desc("K (sampling steps)")
            .y_desc("|E|x|^2 error|")
            .draw()
            .map_err(|e| err(&e))?;
        for (vi, v) in VARIANTS.iter().enumerate() {
            let line: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.variant == vi)
                .map(|r| (r.steps as f64, r.sq.abs().max(FLOOR)))
                .collect();
            let color = COLORS[vi];
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(v.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
