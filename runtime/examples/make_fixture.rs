//! Writes a weights file with random (untrained) parameters: a stand-in for a
//! trained model, for the device-check fixtures (`examples/fixtures/`).
//!
//! ```text
//! cargo run -p diffctl-runtime --example make_fixture -- \
//!     --target gmm --dtype f32 --channels 64 --layers 4 --steps 50 \
//!     --integrator em --grid uniform --schedule linear --score on --seed 1 --out gmm_f32.dcw
//! ```
//!
//! Parameters are drawn from the runtime's own random streams, so the file is
//! the same on every machine: Fourier phases `N(0, 1)`, all other weights and
//! biases `N(0, 0.1^2)`, except the output layer (`N(0, 0.02^2)`: small but
//! nonzero, so the network's arithmetic shows in every sample) and the score
//! scale's output bias `score.b2 = 1` (as at initialisation, MATH.md §5).
//! Parameters are drawn in `f32` and rounded to the file's dtype when written.
//!
//! Writing needs no allocator in the runtime (`weights::encode_into`), so this
//! example builds with or without the `alloc` feature.

use std::process::ExitCode;

use diffctl_runtime::network::Param;
use diffctl_runtime::normal::{fill_normals, stream};
use diffctl_runtime::prelude::*;
use diffctl_runtime::weights;

struct Options {
    target: TargetSpec,
    dtype: Dtype,
    channels: u32,
    layers: u32,
    steps: u32,
    integrator: Integrator,
    grid: TimeGrid,
    schedule: Schedule,
    score: bool,
    seed: u64,
    out: String,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        target: TargetSpec::Gmm,
        dtype: Dtype::F32,
        channels: 64,
        layers: 4,
        steps: 50,
        integrator: Integrator::EulerMaruyama,
        grid: TimeGrid::Uniform,
        schedule: Schedule::REFERENCE,
        score: true,
        seed: 1,
        out: String::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.len().is_multiple_of(2) {
        return Err("options come in pairs: --name value".into());
    }
    for pair in args.chunks_exact(2) {
        let (key, v) = (pair[0].as_str(), pair[1].as_str());
        let num = |what: &str| -> Result<u64, String> {
            v.parse().map_err(|_| format!("{what}: not a number: {v}"))
        };
        match key {
            "--target" => {
                o.target = TargetSpec::preset(v).ok_or(format!("unknown target preset {v}"))?
            }
            "--dtype" => {
                o.dtype = match v {
                    "f32" => Dtype::F32,
                    "f16" => Dtype::F16,
                    "bf16" => Dtype::Bf16,
                    _ => return Err(format!("unknown dtype {v}")),
                }
            }
            "--channels" => o.channels = num(key)? as u32,
            "--layers" => o.layers = num(key)? as u32,
            "--steps" => o.steps = num(key)? as u32,
            "--integrator" => {
                o.integrator = match v {
                    "em" => Integrator::EulerMaruyama,
                    "exp" => Integrator::Exponential,
                    "flow" => Integrator::ProbabilityFlow,
                    _ => return Err(format!("unknown integrator {v}")),
                }
            }
            "--grid" => {
                o.grid = match v {
                    "uniform" => TimeGrid::Uniform,
                    "quadratic" => TimeGrid::Quadratic,
                    "cosine" => TimeGrid::Cosine,
                    _ => return Err(format!("unknown grid {v}")),
                }
            }
            "--schedule" => {
                o.schedule = match v {
                    "linear" => Schedule::REFERENCE,
                    "cosine" => Schedule::Cosine {
                        offset: 0.008,
                        end: 0.99,
                    },
                    _ => return Err(format!("unknown schedule {v}")),
                }
            }
            "--score" => {
                o.score = match v {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--score takes on or off, not {v}")),
                }
            }
            "--seed" => o.seed = num(key)?,
            "--out" => o.out = v.to_string(),
            _ => return Err(format!("unknown option {key}")),
        }
    }
    if o.out.is_empty() {
        return Err("--out is required".into());
    }
    Ok(o)
}

/// Random parameters in the flat order of `shape.params()`.
fn random_params(shape: &NetworkShape, seed: u64) -> Vec<f32> {
    let mut params = vec![0.0f32; shape.param_count()];
    // One stream per tensor (stream index = tensor number), so changing one
    // tensor's size does not shift every later tensor's values.
    let mut offset = 0;
    for (k, spec) in shape.params().enumerate() {
        let t = &mut params[offset..offset + spec.len()];
        offset += spec.len();
        fill_normals(&mut stream(seed, k as u64), t);
        let std = match spec.param {
            Param::TimePhase => 1.0,
            Param::OutW | Param::OutB => 0.02,
            _ => 0.1,
        };
        for v in t.iter_mut() {
            *v *= std;
        }
        if spec.param == Param::ScoreB2 {
            t.fill(1.0);
        }
    }
    params
}

fn run() -> Result<(), String> {
    let o = parse_args()?;
    let shape = NetworkShape {
        d: o.target.dim() as u32,
        channels: o.channels,
        layers: o.layers,
        score_term: o.score,
    };
    let header = Header {
        sampler: SamplerKind::Dis,
        shape,
        sde: Sde::Vp {
            schedule: o.schedule,
            t_end: 1.0,
        },
        grid: o.grid,
        steps: o.steps,
        integrator: o.integrator,
        prior_nu: 1.0,
        score_clip: 100.0,
        target: Some(o.target),
        dtype: o.dtype,
    };
    header.validate()?;
    let params = random_params(&shape, o.seed);
    let mut bytes = vec![0u8; weights::encoded_len(&header).map_err(|e| e.to_string())?];
    let n = weights::encode_into(&header, &params, &mut bytes).map_err(|e| e.to_string())?;
    bytes.truncate(n);
    // Round trip: the file decodes to the parameters rounded to its dtype.
    let model = Model::parse(&bytes).map_err(|e| e.to_string())?;
    let mut back = vec![0.0f32; params.len()];
    model.params_into(&mut back).map_err(|e| e.to_string())?;
    if back
        .iter()
        .zip(&params)
        .any(|(b, p)| b.to_bits() != o.dtype.round(*p).to_bits())
    {
        return Err("round trip changed a parameter".into());
    }
    std::fs::write(&o.out, &bytes).map_err(|e| format!("{}: {e}", o.out))?;
    eprintln!(
        "{}: {} parameters, {} bytes",
        o.out,
        shape.param_count(),
        bytes.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_fixture: {e}");
            ExitCode::FAILURE
        }
    }
}
