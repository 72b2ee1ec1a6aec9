//! Cortex-M4F firmware: samples the device-check fixtures and prints them over
//! semihosting in the hex line format of `diffctl_runtime::hex`, so that
//! `.ci/device-check.sh` can compare them byte for byte with the host.
//!
//! For every fixture (in [`FIXTURES`] order) and every seed of [`SEEDS`], it
//! draws samples `0..N` in batches of [`BATCH`] and writes one line per sample
//! to the host's stdout. Measurements (decode and sampling time, stack
//! high-water mark) go to the host's stderr. Exit status 0 on success, 1 on
//! any error or panic.
//!
//! Memory: no heap, no `static mut` and no parameter buffer: the network
//! reads its parameters from the embedded files in flash (`Model::sampler`).
//! The work buffer, the batch's states and the line buffer are locals of
//! [`run`], on the stack (which memory.x lets grow over all RAM above
//! `.bss`), sized at compile time from the embedded files ([`MAX_D`],
//! [`MAX_WORK`]). The only `unsafe` is the read of the painted stack region
//! in [`stack_high_water`].

#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hio;
use diffctl_runtime::hex::{write_sample_line, LineBuf};
use diffctl_runtime::prelude::*;

/// The weights files, embedded in flash.
const FIXTURES: [(&str, &[u8]); 6] = [
    ("gmm_f32", include_bytes!("../../fixtures/gmm_f32.dcw")),
    ("gmm_f16", include_bytes!("../../fixtures/gmm_f16.dcw")),
    ("dw20_f32", include_bytes!("../../fixtures/dw20_f32.dcw")),
    ("dw20_f16", include_bytes!("../../fixtures/dw20_f16.dcw")),
    (
        "pis_gmm_f32",
        include_bytes!("../../fixtures/pis_gmm_f32.dcw"),
    ),
    (
        "dds_gmm_f32",
        include_bytes!("../../fixtures/dds_gmm_f32.dcw"),
    ),
];
/// Seeds, in order (`.ci/device-check.sh` passes the same list to the host).
const SEEDS: [u64; 3] = [0, 1, 18_446_744_073_709_551_615];
/// Samples per seed: indices `0..N`; on a core without FPU (the
/// `thumbv6m-none-eabi` build, Cortex-M0+) the first 10 only: software
/// floating point under QEMU is about 30x slower, and the check must stay fast.
const N: u64 = if cfg!(target_abi = "eabihf") { 100 } else { 10 };
/// Paths per lockstep batch. It does not divide `N`, and differs from the
/// host's (all `N`) and the WASM module's, which exercises the runtime's
/// promise that a sample does not depend on its batch.
const BATCH: usize = 8;
/// Largest state dimension `d` of the embedded files (read at compile time).
const MAX_D: usize = max_over_fixtures(Need::D);
/// Work buffer floats: the largest `sampler_work_len(BATCH)` of the embedded
/// files (705 for dw20: C = 32, d = 20).
const MAX_WORK: usize = max_over_fixtures(Need::Work);
/// Largest step count whose time branch the firmware tabulates (the
/// fixtures' K = 50), and the table's floats ([`NetworkShape::time_table_len`]).
const TABLE_STEPS: usize = 50;
const MAX_TABLE: usize = max_over_fixtures(Need::Table);

/// What [`max_over_fixtures`] takes the largest of.
enum Need {
    D,
    Work,
    Table,
}

/// The largest `d` (or, `work`, `sampler_work_len(BATCH)`) over the
/// embedded files' network shapes.
const fn max_over_fixtures(what: Need) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < FIXTURES.len() {
        let Some(shape) = shape_of(FIXTURES[i].1) else {
            panic!("an embedded fixture is not a weights file");
        };
        let n = match what {
            Need::D => shape.d as usize,
            Need::Work => shape.sampler_work_len(BATCH),
            Need::Table => shape.time_table_len(TABLE_STEPS),
        };
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
}

/// SysTick wrap-arounds since [`Clock::start`].
static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // A load and a store, not `fetch_add`: ARMv6-M (Cortex-M0+) has no
    // atomic read-modify-write, and this handler is the only writer.
    SYSTICK_WRAPS.store(SYSTICK_WRAPS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// A 64-bit tick counter on SysTick (processor clock, 24-bit down counter).
/// Under QEMU, SysTick runs on the board's 25 MHz clock in virtual time; with
/// `-icount shift=0` (one instruction = 1 ns) a tick is 40 instructions.
struct Clock {
    _syst: SYST,
}

const RELOAD: u32 = 0x00FF_FFFF;

impl Clock {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        // The counter holds 0 until its first reload, which counts as no wrap.
        while SYST::get_current() == 0 {}
        Clock { _syst: syst }
    }

    /// Ticks since [`Clock::start`].
    fn now(&self) -> u64 {
        loop {
            let wraps = SYSTICK_WRAPS.load(Ordering::SeqCst);
            let current = SYST::get_current();
            // Retry if the counter wrapped around the reads (counted or pending).
            if SYSTICK_WRAPS.load(Ordering::SeqCst) == wraps && !SCB::is_pendst_pending() {
                return wraps as u64 * (RELOAD as u64 + 1) + (RELOAD - current) as u64;
            }
        }
    }
}

/// Prints `what: error` to the host's stderr and gives the failure marker.
fn fail(what: &str, error: impl fmt::Display) -> Failure {
    if let Ok(mut stderr) = hio::hstderr() {
        let _ = writeln!(stderr, "cortex-m: {what}: {error}");
    }
    Failure
}

struct Failure;

#[entry]
fn main() -> ! {
    let status = match run() {
        Ok(()) => EXIT_SUCCESS,
        Err(Failure) => EXIT_FAILURE,
    };
    debug::exit(status);
    #[allow(clippy::empty_loop)]
    loop {}
}

fn run() -> Result<(), Failure> {
    let peripherals = cortex_m::Peripherals::take().ok_or(Failure)?;
    let clock = Clock::start(peripherals.SYST);
    let mut stdout = hio::hstdout().map_err(|()| fail("semihosting", "no stdout"))?;
    let mut stderr = hio::hstderr().map_err(|()| fail("semihosting", "no stderr"))?;

    // Calibration of ticks against a loop of known length.
    let t0 = clock.now();
    cortex_m::asm::delay(4_000_000);
    let delay_ticks = clock.now() - t0;
    let _ = writeln!(
        stderr,
        "# calibration: asm::delay(4000000) took {delay_ticks} ticks \
         (cortex-m 0.7.10: 4000001 iterations of subs+bne = 8000002 instructions)"
    );

    let mut work = [0.0f32; MAX_WORK];
    let mut xs = [0.0f32; BATCH * MAX_D];
    let mut table = [0.0f32; MAX_TABLE];
    let mut paths: [PathState; BATCH] = Default::default();
    // One output line, assembled before a single semihosting write.
    let mut line = LineBuf::<512>::new();

    for (name, bytes) in FIXTURES {
        let t0 = clock.now();
        let model = Model::parse(bytes).map_err(|e| fail(name, e))?;
        let header = model.header;
        // Reads the parameters from flash in place; checks them once.
        let sampler = model.sampler().map_err(|e| fail(name, e))?;
        let d = header.shape.d as usize;
        let decode_ticks = clock.now() - t0;

        let mut sample_ticks = 0;
        for seed in SEEDS {
            let mut first = 0u64;
            while first < N {
                let b = BATCH.min((N - first) as usize);
                let t0 = clock.now();
                sampler
                    .sample(seed, first, &mut xs[..b * d], &mut paths[..b], &mut work)
                    .map_err(|e| fail(name, e))?;
                sample_ticks += clock.now() - t0;
                for (i, x) in xs[..b * d].chunks_exact(d).enumerate() {
                    line.clear();
                    write_sample_line(&mut line, seed, first + i as u64, x)
                        .map_err(|e| fail(name, e))?;
                    stdout
                        .write_all(line.as_bytes())
                        .map_err(|()| fail("semihosting", "write failed"))?;
                }
                first += b as u64;
            }
        }
        // The same first batch without path costs (`R`, `R_disc`: f64, soft
        // float on this core), to show what they cost.
        let mut no_cost = sampler;
        no_cost.target = None;
        let t0 = clock.now();
        no_cost
            .sample(SEEDS[0], 0, &mut xs[..BATCH * d], &mut paths, &mut work)
            .map_err(|e| fail(name, e))?;
        let no_cost_ticks = clock.now() - t0;
        let sample_steps = SEEDS.len() as u64 * N * sampler.steps as u64;
        let batch1 = batch1_ticks(
            &clock, sampler, d, &mut xs, &mut paths, &mut work, &mut table,
        )
        .map_err(|e| fail(name, e))?;
        let _ = writeln!(
            stderr,
            "# {name}: {:?}, d {d} C {} K {} params {}: decode {decode_ticks} ticks; \
             sampling {sample_ticks} ticks / {sample_steps} sample-steps = {} ticks per \
             sample-step; without path costs {} ticks per sample-step; batch 1 with path \
             costs {} ticks per sample-step, with the time branch tabulated {}",
            header.sampler,
            header.shape.channels,
            sampler.steps,
            header.param_count(),
            sample_ticks / sample_steps,
            no_cost_ticks / (BATCH as u64 * sampler.steps as u64),
            batch1[0] / sampler.steps as u64,
            batch1[1] / sampler.steps as u64,
        );
    }
    let (used, size) = stack_high_water();
    let _ = writeln!(
        stderr,
        "# stack high-water mark {used} bytes (of {size}); no parameter buffer"
    );
    Ok(())
}

/// Ticks of one path (seed 0, index 0) at batch 1 with path costs: as
/// sampled above, and with the time branch tabulated once per grid time
/// (the table's computation not counted). The two samples must agree.
fn batch1_ticks<'a, T: Target + Copy>(
    clock: &Clock,
    mut sampler: Sampler<'a, NetworkControl<'a, T>, T>,
    d: usize,
    xs: &mut [f32],
    paths: &mut [PathState],
    work: &mut [f32],
    table: &'a mut [f32],
) -> Result<[u64; 2], &'static str> {
    let (x, path) = (&mut xs[..d], &mut paths[..1]);
    let t0 = clock.now();
    sampler.sample(0, 0, x, path, work).map_err(|_| "batch 1")?;
    let plain = clock.now() - t0;
    let want = (x[0].to_bits(), path[0].cost.r_disc.to_bits());
    if sampler.steps > TABLE_STEPS {
        return Ok([plain, 0]);
    }
    let table = sampler
        .control
        .tabulate(sampler.grid, sampler.steps, table)?;
    sampler.control.time_table = Some(table);
    let t0 = clock.now();
    sampler.sample(0, 0, x, path, work).map_err(|_| "batch 1")?;
    let tabulated = clock.now() - t0;
    if (x[0].to_bits(), path[0].cost.r_disc.to_bits()) != want {
        return Err("the tabulated time branch changed the sample");
    }
    Ok([plain, tabulated])
}

/// Bytes of stack ever used, and the stack's size: cortex-m-rt's `paint-stack`
/// fills `_stack_end .. _stack_start` with `0xcccccccc` before `main`; the
/// lowest word that no longer holds it is the deepest the stack has reached.
#[allow(unsafe_code)]
fn stack_high_water() -> (usize, usize) {
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
    (top - p, top - bottom)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut stderr) = hio::hstderr() {
        let _ = writeln!(stderr, "cortex-m: panic: {info}");
    }
    debug::exit(EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
