//! `diffctl`: train a diffusion-based sampler, ship one weights file, sample
//! it anywhere with the same bits for the same seed.
//!
//! Every error is one line, `error: ...`, on standard error, with a non-zero
//! exit code. Output goes through `output` (`say!`, `note!`): a closed pipe
//! never panics.
#![warn(clippy::print_stdout, clippy::print_stderr)]
// The argument structs' doc comments are clap's --help text, where
// `out/<target>.dcw` is plain text, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod args;
mod commands;
mod config;
mod datasets;
mod error;
mod io;
mod output;
mod plot;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{demo, eval, fit, inspect, plot as plot_cmd, sample, train};
use output::note;

#[derive(Parser, Debug)]
#[command(
    name = "diffctl",
    version,
    about = "Diffusion-based samplers: train, inspect, sample, evaluate, plot",
    long_about = "Diffusion-based samplers trained by optimal control (DIS, log-variance or KL loss).\n\
                  Train on a workstation, ship one weights file, sample it on any machine with the\n\
                  same bits for the same seed, and estimate log Z with unbiased path costs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show a weights file's header.
    Inspect(inspect::InspectArgs),
    /// Draw samples (CSV, .npy or device-check hex lines).
    Sample(sample::SampleArgs),
    /// Estimate log Z, ESS, moments and mode occupancy; with --data, the likelihood bound.
    Eval(eval::EvalArgs),
    /// Plot samples against the target, or against data (SVG).
    Plot(plot_cmd::PlotArgs),
    /// Train a sampler on a built-in target.
    Train(Box<train::TrainArgs>),
    /// Fit a model to samples (CSV, .npy or toy:NAME) by denoising score matching.
    Fit(Box<fit::FitArgs>),
    /// Train DIS on gmm, evaluate and plot it (the README's main job).
    Demo(demo::DemoArgs),
}

fn run(cli: Cli) -> error::Result<ExitCode> {
    match cli.command {
        Command::Inspect(a) => inspect::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Sample(a) => sample::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Eval(a) => eval::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Plot(a) => plot_cmd::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Train(a) => train::run(&a),
        Command::Fit(a) => fit::run(&a),
        Command::Demo(a) => demo::run(&a),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            note!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to standard output as clap formats them; a usage
/// error becomes one line (clap's first paragraph), exit code 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            output::out(&e.to_string());
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            note!(
                "error: missing subcommand: inspect, sample, eval, plot, train, fit or demo (see diffctl --help)"
            );
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = e.to_string();
    let paragraph: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let joined = paragraph.join(" ");
    let msg = joined
        .strip_prefix("error:")
        .map_or(joined.as_str(), str::trim);
    note!("error: {msg} (see diffctl --help)");
    ExitCode::from(2)
}
