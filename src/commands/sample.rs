//! `diffctl sample FILE --n N`: samples through the runtime, as CSV, `.npy`
//! or the device-check hex lines, streamed to the output in chunks.
//!
//! Sample `i` under seed `s` depends only on `(s, i)`, so the output has the
//! same bits whatever the chunk size and the thread count, and `--n` is
//! bounded by the disk, not by memory.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;
use diffctl_trainer::eval::{sample_params, Samples};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{model_target, sample_options, RunArgs, TargetArgs};
use crate::error::{Error, Result};
use crate::io;
use crate::output::{self, OutFile};
use diffctl_trainer::data::npy_header;

/// Floats drawn per chunk by default (256 KiB of samples, a fraction of a
/// second of sampling, between writes and progress updates).
const CHUNK_FLOATS: usize = 1 << 16;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// Weights file.
    pub file: PathBuf,
    /// Number of samples, streamed to the output in chunks (any number).
    #[arg(long, short = 'n', value_name = "N")]
    pub n: usize,
    /// Seed: sample i under seed s is the same on every machine.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// First sample index (samples first .. first + n are drawn).
    #[arg(long, value_name = "I", default_value_t = 0)]
    pub first: u64,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output format [default: from the --out extension (.csv, .npy, .hex), else csv].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,
    /// Output file, written atomically [default: standard output].
    #[arg(long, short = 'o', value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Samples per chunk (the output does not depend on it; for tests).
    #[arg(long, hide = true, value_name = "N")]
    pub chunk: Option<usize>,
    /// Draw --n weighted samples, then write M draws resampled by their
    /// importance weights exp(-R_disc) (systematic resampling under --seed):
    /// approximately the target's distribution, unweighted. Needs a target.
    #[arg(long, value_name = "M")]
    pub resample: Option<usize>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Header `x0,x1,...` (and `log_w` = -R_disc when there is a target), one row per sample.
    Csv,
    /// NumPy array of shape (n, d), little-endian f32.
    Npy,
    /// `<seed> <index> <f32 bits in hex>...`, one line per sample (runtime::hex).
    Hex,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Npy => "npy",
            Format::Hex => "hex",
        }
    }
}

/// The format: `--format`, else the extension of `--out`, else CSV. An
/// extension that names another format, or a weights file, is refused.
fn choose_format(format: Option<Format>, out: Option<&Path>) -> Result<Format> {
    let ext = out
        .and_then(Path::extension)
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let by_ext = match ext.as_deref() {
        Some("csv") => Some(Format::Csv),
        Some("npy") => Some(Format::Npy),
        Some("hex") => Some(Format::Hex),
        Some("dcw") => {
            return Err(Error::new(format!(
                "{}: .dcw is the weights files' extension; write samples to .csv, .npy or .hex",
                out.map_or_else(String::new, |p| p.display().to_string())
            )))
        }
        _ => None,
    };
    match (format, by_ext) {
        (Some(f), Some(e)) if f != e => Err(Error::new(format!(
            "--format {} contradicts the extension of --out {} ({}): give one or make them agree",
            f.name(),
            out.map_or_else(String::new, |p| p.display().to_string()),
            e.name()
        ))),
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => Ok(Format::Csv),
    }
}

/// Where the chunks go.
enum Sink {
    File(OutFile),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Sink {
    /// Writes a chunk; `Ok(false)` when standard output was closed (`| head`):
    /// the command then stops quietly.
    fn write(&mut self, bytes: &[u8]) -> Result<bool> {
        match self {
            Sink::File(f) => f.write(bytes).map(|()| true),
            Sink::Stdout(w) => match w.write_all(bytes) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                Err(e) => Err(Error::new(format!("writing to standard output: {e}"))),
            },
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::File(f) => f.commit(),
            Sink::Stdout(mut w) => match w.flush() {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                Err(e) => Err(Error::new(format!("writing to standard output: {e}"))),
            },
        }
    }
}

pub fn run(args: &SampleArgs) -> Result<()> {
    let format = choose_format(args.format, args.out.as_deref())?;
    if let Some(out) = &args.out {
        let mut inputs: Vec<(&str, &Path)> = vec![("weights file", &args.file)];
        if let Some(c) = &args.target.target_config {
            inputs.push(("target config", c));
        }
        output::check_distinct(&inputs, &[("samples", out)])?;
    }
    let bytes = io::read(&args.file)?;
    let in_file = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", args.file.display()));
    let model = Model::parse(&bytes).map_err(|e| in_file(&e))?;
    let header = model.header;
    // Check the target before drawing anything.
    let target = model_target(&args.target, &model)?;
    if target.is_none() && header.shape.score_term {
        return Err(in_file(&format!(
            "the network uses the target's score and the file does not define its target{}",
            match header.target {
                Some(spec) => format!(" ({spec}): give its config with --target-config"),
                None => ": give one with --target or --target-config".into(),
            }
        )));
    }
    let point = target.as_ref().map(|t| t.point());
    let d = header.shape.d as usize;
    if args.n == 0 {
        return Err("the number of samples must be at least 1".into());
    }
    if args.first.checked_add(args.n as u64).is_none() {
        return Err("sample indices --first .. --first + n overflow a 64-bit index".into());
    }
    let chunk = match args.chunk {
        Some(0) => return Err("--chunk must be at least 1".into()),
        Some(c) => c,
        None => (CHUNK_FLOATS / d.max(1)).max(1),
    }
    .min(args.n);
    // Checks the steps and the threads (the chunk size bounds memory).
    let opts = sample_options(chunk, args.seed, args.first, d, &args.run)?;
    if format == Format::Npy && args.out.is_none() && std::io::stdout().is_terminal() {
        return Err(
            "refusing to write binary .npy to a terminal: give --out PATH.npy or redirect".into(),
        );
    }
    let mut params = vec![0.0f32; header.param_count()];
    model.params_into(&mut params).map_err(|e| in_file(&e))?;
    if let Some(m) = args.resample {
        return resampled(args, format, &header, &params, point.as_deref(), m);
    }
    let mut sink = match &args.out {
        Some(path) => {
            output::check_writable(path, "samples file")?;
            Sink::File(OutFile::create(path)?)
        }
        None => Sink::Stdout(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )),
    };
    let bar = (args.n > chunk && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(args.n as u64);
        let style = ProgressStyle::with_template(
            "{bar:30.cyan/blue} {human_pos}/{human_len} samples [{elapsed_precise}, eta {eta}]",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar
    });

    let mut buf = Vec::new();
    let mut done = 0usize;
    while done < args.n {
        let m = chunk.min(args.n - done);
        let chunk_opts = diffctl_trainer::eval::SampleOptions {
            n: m,
            first: args.first + done as u64,
            ..opts.clone()
        };
        let samples = sample_params(&header, &params, point.as_deref(), &chunk_opts)?;
        buf.clear();
        if done == 0 {
            match format {
                Format::Csv => buf.extend_from_slice(csv_header(&samples).as_bytes()),
                Format::Npy => buf.extend_from_slice(&npy_header(args.n, d)),
                Format::Hex => {}
            }
        }
        match format {
            Format::Csv => buf.extend_from_slice(csv_rows(&samples).as_bytes()),
            Format::Npy => {
                for v in &samples.xs {
                    buf.extend_from_slice(&v.to_le_bytes());
                }
            }
            Format::Hex => buf.extend_from_slice(hex(&samples, args.seed).as_bytes()),
        }
        if !sink.write(&buf)? {
            break;
        }
        done += m;
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    sink.finish()
}

/// `sample --resample M`: all `--n` weighted paths in memory, then `M`
/// draws by weight, written in one piece.
fn resampled(
    args: &SampleArgs,
    format: Format,
    header: &Header,
    params: &[f32],
    point: Option<&(dyn Target + Sync)>,
    m: usize,
) -> Result<()> {
    let d = header.shape.d as usize;
    if m == 0 {
        return Err("--resample needs at least 1 draw".into());
    }
    if format == Format::Hex {
        return Err("--resample writes draws, not indexed samples: use --format csv or npy".into());
    }
    if point.is_none() {
        return Err("--resample needs importance weights: give the model's target".into());
    }
    let opts = sample_options(args.n, args.seed, args.first, d, &args.run)?;
    sample_options(m, args.seed, 0, d, &args.run)?;
    let samples = sample_params(header, params, point, &opts)?;
    let draws = diffctl_trainer::eval::resample(&samples, m, args.seed)?;
    let mut buf = Vec::new();
    match format {
        Format::Csv => {
            buf.extend_from_slice(csv_header(&draws).as_bytes());
            buf.extend_from_slice(csv_rows(&draws).as_bytes());
        }
        Format::Npy => {
            buf.extend_from_slice(&npy_header(m, d));
            for v in &draws.xs {
                buf.extend_from_slice(&v.to_le_bytes());
            }
        }
        Format::Hex => unreachable!("refused above"),
    }
    let mut sink = match &args.out {
        Some(path) => {
            output::check_writable(path, "samples file")?;
            Sink::File(OutFile::create(path)?)
        }
        None => Sink::Stdout(std::io::BufWriter::new(std::io::stdout())),
    };
    sink.write(&buf)?;
    sink.finish()
}

/// The CSV header: `x0,...,x{d-1}`, and `log_w` when the samples have path costs.
pub fn csv_header(samples: &Samples) -> String {
    let mut names: Vec<String> = (0..samples.d).map(|j| format!("x{j}")).collect();
    if samples.costs.is_some() {
        names.push("log_w".into());
    }
    names.join(",") + "\n"
}

/// CSV rows; `log_w = -R_disc`, the log importance weight, when the samples
/// have path costs. Values print as the shortest decimal that reads back to
/// the same `f32` (`f64` for `log_w`).
pub fn csv_rows(samples: &Samples) -> String {
    let mut s = String::new();
    for (i, x) in samples.xs.chunks_exact(samples.d).enumerate() {
        for (j, v) in x.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(s, "{v}");
        }
        if let Some(c) = &samples.costs {
            let _ = write!(s, ",{}", -c[i].r_disc);
        }
        s.push('\n');
    }
    s
}

/// The runtime's device-check lines (`diffctl_runtime::hex`).
pub fn hex(samples: &Samples, seed: u64) -> String {
    let mut s = String::new();
    for (i, x) in samples.xs.chunks_exact(samples.d).enumerate() {
        // Writing into a String cannot fail.
        let _ = write_sample_line(&mut s, seed, samples.first + i as u64, x);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_flag_and_the_extension() {
        let p = |s: &str| Some(PathBuf::from(s));
        let f = |fmt, out: Option<PathBuf>| choose_format(fmt, out.as_deref());
        assert_eq!(f(None, None).unwrap(), Format::Csv);
        assert_eq!(f(None, p("a.npy")).unwrap(), Format::Npy);
        assert_eq!(f(Some(Format::Hex), p("a.txt")).unwrap(), Format::Hex);
        assert_eq!(f(Some(Format::Hex), p("a.hex")).unwrap(), Format::Hex);
        assert!(f(Some(Format::Hex), p("c.npy")).is_err());
        assert!(f(None, p("g.dcw")).is_err());
    }
}
