//! WASM module: draws samples of a weights file and writes them in the hex
//! line format of `diffctl_runtime::hex`, behind a minimal C ABI (no
//! wasm-bindgen, no generated JS). `run.mjs` is its Node driver.
//!
//! Protocol (all integers little endian, addresses are offsets into the
//! module's exported `memory`):
//!
//! 1. `input_ptr()` / `input_capacity()`: where to copy the weights file, and
//!    how many bytes fit.
//! 2. `sample(weights_len: u32, seed: u64, first: u64, n: u32) -> i32` decodes
//!    the file and draws samples `first .. first + n` under `seed` with the
//!    header's sampler and built-in target; it returns 0 and leaves the lines
//!    in the output buffer, or a negative code (-1 bad file or settings, -2
//!    output too small) and leaves an error message there instead.
//! 3. `output_ptr()` / `output_len()`: the output (UTF-8).
//!
//! Safety: the crate has no `unsafe` block. The buffers the host reads and
//! writes are arrays of `AtomicU8`, which are `Sync` statics with the layout
//! of `[u8]`, so no `static mut` is needed; the host touches them only
//! between calls. The one use of the `unsafe_code` lint is `#[no_mangle]`,
//! which exporting a symbol requires.

#![no_std]
#![deny(unsafe_code)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering::Relaxed};

use diffctl_runtime::hex::write_sample_line;
use diffctl_runtime::prelude::*;

/// Largest weights file (bytes).
const INPUT_CAPACITY: usize = 256 * 1024;
/// Output buffer (bytes): 100 lines of `d = 20` need about 22 KiB.
const OUTPUT_CAPACITY: usize = 1024 * 1024;
/// Largest state dimension.
const MAX_D: usize = 64;
/// Largest channel count.
const MAX_C: usize = 128;
/// Work buffer floats for the largest network these limits allow (the
/// sampler checks the actual need and refuses a file that does not fit).
const MAX_WORK: usize = NetworkShape {
    d: MAX_D as u32,
    channels: MAX_C as u32,
    layers: 2,
    score_term: true,
}
.sampler_work_len(BATCH);
/// Paths per lockstep batch: differs from the host's (all `n`) and the
/// firmware's (8), to exercise the promise that a sample does not depend on
/// its batch.
const BATCH: usize = 3;

static INPUT: [AtomicU8; INPUT_CAPACITY] = [const { AtomicU8::new(0) }; INPUT_CAPACITY];
static OUTPUT: [AtomicU8; OUTPUT_CAPACITY] = [const { AtomicU8::new(0) }; OUTPUT_CAPACITY];
static OUTPUT_LEN: AtomicU32 = AtomicU32::new(0);

/// Address of the input buffer in linear memory.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn input_ptr() -> *const u8 {
    INPUT.as_ptr().cast()
}

/// Bytes the input buffer holds.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn input_capacity() -> u32 {
    INPUT_CAPACITY as u32
}

/// Address of the output buffer in linear memory.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn output_ptr() -> *const u8 {
    OUTPUT.as_ptr().cast()
}

/// Bytes of output the last [`sample`] call wrote.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn output_len() -> u32 {
    OUTPUT_LEN.load(Relaxed)
}

/// Appends to [`OUTPUT`].
struct Output {
    len: usize,
}

impl Write for Output {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slots = OUTPUT.get(self.len..end).ok_or(fmt::Error)?;
        for (slot, &b) in slots.iter().zip(s.as_bytes()) {
            slot.store(b, Relaxed);
        }
        self.len = end;
        Ok(())
    }
}

enum Failure {
    /// The file or the settings are unusable (message in the output).
    Invalid,
    /// The output buffer is full.
    OutputFull,
}

/// Draws samples `first .. first + n` under `seed` from the weights file in
/// the first `weights_len` bytes of the input buffer; see the crate docs.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn sample(weights_len: u32, seed: u64, first: u64, n: u32) -> i32 {
    let mut out = Output { len: 0 };
    let code = match run(&mut out, weights_len as usize, seed, first, n as u64) {
        Ok(()) => 0,
        Err(Failure::Invalid) => -1,
        Err(Failure::OutputFull) => {
            out.len = 0;
            let _ = out.write_str("output buffer too small");
            -2
        }
    };
    OUTPUT_LEN.store(out.len as u32, Relaxed);
    code
}

/// Replaces the output with `what: e`.
fn invalid(out: &mut Output, what: &str, e: &dyn fmt::Display) -> Failure {
    out.len = 0;
    let _ = write!(out, "{what}: {e}");
    Failure::Invalid
}

fn run(out: &mut Output, len: usize, seed: u64, first: u64, n: u64) -> Result<(), Failure> {
    if len > INPUT_CAPACITY {
        return Err(invalid(
            out,
            "weights",
            &"file larger than the input buffer",
        ));
    }
    let mut bytes = [0u8; INPUT_CAPACITY];
    for (b, slot) in bytes[..len].iter_mut().zip(&INPUT) {
        *b = slot.load(Relaxed);
    }
    let model = Model::parse(&bytes[..len]).map_err(|e| invalid(out, "weights", &e))?;
    // The network reads the parameters from `bytes` in place.
    let sampler = model.sampler().map_err(|e| invalid(out, "sampler", &e))?;
    let d = model.header.shape.d as usize;
    if d > MAX_D {
        return Err(invalid(out, "weights", &"state dimension above MAX_D"));
    }
    let mut work = [0.0f32; MAX_WORK];
    let mut xs = [0.0f32; BATCH * MAX_D];
    let mut paths: [PathState; BATCH] = Default::default();
    let end = first
        .checked_add(n)
        .ok_or_else(|| invalid(out, "range", &"index overflow"))?;
    let mut index = first;
    while index < end {
        let b = BATCH.min((end - index) as usize);
        sampler
            .sample(seed, index, &mut xs[..b * d], &mut paths[..b], &mut work)
            .map_err(|e| invalid(out, "sampling", &e))?;
        for (i, x) in xs[..b * d].chunks_exact(d).enumerate() {
            write_sample_line(out, seed, index + i as u64, x).map_err(|_| Failure::OutputFull)?;
        }
        index += b as u64;
    }
    Ok(())
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}
