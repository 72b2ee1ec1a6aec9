"""diffctl on a Dask cluster: sampling sharded over workers, and a density
that sends its batch to the cluster during training.

Sample i under seed s depends only on (s, i), so shards drawn anywhere, in
any order, concatenate to exactly one process's output. This script:

1. trains a small DIS sampler on a 2-d mixture whose log-density is
   evaluated on the cluster (each batch split into chunks, one task each:
   the pattern for a density that is expensive to evaluate);
2. draws 10^6 samples as shards on the cluster's workers;
3. checks that the concatenation is bit-identical to one process's draw.

Run it with `python examples/dask_sharded.py` (it starts a local cluster;
pass a scheduler address to use an existing one). `python/tests/
test_dask.py` runs the same functions.
"""

import sys

import numpy as np

import diffctl

# The target: log rho(x) = log sum_k w_k N(x; m_k, s^2 I), so Z = sum_k w_k.
MEANS = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
WEIGHTS = np.array([1.0, 2.0, 3.0])
STD = 0.8


def mixture_value_and_grad(x):
    """(log rho(x), grad log rho(x)) for rows x of shape (n, 2)."""
    z = (x[:, None, :] - MEANS[None]) / STD
    log_c = -0.5 * (z**2).sum(-1) - np.log(2 * np.pi * STD**2) + np.log(WEIGHTS)
    top = log_c.max(axis=1, keepdims=True)
    log_rho = top[:, 0] + np.log(np.exp(log_c - top).sum(axis=1))
    resp = np.exp(log_c - log_rho[:, None])
    grad = -(resp[:, :, None] * z / STD).sum(axis=1)
    return log_rho, grad


def cluster_density(client, chunks=4):
    """A `log_density` for diffctl.train that evaluates each batch on the
    cluster, `chunks` tasks per call, in `(value, grad)` form."""

    def log_density(x):
        parts = np.array_split(x, chunks)
        futures = client.map(mixture_value_and_grad, parts, pure=False)
        results = client.gather(futures)
        return (
            np.concatenate([v for v, _ in results]),
            np.concatenate([g for _, g in results]),
        )

    return log_density


def _draw_shard(weights, seed, first, n):
    """One worker's shard: samples first .. first + n under seed."""
    import diffctl  # on the worker

    model = diffctl.loads(weights, mixture_value_and_grad)
    x, log_w = model.sample(n, seed, first=first, threads=1)
    return x, log_w


def sample_sharded(client, model, n, seed, shards):
    """Draws samples 0 .. n under seed as `shards` tasks on the cluster and
    concatenates them in index order."""
    bounds = np.linspace(0, n, shards + 1).astype(int)
    weights = client.scatter(model.weights, broadcast=True)
    futures = [
        client.submit(_draw_shard, weights, seed, int(a), int(b - a), pure=False)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    parts = client.gather(futures)
    return np.concatenate([x for x, _ in parts]), np.concatenate([w for _, w in parts])


def train_on_cluster(client, iterations, **settings):
    """Trains with the density evaluated on the cluster. Every Python call
    is a round trip to the cluster, so this pays off only when one batch of
    the density costs more than that; the periodic evaluations are off and
    the final one small, to keep the number of calls down."""
    settings = dict(dict(steps=50), **settings)
    return diffctl.train(
        cluster_density(client), dim=2, iterations=iterations, batch=256,
        seed=0, threads=1, eval_every=0, eval_samples=256, progress=False,
        **settings,
    )


def main(address=None, n=1_000_000, iterations=100):
    from dask.distributed import Client, LocalCluster

    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True)
        address = cluster.scheduler_address
    with Client(address) as client:
        model = train_on_cluster(client, iterations)
        x, log_w = sample_sharded(client, model, n, seed=7, shards=8)
    if cluster is not None:
        cluster.close()
    # The same weights with the density evaluated in this process.
    local = diffctl.loads(model.weights, mixture_value_and_grad)
    est = local.estimate(20_000, seed=1)
    print(f"log Z_is {est['log_z_is']:.4f} +- {est['log_z_is_se']:.4f} "
          f"(truth {np.log(WEIGHTS.sum()):.4f}), ESS {est['ess']:.2f}")
    x1, log_w1 = local.sample(n, 7)
    same = np.array_equal(x.view(np.uint32), x1.view(np.uint32)) and np.array_equal(
        log_w.view(np.uint64), log_w1.view(np.uint64))
    print(f"{n} samples in 8 shards on the cluster: bit-identical to one process: {same}")
    return same


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1] if len(sys.argv) > 1 else None) else 1)
