//! `diffctl plot FILE`: samples against the target, or with `--data`
//! against data, as SVG.

use std::path::{Path, PathBuf};

use clap::Args;
use diffctl_runtime::prelude::*;
use diffctl_trainer::data::Dataset;
use diffctl_trainer::eval::{sample_file, Samples};
use diffctl_trainer::target::TrainTarget;

use crate::args::{model_target, sample_options, RunArgs, TargetArgs};
use crate::datasets::{check_dim, subset, Purpose, Source};
use crate::error::{Error, Result};
use crate::output::{self, note};
use crate::{io, plot};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Weights file.
    pub file: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Number of samples (a 2-d scatter draws the first 2000).
    #[arg(long, short = 'n', value_name = "N", default_value_t = 5_000)]
    pub n: usize,
    /// Seed.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output file, .svg [default: FILE with the extension .svg].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Coordinates whose marginals to plot, e.g. 0,1,5 [default: a 2-d
    /// scatter when d = 2, else the first four].
    #[arg(long, value_delimiter = ',', value_name = "I,J,...")]
    pub coords: Option<Vec<usize>>,
    /// Data to draw the samples against (CSV, .npy or toy:NAME); up to --n
    /// points of it are shown.
    #[arg(
        long,
        value_name = "FILE|toy:NAME",
        conflicts_with_all = ["target", "target_config", "dim", "wells", "delta", "sigma"]
    )]
    pub data: Option<String>,
}

pub fn run(args: &PlotArgs) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.file.with_extension("svg"));
    check_svg_path(&out)?;
    output::check_distinct(&[("weights file", &args.file)], &[("plot", &out)])?;
    let bytes = io::read(&args.file)?;
    let model =
        Model::parse(&bytes).map_err(|e| Error::new(format!("{}: {e}", args.file.display())))?;
    let header = model.header;
    let target = model_target(&args.target, &model)?;
    let target = target.as_deref();
    let d = header.shape.d as usize;
    // Everything that can be refused is refused before sampling.
    if let Some(coords) = &args.coords {
        plot::check_coords(coords, d)?;
    }
    output::check_writable(&out, "plot")?;
    let opts = sample_options(args.n, args.seed, 0, d, &args.run)?;
    let name = args
        .file
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    if let Some(arg) = &args.data {
        let source = Source::parse(arg)?;
        let data = source.load(args.n, args.seed, Purpose::HeldOut)?;
        check_dim(&data, &source, d, &args.file)?;
        let shown = subset(&data, args.n, args.seed)?;
        let samples = sample_file(&bytes, target, &opts)?;
        write_versus(
            &out,
            &shown,
            &samples,
            args.coords.as_deref(),
            &name,
            &source.name(),
        )?;
        note!("wrote {}", out.display());
        return Ok(());
    }
    let samples = sample_file(&bytes, target, &opts)?;
    write(&out, &samples, target, args.coords.as_deref(), &name)?;
    note!("wrote {}", out.display());
    Ok(())
}

/// Plots are SVG only: it needs no fonts on the machine that draws it.
pub fn check_svg_path(path: &Path) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => Ok(()),
        _ => Err(Error::new(format!(
            "{}: plots are written as SVG; give a path ending in .svg",
            path.display()
        ))),
    }
}

/// Renders and writes (atomically) the plot of `samples`.
pub fn write(
    out: &Path,
    samples: &Samples,
    target: Option<&dyn TrainTarget>,
    coords: Option<&[usize]>,
    name: &str,
) -> Result<()> {
    let title = match target.and_then(|t| t.spec()) {
        Some(spec) => format!(
            "{name}: {} samples of {}",
            samples.xs.len() / samples.d,
            spec.preset_name()
                .map_or_else(|| spec.to_string(), String::from)
        ),
        None => format!("{name}: {} samples", samples.xs.len() / samples.d),
    };
    let truth = target.and_then(|t| t.ground_truth());
    let svg = plot::render(samples, truth.as_deref(), coords, &title)?;
    io::write_atomic(out, svg.as_bytes())
}

/// Renders and writes (atomically) the plot of `samples` against `data`.
pub fn write_versus(
    out: &Path,
    data: &Dataset,
    samples: &Samples,
    coords: Option<&[usize]>,
    name: &str,
    data_name: &str,
) -> Result<()> {
    let as_samples = Samples {
        d: data.d,
        first: 0,
        xs: data.xs.clone(),
        costs: None,
    };
    let title = format!(
        "{name}: {} samples against {} points of {data_name}",
        samples.xs.len() / samples.d,
        data.len()
    );
    let svg = plot::render_versus(&as_samples, samples, coords, &title)?;
    io::write_atomic(out, svg.as_bytes())
}
