#!/usr/bin/env bash
# Regenerates the single-run findings README quotes beside the Task 2 table
# (DIS vs DDS on dw20, and PIS without exploration on gmm): each is one
# `diffctl train` run with the Task 2 settings (batch 512, K = 100 by
# default, 1000 iterations, seed 0, 20 000 evaluation paths through the
# runtime) and one setting changed. Writes benches/results/findings.txt;
# about 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release --bin diffctl
diffctl=target/release/diffctl
out=benches/results/findings.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--iterations 1000 --batch 512 --seed 0 --threads 2 --eval-every 0
        --eval-samples 20000 --out "$tmp/m.dcw")

run() { # run LABEL ARGS...: one training run, its report's key lines
  local label="$1"
  shift
  echo "== $label: diffctl train $*"
  # A run that fails (a diverged training, say) is a finding too: print
  # its error line and go on with the next run.
  if "$diffctl" train "$@" "${common[@]}" >"$tmp/out" 2>"$tmp/err"; then
    grep -E '^(log Z_is|log Z_lb|ESS|E\|x\|\^2|modes) ' "$tmp/out"
  else
    echo "failed: $(tail -n 1 "$tmp/err")"
  fi
}

no_score="$tmp/no_score.toml"
printf 'score_term = false\n' > "$no_score"
{
  echo "# benches/findings.sh, $(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p')"
  run "DIS on dw20 (Task 2 setting)" --target dw20 --integrator exp
  run "DIS on dw20, no score term" --target dw20 --integrator exp --config "$no_score"
  run "DDS on dw20, no score term" --target dw20 --sampler dds --integrator exp --config "$no_score"
  run "DIS on dw20, score clip 10" --target dw20 --integrator exp --score-clip 10
  run "DIS on dw20, K = 200" --target dw20 --integrator exp --steps 200
  run "PIS on gmm, on-policy (--explore 1)" --target gmm --sampler pis --explore 1
  run "DIS on dw20, on-policy (--explore 1)" --target dw20 --integrator exp --explore 1
} | tee "$out"
