"""What a density written in Python costs against the same density built
in: `gmm` (9 equal modes at {-5, 0, 5}^2, variance 0.3, log Z = 0) trained
both ways with the reference setup (batch 512, K = 100), alternating, in
one run on one machine. Prints a Markdown table.

    pip install ./python && python python/benches/callback_overhead.py [iterations] [threads]

Per iteration = training wall time / iterations (periodic evaluations off,
a final evaluation of 64 paths). The Python version does its arithmetic in
float64 NumPy, so its weights differ from the built-in's in the last bits.
"""

import os
import platform
import subprocess
import sys
import time

import numpy as np

import diffctl

MEANS = np.array([[a, b] for a in (-5.0, 0.0, 5.0) for b in (-5.0, 0.0, 5.0)])
VAR = 0.3


def gmm(x):
    """(log rho, grad log rho) of the normalised 9-mode mixture."""
    diff = x[:, None, :] - MEANS[None]
    log_c = -0.5 * (diff**2).sum(-1) / VAR - np.log(2 * np.pi * VAR) - np.log(9.0)
    top = log_c.max(axis=1, keepdims=True)
    log_rho = top[:, 0] + np.log(np.exp(log_c - top).sum(axis=1))
    resp = np.exp(log_c - log_rho[:, None])
    return log_rho, -(resp[:, :, None] * diff).sum(axis=1) / VAR


def cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
        avx512 = "avx512f" in out
        return f"{model}, {os.cpu_count()} CPUs, AVX-512 {'yes' if avx512 else 'no'}"
    except Exception:
        return platform.processor() or "unknown CPU"


def main(iterations=100, threads=2, rounds=2):
    settings = dict(iterations=iterations, batch=512, steps=100, seed=0, threads=threads,
                    eval_every=0, eval_samples=64, progress=False)
    times = {"built-in gmm": [], "NumPy gmm": []}
    quality = {}
    for _ in range(rounds):
        for name, target in [("built-in gmm", "gmm"), ("NumPy gmm", gmm)]:
            kwargs = dict(settings) if isinstance(target, str) else dict(settings, dim=2)
            start = time.perf_counter()
            model = diffctl.train(target, **kwargs)
            times[name].append((time.perf_counter() - start) / iterations)
            quality[name] = diffctl.loads(model.weights, None if isinstance(target, str) else gmm)
    load = os.getloadavg()[0]
    print(f"CPU: {cpu()}; load average at the end {load:.1f}; {threads} threads, "
          f"{iterations} iterations, best of {rounds}\n")
    print("| density | ms per iteration | vs built-in |")
    print("|---|---|---|")
    base = min(times["built-in gmm"])
    for name, ts in times.items():
        print(f"| {name} | {1000 * min(ts):.1f} | {min(ts) / base:.2f}x |")
    for name, model in quality.items():
        est = model.estimate(20_000, seed=1)
        print(f"\n{name}: log Z_is {est['log_z_is']:+.4f} +- {est['log_z_is_se']:.4f} "
              f"(truth 0), ESS {est['ess']:.2f}", end="")
    print()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
