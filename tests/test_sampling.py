"""Poisson sampling: each record joins each batch independently with probability q."""
import numpy as np

from tfdpgen.data.sampling import poisson_batches, shuffled_batches


def take(ds, k):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(k)]


def test_poisson_batch_sizes_and_inclusion_frequencies():
    n, q, steps = 500, 0.1, 400
    x = np.arange(n, dtype="float32")[:, None]
    batches = take(poisson_batches(x, np.zeros(n, "int32"), q, seed=7), steps)
    sizes = np.array([len(b[0]) for b in batches])
    assert abs(sizes.mean() - n * q) < 4 * np.sqrt(n * q * (1 - q) / steps)
    assert abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.25  # binomial, not fixed-size
    counts = np.bincount(np.concatenate([b[0][:, 0].astype(int) for b in batches]), minlength=n)
    assert abs(counts.mean() / (q * steps) - 1) < 0.02
    assert abs(counts.var() / (steps * q * (1 - q)) - 1) < 0.2  # each record independently
    assert all(np.all(b[2] == 1) for b in batches)


def test_same_seed_same_batches_and_start_step_resumes_the_stream():
    x = np.arange(200, dtype="float32")[:, None]
    y = np.zeros(200, "int32")
    first = take(poisson_batches(x, y, 0.05, seed=3), 6)
    again = take(poisson_batches(x, y, 0.05, seed=3), 6)
    resumed = take(poisson_batches(x, y, 0.05, seed=3, start_step=4), 2)
    other = take(poisson_batches(x, y, 0.05, seed=4), 6)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first[4:], resumed))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_empty_draw_yields_one_zero_weight_record():
    x = np.ones((20, 1), "float32")
    batches = take(poisson_batches(x, np.zeros(20, "int32"), 1e-9, seed=0), 3)
    assert all(len(b[0]) == 1 and b[2][0] == 0.0 for b in batches)


def test_shuffled_batches_are_fixed_size_permutations():
    x = np.arange(100, dtype="float32")[:, None]
    batches = take(shuffled_batches(x, np.zeros(100, "int32"), 30, seed=0), 3)
    assert [len(b[0]) for b in batches] == [30, 30, 30]
    seen = np.concatenate([b[0][:, 0] for b in batches])
    assert len(np.unique(seen)) == 90
