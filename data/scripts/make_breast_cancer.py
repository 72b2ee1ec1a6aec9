#!/usr/bin/env python3
"""Write data/breast_cancer.csv from scikit-learn's bundled copy of the
Wisconsin Diagnostic Breast Cancer data (UCI, DOI 10.24432/C5DW2B).

Columns: the 30 features under sklearn's `feature_names` with spaces replaced
by underscores, in sklearn's order, then `target` (0 = malignant, 1 = benign).
Feature values are written as repr(float64) so they round-trip exactly.

Usage (from the repository root):
    python data/scripts/make_breast_cancer.py [out.csv]
"""
import os
import sys

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(os.path.join(here, "..", "breast_cancer.csv"))
    d = load_breast_cancer()
    X = np.asarray(d.data, dtype=np.float64)
    y = np.asarray(d.target)
    assert X.shape == (569, 30), X.shape
    assert set(np.unique(y)) == {0, 1}
    assert list(d.target_names) == ["malignant", "benign"]
    names = [str(n).replace(" ", "_") for n in d.feature_names]
    with open(out, "w", newline="\n") as f:
        f.write(",".join(names + ["target"]) + "\n")
        for row, t in zip(X, y):
            f.write(",".join(repr(float(v)) for v in row) + "," + str(int(t)) + "\n")
    # round-trip check
    back = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.array_equal(back[:, :30], X) and np.array_equal(back[:, 30], y)
    print(f"wrote {out}: {X.shape[0]} rows, {len(names)} features + target "
          f"(scikit-learn {sklearn.__version__}, benign = {int(y.sum())})")


if __name__ == "__main__":
    main()
