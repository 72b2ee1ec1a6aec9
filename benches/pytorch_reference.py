"""A PyTorch rendering of diffctl's reference training setup, timed side by
side with `diffctl train` in one run (issue 16). Not part of CI.

    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch numpy
    cargo build --release
    /tmp/venv-torch/bin/python benches/pytorch_reference.py [iterations] [threads] [batch K C]

`batch K C` (default 512 100 64, the reference setup) change both sides'
batch, step count and channels alike, e.g. `256 50 32` for the settings of
`benches/gmm-5s.toml` (time-to-accuracy: benches/README.md).

The setup (both sides): DIS on `gmm` (9 equal modes at {-5, 0, 5}^2,
variance 0.3), the VP SDE with the linear schedule (beta 0.1 to 10, T = 1),
X_0 ~ N(0, I), K = 100 Euler–Maruyama steps
`X += [beta_bar/2 X + sigma_bar u] h + sigma_bar sqrt(h) xi`, batch 512, the
reference network of MATH.md §5 (C = 64, L = 4: Fourier time features, a
time MLP, a state layer, two hidden layers, GELU, and the score term
`sigma_bar s(t) lerp(prior score, target score, t/T)` with the target score
clamped to 100), the log-variance loss on paths whose states carry no
gradient (the control does), Adam at lr 5e-3 with gradient-norm clip 1 and
an EMA of the parameters. It is written as a PyTorch user would write it
(one autograd graph over the 100 steps, float32), not tuned.

Per-iteration time: PyTorch, the median of `iterations` timed iterations
after 3 warm-up ones; diffctl, the difference of two `diffctl train` runs
(N and 2N iterations, periodic evaluations off) divided by N, so start-up
and the final evaluation cancel.
"""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
D, C, BATCH, K = 2, 64, 512, 100
BETA_MIN, BETA_MAX, T = 0.1, 10.0, 1.0
MEANS = torch.tensor([[a, b] for a in (-5.0, 0.0, 5.0) for b in (-5.0, 0.0, 5.0)])
VAR = 0.3


def gmm_log_density(x):
    diff = x[:, None, :] - MEANS[None]
    log_c = -0.5 * (diff**2).sum(-1) / VAR - math.log(2 * math.pi * VAR) - math.log(9.0)
    return torch.logsumexp(log_c, dim=1)


def gmm_score(x):
    diff = x[:, None, :] - MEANS[None]
    log_c = -0.5 * (diff**2).sum(-1) / VAR
    resp = torch.softmax(log_c, dim=1)
    return -(resp[:, :, None] * diff).sum(1) / VAR


def beta_bar(t):
    """beta(T - t) of the linear schedule: the generative process runs backwards."""
    s = T - t
    return BETA_MIN + (BETA_MAX - BETA_MIN) * s / T


class Control(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.freq = torch.linspace(0.1, 100.0, C)
        self.phase = torch.nn.Parameter(torch.randn(C))
        self.time1 = torch.nn.Linear(2 * C, C)
        self.time2 = torch.nn.Linear(C, C)
        self.state = torch.nn.Linear(D, C)
        self.hidden = torch.nn.ModuleList([torch.nn.Linear(C, C) for _ in range(2)])
        self.out = torch.nn.Linear(C, D)
        self.score1 = torch.nn.Linear(2 * C, C)
        self.score2 = torch.nn.Linear(C, 1)
        for p in (self.out.weight, self.out.bias, self.score2.weight):
            torch.nn.init.zeros_(p)
        torch.nn.init.ones_(self.score2.bias)

    def forward(self, x, t):
        tau = t / T
        arg = self.freq * tau + self.phase
        feat = torch.cat([torch.sin(arg), torch.cos(arg)])[None]
        e_t = self.time2(torch.nn.functional.gelu(self.time1(feat)))
        h = self.state(x) + e_t
        for layer in self.hidden:
            h = layer(torch.nn.functional.gelu(h))
        nn = self.out(torch.nn.functional.gelu(h))
        s_t = self.score2(torch.nn.functional.gelu(self.score1(feat)))
        lam = t / T
        target = gmm_score(x).clamp(-100.0, 100.0)
        mix = (1 - lam) * (-x) + lam * target
        return nn + math.sqrt(beta_bar(t)) * s_t * mix


def iteration(net, opt, ema, generator):
    h = T / K
    x = torch.randn(BATCH, D, generator=generator)
    log_p0 = -0.5 * (x**2).sum(1) - 0.5 * D * math.log(2 * math.pi)
    cost = torch.zeros(BATCH)
    for k in range(K):
        t = k * h
        sb = math.sqrt(beta_bar(t))
        u = net(x, t)
        xi = torch.randn(BATCH, D, generator=generator)
        # The path is fixed (drawn with u_bar = u.detach()); its cost under
        # control u is u.(u_bar - u/2) h + sqrt(h) u.xi: the ordinary cost at
        # u = u_bar, with derivative sqrt(h) xi there (trainer/src/losses.rs).
        u_bar = u.detach()
        cost = cost + (u * (u_bar - 0.5 * u)).sum(1) * h + math.sqrt(h) * (u * xi).sum(1)
        with torch.no_grad():
            x = x + (0.5 * sb * sb * x + sb * u) * h + sb * math.sqrt(h) * xi
    # R = log p(X_0) + sum_k (|u|^2 h / 2 + sqrt(h) u.xi) - log rho(X_K), up to
    # the Euler–Maruyama terminal constant -d/2 int beta_bar, which the
    # variance does not see (MATH.md §4).
    r = cost + log_p0 - gmm_log_density(x)
    loss = r.var() / D
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            e.mul_(0.99).add_(p, alpha=0.01)
    return loss.item()


def time_pytorch(iterations, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Control()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    ema = [p.detach().clone() for p in net.parameters()]
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        iteration(net, opt, ema, generator)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        iteration(net, opt, ema, generator)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def time_diffctl(iterations, threads):
    binary = ROOT / "target" / "release" / "diffctl"
    if not binary.exists():
        sys.exit(f"{binary} not found: run `cargo build --release` first")

    def run(n):
        args = [str(binary), "train", "--target", "gmm", "--integrator", "em", "--batch",
                str(BATCH), "--steps", str(K), "--channels", str(C), "--threads", str(threads),
                "--iterations",
                str(n), "--eval-every", "0", "--eval-samples", "64", "--explore", "1",
                "--out", "/tmp/pytorch_reference_diffctl.dcw"]
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        return time.perf_counter() - start

    n = max(iterations, 20)
    return (run(2 * n) - run(n)) / n


def cpu():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                  if l.startswith("Model name")), "unknown")
    return f"{model}, {os.cpu_count()} CPUs, AVX-512 {'yes' if 'avx512f' in out else 'no'}"


def main(iterations=20, threads=2):
    torch_s = time_pytorch(iterations, threads)
    ours = time_diffctl(iterations, threads)
    print(f"batch {BATCH}, K = {K}, C = {C}; CPU: {cpu()}; torch {torch.__version__}; {threads} threads; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| implementation | ms per iteration | speed-up |")
    print("|---|---|---|")
    print(f"| PyTorch rendering | {1000 * torch_s:.1f} | 1.0 |")
    print(f"| diffctl train | {1000 * ours:.1f} | {torch_s / ours:.1f} |")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    if len(args) > 2:
        BATCH, K, C = args[2:5]
    main(*args[:2])
