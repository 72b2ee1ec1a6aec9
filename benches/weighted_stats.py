#!/usr/bin/env python3
"""Raw and self-normalised importance-weighted statistics of `diffctl sample`
CSV output (columns x0..x{d-1}, log_w = -R_disc): E|x|^2, E|x|_1 and, with
--pairs, the share of x_{2i} > 0 in every pair i (manywell32's wells; truth
0.8443071 each), the number of sign patterns (modes) seen and the mean
number of wells with x_{2i} <= 0. Standard library only.

    diffctl sample out/manywell32.dcw --n 100000 --format csv -o s.csv
    python3 benches/weighted_stats.py s.csv --pairs
"""
import csv
import math
import sys


def main():
    path, pairs = sys.argv[1], "--pairs" in sys.argv[2:]
    with open(path, newline="") as f:
        rows = csv.reader(f)
        header = next(rows)
        if header[-1] != "log_w":
            sys.exit("no log_w column: sample with a target")
        d = len(header) - 1
        xs, lw = [], []
        for r in rows:
            xs.append([float(v) for v in r[:d]])
            lw.append(float(r[d]))
    n, top = len(xs), max(lw)
    w = [math.exp(v - top) for v in lw]
    total = sum(w)
    w = [v / total for v in w]

    def both(f):
        vals = [f(x) for x in xs]
        return sum(vals) / n, sum(a * b for a, b in zip(w, vals))

    print(f"samples {n}, d = {d}, ESS {1.0 / (n * sum(v * v for v in w)):.4f}")
    print("statistic        raw        weighted")
    for name, f in [
        ("E|x|^2", lambda x: sum(v * v for v in x)),
        ("E|x|_1", lambda x: sum(abs(v) for v in x)),
    ]:
        raw, wt = both(f)
        print(f"{name:<16} {raw:<10.4f} {wt:.4f}")
    if pairs:
        shares = [both(lambda x, i=i: float(x[2 * i] > 0.0)) for i in range(d // 2)]
        for i, (raw, wt) in enumerate(shares):
            print(f"well {i:<2} x1 > 0   {raw:<10.4f} {wt:.4f}")
        worst_raw = max(abs(r - 0.8443071) for r, _ in shares)
        worst_wt = max(abs(v - 0.8443071) for _, v in shares)
        print(f"largest |share - 0.8443071|: raw {worst_raw:.4f}, weighted {worst_wt:.4f}")
        patterns = {tuple(x[2 * i] > 0.0 for i in range(d // 2)) for x in xs}
        raw, wt = both(lambda x: sum(x[2 * i] <= 0.0 for i in range(d // 2)))
        print(f"sign patterns (modes) seen: {len(patterns)} of {2 ** (d // 2)}")
        print(f"wells with x1 <= 0 per sample: raw {raw:.4f}, weighted {wt:.4f}, "
              f"truth {(d // 2) * (1 - 0.8443071):.4f}")


if __name__ == "__main__":
    main()
