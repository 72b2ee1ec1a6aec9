"""The documented Dask example (examples/dask_sharded.py): 10^6 samples
drawn as shards on a local cluster's worker processes are bit-identical to
one process's draw, and training with the density evaluated on the cluster
gives the same weights as training with it evaluated here."""

import sys
from pathlib import Path

import numpy as np
import pytest

import diffctl

distributed = pytest.importorskip("dask.distributed")
cloudpickle = pytest.importorskip("cloudpickle")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import dask_sharded as example  # noqa: E402

# The workers cannot import the example: send its functions by value.
cloudpickle.register_pickle_by_value(example)

# A small network and few steps keep 2 x 10^6 samples to seconds.
SMALL = dict(channels=16, steps=20)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_training_on_the_cluster_is_training_here(client):
    on_cluster = example.train_on_cluster(client, iterations=20, **SMALL)
    here = diffctl.train(
        example.mixture_value_and_grad, dim=2, iterations=20, batch=256, seed=0,
        threads=1, eval_every=0, eval_samples=256, progress=False, **SMALL,
    )
    assert on_cluster.weights == here.weights


def test_a_million_samples_in_shards_are_one_run(client):
    model = diffctl.train(
        example.mixture_value_and_grad, dim=2, iterations=20, batch=256, seed=0,
        eval_every=0, eval_samples=256, progress=False, **SMALL,
    )
    n = 1_000_000
    x, log_w = example.sample_sharded(client, model, n, seed=7, shards=8)
    x1, log_w1 = model.sample(n, 7)
    assert x.shape == (n, 2)
    assert np.array_equal(x.view(np.uint32), x1.view(np.uint32))
    assert np.array_equal(log_w.view(np.uint64), log_w1.view(np.uint64))
