// Node driver of the diffctl WASM module: prints samples of a weights file in
// the hex line format (runtime/src/hex.rs), like the host's
// `cargo run -p diffctl-runtime --example hex_samples -- WEIGHTS SEEDS N`.
//
//   node run.mjs MODULE.wasm WEIGHTS SEEDS N      (SEEDS comma-separated u64)
//
// Exit status 0 on success, 1 on any error (message on stderr).
import { readFileSync, writeSync } from "node:fs";

function fail(message) {
  process.stderr.write(`run.mjs: ${message}\n`);
  process.exit(1);
}

const [modulePath, weightsPath, seedList, countText] = process.argv.slice(2);
if (countText === undefined) {
  fail("usage: node run.mjs MODULE.wasm WEIGHTS SEEDS N");
}
const seeds = seedList.split(",").map((s) => {
  if (!/^\d+$/.test(s.trim())) fail(`bad seed ${JSON.stringify(s)}`);
  const v = BigInt(s.trim());
  if (v >= 1n << 64n) fail(`seed ${s} does not fit in u64`);
  return v;
});
if (!/^\d+$/.test(countText)) fail(`bad sample count ${JSON.stringify(countText)}`);
const count = Number(countText);

// No imports: the module is no_std and needs nothing from its host.
const { instance } = await WebAssembly.instantiate(readFileSync(modulePath), {});
const wasm = instance.exports;

const weights = readFileSync(weightsPath);
if (weights.length > wasm.input_capacity()) {
  fail(`${weightsPath}: ${weights.length} bytes, the module takes at most ${wasm.input_capacity()}`);
}
// The memory may grow during a call, so views are made after each call.
new Uint8Array(wasm.memory.buffer, wasm.input_ptr(), weights.length).set(weights);

const decoder = new TextDecoder("utf-8", { fatal: true });
for (const seed of seeds) {
  const code = wasm.sample(weights.length, seed, 0n, count);
  const text = decoder.decode(new Uint8Array(wasm.memory.buffer, wasm.output_ptr(), wasm.output_len()));
  if (code !== 0) fail(`${weightsPath}: ${text} (code ${code})`);
  writeSync(1, text);
}
