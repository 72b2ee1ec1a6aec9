#!/usr/bin/env bash
# Device check: the same seeds give the same bits on the host (x86_64), on a
# Cortex-M4F (QEMU mps2-an386), a Cortex-M0+ build (thumbv6m, soft float), a
# RISC-V microcontroller (riscv32imac, QEMU virt), 64-bit ARM Linux (aarch64,
# QEMU user mode) and in WASM (Node), for every fixture in examples/fixtures/.
# See examples/README.md.
#
# Runs on a fresh Debian machine as root (installs QEMU, the aarch64 cross
# linker and Node if missing); expects the Rust targets thumbv7em-none-eabihf,
# thumbv6m-none-eabi, riscv32imac-unknown-none-elf, aarch64-unknown-linux-gnu
# and wasm32-unknown-unknown (.ci/run installs them; so does this script when
# rustup is there). Exits non-zero on any build failure or mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

# Must match SEEDS, N and FIXTURES in examples/cortex-m/src/main.rs (the
# firmware has them compiled in; any drift shows up as a mismatch below), and
# examples/fixtures/golden.sh, whose committed output (examples/fixtures/golden/)
# every program must reproduce.
seeds="0,1,18446744073709551615"
n=100
fixtures=(gmm_f32 gmm_f16 dw20_f32 dw20_f16 pis_gmm_f32 dds_gmm_f32)
qemu_timeout=300

step() { echo "-- device-check: $*"; }
die() { echo "device-check: FAILED: $*" >&2; exit 1; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! command -v qemu-system-arm >/dev/null; then
  step "installing qemu-system-arm"
  apt_install qemu-system-arm
fi
if ! command -v qemu-system-riscv32 >/dev/null; then
  step "installing qemu-system-misc (qemu-system-riscv32)"
  apt_install qemu-system-misc
fi
if ! command -v qemu-aarch64 >/dev/null; then
  step "installing qemu-user (qemu-aarch64)"
  apt_install qemu-user
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
  step "installing the aarch64 cross linker and C library"
  apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
fi
if ! command -v node >/dev/null; then
  step "installing nodejs"
  apt_install nodejs
fi
if command -v rustup >/dev/null; then
  rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi riscv32imac-unknown-none-elf \
    aarch64-unknown-linux-gnu wasm32-unknown-unknown >/dev/null 2>&1 || true
fi
qemu-system-arm -machine help | grep -q '^mps2-an386 ' || die "this QEMU has no mps2-an386 machine"

out="$root/target/device-check"
rm -rf "$out"
mkdir -p "$out"

step "format and lints of the example crates (outside the workspace)"
for crate in examples/cortex-m examples/cortex-m-minimal examples/riscv examples/wasm; do
  (cd "$crate" && cargo fmt --check && cargo clippy -q --release -- -D warnings)
done

step "building the host example, the firmware and the WASM modules (release)"
cargo build -q -p diffctl-runtime --release --example hex_samples
host_bin="$root/target/release/examples/hex_samples"
(cd examples/cortex-m && cargo build -q --release)
elf="$root/examples/cortex-m/target/thumbv7em-none-eabihf/release/diffctl-cortex-m"
(cd examples/cortex-m && cargo build -q --release --target thumbv6m-none-eabi)
elf_v6m="$root/examples/cortex-m/target/thumbv6m-none-eabi/release/diffctl-cortex-m"
(cd examples/cortex-m-minimal && cargo build -q --release && cargo build -q --release --target thumbv6m-none-eabi)
elf_min_v6m="$root/examples/cortex-m-minimal/target/thumbv6m-none-eabi/release/diffctl-cortex-m-minimal"
elf_min="$root/examples/cortex-m-minimal/target/thumbv7em-none-eabihf/release/diffctl-cortex-m-minimal"
(cd examples/riscv && cargo build -q --release)
elf_riscv="$root/examples/riscv/target/riscv32imac-unknown-none-elf/release/diffctl-riscv"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  cargo build -q -p diffctl-runtime --release --example hex_samples --target aarch64-unknown-linux-gnu
aarch64_bin="$root/target/aarch64-unknown-linux-gnu/release/examples/hex_samples"
(cd examples/wasm && cargo build -q --release)
wasm="$root/examples/wasm/target/wasm32-unknown-unknown/release/diffctl_wasm.wasm"
# The same module with 128-bit SIMD: the kernels promise the same bits.
(cd examples/wasm && RUSTFLAGS="-C target-feature=+simd128" cargo build -q --release --target-dir target/simd128)
wasm_simd="$root/examples/wasm/target/simd128/wasm32-unknown-unknown/release/diffctl_wasm.wasm"

step "host: ${#fixtures[@]} fixtures x seeds $seeds x $n samples"
for f in "${fixtures[@]}"; do
  timeout 120 "$host_bin" "examples/fixtures/$f.dcw" "$seeds" "$n" >"$out/host.$f.txt" \
    || die "host run of $f failed or timed out"
done

# -icount shift=0: one instruction = 1 ns of virtual time, so the tick counts
# the firmware prints (SysTick, 25 MHz: 40 instructions a tick) are exact
# instruction counts, the same on every run. The samples do not depend on it.
step "Cortex-M4F under QEMU (mps2-an386, semihosting, -icount shift=0)"
status=0
timeout "$qemu_timeout" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
  -semihosting-config enable=on,target=native -nographic -icount shift=0 -kernel "$elf" \
  >"$out/qemu.txt" 2>"$out/qemu.stderr" </dev/null || status=$?
sed 's/^/   qemu: /' "$out/qemu.stderr"
[ "$status" = 124 ] && die "QEMU did not finish within ${qemu_timeout}s"
[ "$status" = 0 ] || die "the firmware exited with status $status (stderr above)"
# The firmware prints the fixtures one after another: split its output.
lines_per_fixture=$(( $(tr -cd ',' <<<"$seeds" | wc -c) + 1 ))
lines_per_fixture=$(( lines_per_fixture * n ))
i=0
for f in "${fixtures[@]}"; do
  sed -n "$(( i * lines_per_fixture + 1 )),$(( (i + 1) * lines_per_fixture ))p" "$out/qemu.txt" >"$out/qemu.$f.txt"
  i=$(( i + 1 ))
done
total=$(wc -l <"$out/qemu.txt")
[ "$total" = $(( i * lines_per_fixture )) ] \
  || die "the firmware printed $total lines, expected $(( i * lines_per_fixture ))"

# Runs a firmware that prints the first $2 samples of every seed for every
# fixture, and splits its output: run_small NAME N QEMU-ARGS...
run_small() {
  local name="$1" small="$2"
  shift 2
  local status=0
  timeout "$qemu_timeout" "$@" >"$out/$name.txt" 2>"$out/$name.stderr" </dev/null || status=$?
  sed 's/^/   '"$name"': /' "$out/$name.stderr"
  [ "$status" = 124 ] && die "$name did not finish within ${qemu_timeout}s"
  [ "$status" = 0 ] || die "$name exited with status $status (stderr above)"
  local per=$(( ${#seed_list[@]} * small )) i=0 f
  for f in "${fixtures[@]}"; do
    sed -n "$(( i * per + 1 )),$(( (i + 1) * per ))p" "$out/$name.txt" >"$out/$name.$f.txt"
    i=$(( i + 1 ))
  done
  [ "$(wc -l <"$out/$name.txt")" = $(( i * per )) ] \
    || die "$name printed $(wc -l <"$out/$name.txt") lines, expected $(( i * per ))"
}
IFS=, read -r -a seed_list <<<"$seeds"
# Software floating point is slow under QEMU: these two print samples 0..10.
small_n=10

# ARMv6-M code on QEMU's Cortex-M3 board: QEMU's only Cortex-M0 board (microbit)
# has 256 KiB of flash, less than the six fixtures. ARMv6-M is a subset of
# ARMv7-M, and with no FPU in the target every float operation is the
# compiler-builtins software routine in the binary: the arithmetic of a
# Cortex-M0+.
step "Cortex-M0+ build (thumbv6m-none-eabi, soft float) under QEMU mps2-an385"
run_small v6m "$small_n" qemu-system-arm -machine mps2-an385 -cpu cortex-m3 \
  -semihosting-config enable=on,target=native -nographic -icount shift=0 -kernel "$elf_v6m"

step "RISC-V (riscv32imac, soft float) under QEMU virt"
run_small riscv "$small_n" qemu-system-riscv32 -machine virt -bios none -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf_riscv"

step "aarch64 Linux under QEMU user mode: ${#fixtures[@]} fixtures x seeds $seeds x $n samples"
for f in "${fixtures[@]}"; do
  timeout 300 qemu-aarch64 -L /usr/aarch64-linux-gnu "$aarch64_bin" "examples/fixtures/$f.dcw" "$seeds" "$n" \
    >"$out/aarch64.$f.txt" || die "aarch64 run of $f failed or timed out"
done

# The minimal firmware: gmm_f16 only, batch 1, samples 0..25 of each seed,
# raw records of 16 bytes (x_0, x_1 as f32, R_disc as f64, little endian) in
# 4 KiB of RAM (memory.x). od prints each record as four 32-bit words in hex:
# the first two are the coordinates' bits, as in the hex lines.
step "minimal firmware (Cortex-M4F, 4 KiB RAM) under QEMU"
min_n=25
status=0
timeout "$qemu_timeout" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 \
  -semihosting-config enable=on,target=native -nographic -icount shift=0 -kernel "$elf_min" \
  >"$out/minimal.bin" 2>"$out/minimal.stderr" </dev/null || status=$?
sed 's/^/   minimal: /' "$out/minimal.stderr"
[ "$status" = 0 ] || die "the minimal firmware exited with status $status"
od -An -v -t x4 -w16 "$out/minimal.bin" | awk -v n="$min_n" -v s="${seed_list[*]}" '
  BEGIN { split(s, seed, " ") }
  { i = NR - 1; print seed[int(i / n) + 1], i % n, $1, $2 }' >"$out/minimal.gmm_f16.txt"
[ "$(wc -l <"$out/minimal.gmm_f16.txt")" = $(( ${#seed_list[@]} * min_n )) ] \
  || die "the minimal firmware wrote $(wc -c <"$out/minimal.bin") bytes, expected $(( ${#seed_list[@]} * min_n * 16 ))"
# R_disc (high word) must be finite: exponent bits not all ones.
if od -An -v -t x4 -w16 "$out/minimal.bin" | awk '{ print $4 }' | grep -Eq '^[7f]ff'; then
  die "the minimal firmware gave a non-finite path cost"
fi
awk -v n="$min_n" '$2 < n' examples/fixtures/golden/gmm_f16.hex >"$out/golden-first.gmm_f16.txt"

# The same firmware built for ARMv6-M on QEMU's microbit, whose CPU is a
# Cortex-M0 (the flash, 256 KiB, holds this firmware but not the six
# fixtures): samples 0..5 of each seed, whole records, so R_disc (f64,
# soft float on both cores) is compared too.
step "minimal firmware, Cortex-M0 build, under QEMU microbit"
min_v6m_n=5
status=0
timeout "$qemu_timeout" qemu-system-arm -machine microbit \
  -semihosting-config enable=on,target=native -nographic -kernel "$elf_min_v6m" \
  >"$out/minimal-m0.bin" 2>"$out/minimal-m0.stderr" </dev/null || status=$?
sed 's/^/   minimal-m0: /' "$out/minimal-m0.stderr"
[ "$status" = 0 ] || die "the minimal firmware (Cortex-M0) exited with status $status"
records() { # records FILE N: "seed index word0 word1 word2 word3" per 16-byte record
  od -An -v -t x4 -w16 "$1" | awk -v n="$2" -v s="${seed_list[*]}" '
    BEGIN { split(s, seed, " ") }
    { i = NR - 1; print seed[int(i / n) + 1], i % n, $1, $2, $3, $4 }'
}
records "$out/minimal.bin" "$min_n" | awk -v n="$min_v6m_n" '$2 < n' >"$out/minimal-first.records.txt"
records "$out/minimal-m0.bin" "$min_v6m_n" >"$out/minimal-m0.records.txt"

step "WASM under Node $(node --version) (scalar and simd128 builds)"
for f in "${fixtures[@]}"; do
  timeout 120 node examples/wasm/run.mjs "$wasm" "examples/fixtures/$f.dcw" "$seeds" "$n" >"$out/wasm.$f.txt" \
    || die "WASM run of $f failed or timed out"
  timeout 120 node examples/wasm/run.mjs "$wasm_simd" "examples/fixtures/$f.dcw" "$seeds" "$n" >"$out/wasm-simd128.$f.txt" \
    || die "WASM simd128 run of $f failed or timed out"
done

# Prints where two outputs first differ: line (seed, index) and coordinate.
explain() {
  local a="$1" b="$2"
  local line
  line=$(cmp "$a" "$b" 2>/dev/null | sed -n 's/.* line \([0-9]*\).*/\1/p' || true)
  [ -n "$line" ] || { echo "   (one output is a prefix of the other: $(wc -l <"$a") vs $(wc -l <"$b") lines)"; return; }
  local la lb
  la=$(sed -n "${line}p" "$a")
  lb=$(sed -n "${line}p" "$b")
  echo "   first difference at line $line:"
  echo "     first:  $la"
  echo "     second: $lb"
  read -r -a fa <<<"$la"
  read -r -a fb <<<"$lb"
  local k
  for (( k = 2; k < ${#fa[@]} || k < ${#fb[@]}; k++ )); do
    if [ "${fa[$k]:-}" != "${fb[$k]:-}" ]; then
      echo "     seed ${fa[0]} sample ${fa[1]}: first differing coordinate x_$(( k - 2 ))" \
        "(${fa[$k]:-missing} vs ${fb[$k]:-missing})"
      return
    fi
  done
}

step "comparing"
failed=0
for f in "${fixtures[@]}"; do
  host="$out/host.$f.txt"
  lines=$(wc -l <"$host")
  [ "$lines" = "$lines_per_fixture" ] || die "host output for $f has $lines lines, expected $lines_per_fixture"
  # NaN and infinity have no guaranteed bit pattern across targets: a fixture
  # must not produce them (exponent field all ones).
  if grep -Eq ' [7f]f[89a-f][0-9a-f]{5}( |$)' "$host"; then
    die "fixture $f gives non-finite samples on the host; regenerate it (examples/fixtures/README.md)"
  fi
  # The committed golden lines: a change of samples must be deliberate.
  golden="examples/fixtures/golden/$f.hex"
  [ -f "$golden" ] || die "missing $golden (run examples/fixtures/golden.sh)"
  if cmp -s "$golden" "$host"; then
    echo "   $f: host == golden ($lines lines)"
  else
    echo "   $f: host DIFFERS from the committed $golden"
    explain "$golden" "$host"
    echo "   (deliberate? regenerate with: bash examples/fixtures/golden.sh)"
    failed=1
  fi
  for other in qemu aarch64 wasm wasm-simd128; do
    if cmp -s "$host" "$out/$other.$f.txt"; then
      echo "   $f: $other == host ($lines lines)"
    else
      echo "   $f: $other DIFFERS from host"
      explain "$host" "$out/$other.$f.txt"
      failed=1
    fi
  done
  awk -v n="$small_n" '$2 < n' "$host" >"$out/host-first.$f.txt"
  for other in v6m riscv; do
    if cmp -s "$out/host-first.$f.txt" "$out/$other.$f.txt"; then
      echo "   $f: $other == host (first $small_n of each seed)"
    else
      echo "   $f: $other DIFFERS from host"
      explain "$out/host-first.$f.txt" "$out/$other.$f.txt"
      failed=1
    fi
  done
done
if cmp -s "$out/golden-first.gmm_f16.txt" "$out/minimal.gmm_f16.txt"; then
  echo "   gmm_f16: minimal firmware == golden (first $min_n of each seed)"
else
  echo "   gmm_f16: minimal firmware DIFFERS from golden"
  explain "$out/golden-first.gmm_f16.txt" "$out/minimal.gmm_f16.txt"
  failed=1
fi
if cmp -s "$out/minimal-first.records.txt" "$out/minimal-m0.records.txt"; then
  echo "   gmm_f16: minimal Cortex-M0 == minimal Cortex-M4F (samples and R_disc, first $min_v6m_n of each seed)"
else
  echo "   gmm_f16: minimal Cortex-M0 DIFFERS from minimal Cortex-M4F"
  explain "$out/minimal-first.records.txt" "$out/minimal-m0.records.txt"
  failed=1
fi
[ "$failed" = 0 ] || die "device outputs differ from the host's (outputs in $out)"
echo "device-check: OK: host (x86_64), Cortex-M4F, minimal Cortex-M4F, Cortex-M0+ build, RISC-V (QEMU), aarch64 (QEMU user), WASM and WASM simd128 agree bit for bit with each other and with the golden files"
