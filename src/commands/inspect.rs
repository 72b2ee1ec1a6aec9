//! `diffctl inspect FILE`: a weights file's header, human readable.

use std::fmt::Write;
use std::path::PathBuf;

use clap::Args;
use diffctl_runtime::prelude::*;

use crate::args::{describe_target, integrator_names};
use crate::error::{Error, Result};
use crate::io;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Weights file.
    pub file: PathBuf,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let bytes = io::read(&args.file)?;
    let text = describe(&bytes).map_err(|e| Error::new(format!("{}: {e}", args.file.display())))?;
    io::write_stdout(text.as_bytes())
}

/// The report `inspect` prints; also checks that every parameter is finite.
pub fn describe(bytes: &[u8]) -> Result<String, DecodeError> {
    let model = Model::parse(bytes)?;
    let h = model.header;
    let mut params = vec![0.0f32; h.param_count()];
    model.params_into(&mut params)?;
    let max_abs = params.iter().fold(0.0f32, |m, v| m.max(v.abs()));

    let mut s = String::new();
    let shape = h.shape;
    let line = |s: &mut String, k: &str, v: String| {
        let _ = writeln!(s, "{k:<12} {v}");
    };
    line(&mut s, "sampler", sampler_name(h.sampler).into());
    line(
        &mut s,
        "network",
        format!(
            "d = {}, C = {} channels, L = {} layers, score term {}",
            shape.d,
            shape.channels,
            shape.layers,
            if shape.score_term { "on" } else { "off" }
        ),
    );
    line(
        &mut s,
        "parameters",
        format!("{} (max |p| = {max_abs:.4})", h.param_count()),
    );
    line(&mut s, "sde", sde_text(&h.sde));
    line(&mut s, "grid", format!("{:?}", h.grid).to_lowercase());
    line(&mut s, "steps", format!("{} (default K)", h.steps));
    line(
        &mut s,
        "integrator",
        format!(
            "{} ({}; the default of sample, eval and plot)",
            integrator_names(h.integrator),
            integrator_name(h.integrator)
        ),
    );
    line(
        &mut s,
        "prior",
        match h.sde {
            Sde::Pis { .. } => "X_0 = 0 (PIS)".into(),
            Sde::Vp { .. } => format!("N(0, {}^2 I)", h.prior_nu),
        },
    );
    line(
        &mut s,
        "score clip",
        if h.score_clip.is_finite() {
            format!("target score clamped to +-{}", h.score_clip)
        } else {
            "none".into()
        },
    );
    line(
        &mut s,
        "target",
        h.target
            .as_ref()
            .map_or("none built in".into(), describe_target),
    );
    line(&mut s, "dtype", format!("{:?}", h.dtype).to_lowercase());
    line(&mut s, "file size", format!("{} bytes", bytes.len()));
    Ok(s)
}

pub fn sampler_name(k: SamplerKind) -> &'static str {
    match k {
        SamplerKind::Dis => "DIS (time-reversed diffusion sampler)",
        SamplerKind::Pis => "PIS (path integral sampler)",
        SamplerKind::Dds => "DDS (denoising diffusion sampler)",
        SamplerKind::Dsm => "DSM (denoising score matching on data)",
    }
}

pub fn integrator_name(i: Integrator) -> &'static str {
    match i {
        Integrator::EulerMaruyama => "Euler-Maruyama",
        Integrator::Exponential => "exponential: linear drift and noise exact",
        Integrator::ProbabilityFlow => "probability-flow ODE, no path cost",
    }
}

fn sde_text(sde: &Sde) -> String {
    match *sde {
        Sde::Vp { schedule, t_end } => {
            let sched = match schedule {
                Schedule::Linear { beta_min, beta_max } => {
                    format!("linear schedule, beta_min = {beta_min}, beta_max = {beta_max}")
                }
                Schedule::Cosine { offset, end } => {
                    format!("cosine schedule, offset = {offset}, end = {end}")
                }
            };
            format!("variance preserving, T = {t_end}, {sched}")
        }
        Sde::Pis { sigma, t_end } => {
            format!("PIS Brownian reference, sigma = {sigma}, T = {t_end}")
        }
    }
}
