"""Batch selection: Poisson (each record joins each batch independently with probability q) and shuffled batches,
on one device and split over replicas."""
import numpy as np

import tfdpgen
from tfdpgen.data.sampling import private_batches


def settings(n, batch, sampling="poisson"):
    return tfdpgen.PrivacySettings(dataset_size=n, batch_size=batch, epochs=1, noise_multiplier=1.0, sampling=sampling)


def take(ds, k):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(k)]


def records(batch):
    return batch[0][:, 0][batch[2] > 0].astype(int)


def test_poisson_batch_sizes_and_inclusion_frequencies():
    n, batch, steps = 500, 50, 400
    q = batch / n
    x = np.arange(n, dtype="float32")[:, None]
    batches = take(private_batches(x, np.zeros(n, "int32"), settings(n, batch), seed=7), steps)
    sizes = np.array([len(b[0]) for b in batches])
    assert abs(sizes.mean() - n * q) < 4 * np.sqrt(n * q * (1 - q) / steps)
    assert abs(sizes.var() / (n * q * (1 - q)) - 1) < 0.25  # binomial, not fixed-size
    counts = np.bincount(np.concatenate([records(b) for b in batches]), minlength=n)
    assert abs(counts.mean() / (q * steps) - 1) < 0.02
    assert abs(counts.var() / (steps * q * (1 - q)) - 1) < 0.2  # each record independently
    assert all(np.all(b[2] == 1) for b in batches)


def test_same_seed_same_batches_and_start_step_resumes_the_stream():
    x = np.arange(200, dtype="float32")[:, None]
    y = np.zeros(200, "int32")
    s = settings(200, 10)
    first = take(private_batches(x, y, s, seed=3), 6)
    again = take(private_batches(x, y, s, seed=3), 6)
    resumed = take(private_batches(x, y, s, seed=3, start_step=4), 2)
    other = take(private_batches(x, y, s, seed=4), 6)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first[4:], resumed))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_replica_shares_partition_the_global_batch_and_empty_shares_get_weight_zero():
    n, replicas, steps = 40, 4, 50
    x = np.arange(n, dtype="float32")[:, None]
    s = settings(n, 3)
    whole = take(private_batches(x, np.zeros(n, "int32"), s, seed=5), steps)
    split = take(private_batches(x, np.zeros(n, "int32"), s, seed=5, replicas=range(replicas),
                                 num_replicas=replicas), steps * replicas)
    empty_shares = 0
    for t in range(steps):
        shares = split[t * replicas:(t + 1) * replicas]
        assert sorted(np.concatenate([records(b) for b in shares])) == sorted(records(whole[t]))
        for share in shares:
            if share[2][0] == 0:
                assert len(share[0]) == 1
                empty_shares += 1
    assert empty_shares > 0
    worker_1 = take(private_batches(x, np.zeros(n, "int32"), s, seed=5, replicas=[2, 3], num_replicas=4), 2)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(worker_1, split[2:4]))


def test_shuffled_batches_are_fixed_size_and_cover_each_epoch_once():
    x = np.arange(100, dtype="float32")[:, None]
    s = settings(100, 30, "shuffle")
    batches = take(private_batches(x, np.zeros(100, "int32"), s, seed=0), 6)
    assert [len(b[0]) for b in batches] == [30] * 6
    first_epoch = np.concatenate([records(b) for b in batches[:3]])
    assert len(np.unique(first_epoch)) == 90
    assert not np.array_equal(batches[0][0], batches[3][0])  # reshuffled per epoch


def test_static_size_pads_every_share_with_zero_weights_and_keeps_the_sample():
    n, replicas = 400, 2
    x = np.arange(n, dtype="float32")[:, None]
    s = settings(n, 40)
    split = dict(replicas=range(replicas), num_replicas=replicas)
    dynamic = take(private_batches(x, np.zeros(n, "int32"), s, seed=9, **split), 20)
    static = private_batches(x, np.zeros(n, "int32"), s, seed=9, static_size=True, **split)
    assert static.element_spec[0].shape[0] is not None  # a static shape, for TPU / XLA
    for a, b in zip(dynamic, take(static, 20)):
        assert np.array_equal(records(a), records(b))
        assert b[2].sum() == (a[2] > 0).sum()
