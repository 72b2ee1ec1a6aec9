//! The smallest diffctl firmware: one model embedded in flash, batch 1 with
//! path costs, raw sample bytes over semihosting, no `core::fmt`.
//!
//! Built for `thumbv7em-none-eabihf` (Cortex-M4F) or `thumbv6m-none-eabi`
//! (Cortex-M0+, soft float). For each seed of [`SEEDS`] it draws samples
//! `0..N` one at a time with the
//! file's own sampler (`gmm_f16.dcw`: DIS, d = 2, C = 64, K = 50) and writes,
//! per sample, the `d` coordinates as `f32` little endian followed by the
//! path cost `R_disc` as `f64` little endian (`-R_disc` is the sample's log
//! importance weight): `4 d + 8 = 16` bytes. `.ci/device-check.sh` turns the
//! coordinates into the hex lines of `diffctl_runtime::hex` and compares them
//! with the golden samples. At the end it writes two text lines to stderr:
//! the stack's high-water mark, and the SysTick ticks of the first sample. Exit status 0 on success, 1 on any error or
//! panic.
//!
//! What keeps it small (see `../README.md` for the measured sizes):
//! * the network reads its `f16` parameters from flash in place
//!   (`Model::sampler_with`): no parameter buffer, every buffer sized at
//!   compile time from the embedded file (`shape_of`);
//! * the target is the `gmm` mixture itself, not the `Builtin` enum of every
//!   built-in target (whose dispatch links all of them, and their ground
//!   truth and `core::fmt` labels);
//! * no `core::fmt`: errors are exit codes, the one number printed is
//!   formatted by hand, and the panic handler ignores its message.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use diffctl_runtime::prelude::*;
use diffctl_runtime::target::{gmm, GaussianMixture};

/// The model, in flash.
const WEIGHTS: &[u8] = include_bytes!("../../fixtures/gmm_f16.dcw");
/// Its network's shape, read from the file at compile time.
const SHAPE: NetworkShape = match shape_of(WEIGHTS) {
    Some(shape) => shape,
    None => panic!("gmm_f16.dcw is not a weights file"),
};
const D: usize = SHAPE.d as usize;
/// Work buffer floats for one path.
const WORK: usize = SHAPE.sampler_work_len(1);
/// Seeds, in order (as `.ci/device-check.sh`), and samples `0..N` of each:
/// the first 25 of the golden 100, to keep the device check fast; the first
/// 5 on a core without FPU (the `thumbv6m-none-eabi` build, Cortex-M0+).
const SEEDS: [u64; 3] = [0, 1, u64::MAX];
const N: u64 = if cfg!(target_abi = "eabihf") { 25 } else { 5 };

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => EXIT_SUCCESS,
        Err(()) => EXIT_FAILURE,
    };
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run() -> Result<(), ()> {
    // SysTick as a free-running 24-bit down counter (no interrupt): under
    // QEMU with -icount shift=0 one tick is 40 instructions, and one sample
    // (about 1M ticks) takes less than a wrap (2^24 ticks).
    let mut syst = cortex_m::Peripherals::take().ok_or(())?.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(0x00FF_FFFF);
    syst.clear_current();
    syst.enable_counter();
    let mut first_sample_ticks = 0;
    let mut stdout = hio::hstdout()?;
    let model = Model::parse(WEIGHTS).map_err(drop)?;
    if model.header.target != Some(TargetSpec::Gmm) {
        return Err(());
    }
    // The preset's own tables (what `TargetSpec::Gmm` builds).
    let target = GaussianMixture {
        weights: &gmm::WEIGHTS,
        means: &gmm::MEANS,
        stds: &gmm::STDS,
    };
    let sampler = model.sampler_with(target).map_err(drop)?;

    let mut x = [0.0f32; D];
    let mut path: [PathState; 1] = Default::default();
    let mut work = [0.0f32; WORK];
    let mut record = [0u8; 4 * D + 8];
    for seed in SEEDS {
        for index in 0..N {
            let start = SYST::get_current();
            sampler
                .sample(seed, index, &mut x, &mut path, &mut work)
                .map_err(drop)?;
            if (seed, index) == (SEEDS[0], 0) {
                first_sample_ticks = start.wrapping_sub(SYST::get_current()) & 0x00FF_FFFF;
            }
            let (coords, cost) = record.split_at_mut(4 * D);
            for (bytes, v) in coords.chunks_exact_mut(4).zip(&x) {
                bytes.copy_from_slice(&v.to_le_bytes());
            }
            cost.copy_from_slice(&path[0].cost.r_disc.to_le_bytes());
            stdout.write_all(&record)?;
        }
    }

    let mut stderr = hio::hstderr()?;
    let mut digits = [0u8; 10];
    stderr.write_all(b"# stack high-water mark ")?;
    stderr.write_all(decimal(stack_high_water() as u32, &mut digits))?;
    stderr.write_all(b" bytes\n# the first sample took ")?;
    stderr.write_all(decimal(first_sample_ticks, &mut digits))?;
    stderr.write_all(b" SysTick ticks for ")?;
    stderr.write_all(decimal(sampler.steps as u32, &mut digits))?;
    stderr.write_all(b" steps\n")
}

/// `value` in decimal, in the tail of `digits` (no `core::fmt`).
fn decimal(mut value: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &digits[start..];
        }
    }
}

/// Bytes of stack ever used: cortex-m-rt's `paint-stack` fills
/// `_stack_end .. _stack_start` with `0xcccccccc` before `main`; the lowest
/// word that no longer holds it is the deepest the stack has reached.
#[allow(unsafe_code)]
fn stack_high_water() -> usize {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let mut p = bottom;
    // SAFETY: `bottom .. top` is RAM reserved for the stack by the linker
    // script; every word of it is readable, and reading one races with nothing
    // (single core, and the words below the stack pointer are unused).
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == 0xCCCC_CCCC {
        p += 4;
    }
    top - p
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
