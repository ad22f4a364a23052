"""DP-ready tf.data pipelines yielding (x, y, sample_weight) batches.

Poisson sampling is what the accounting assumes: at step t every record joins the batch independently with probability
q, decided by a stateless draw seeded by (seed, t), so a run can be resumed at its exact data position. Batches have
variable size; an empty draw yields one record with weight 0, so the step still releases pure noise.
"""
import secrets

import numpy as np
import tensorflow as tf


def new_seed() -> int:
    return secrets.randbits(62)


def poisson_batches(x: np.ndarray, y: np.ndarray, sampling_probability: float, seed: int = None,
                    start_step: int = 0) -> tf.data.Dataset:
    """An endless stream of Poisson-sampled batches, starting at step `start_step`."""
    seed = new_seed() if seed is None else int(seed)
    n = len(x)
    x, y = tf.constant(x), tf.constant(y)

    def sample(step):
        draws = tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(seed, tf.int64), step]))
        picked = tf.where(draws < sampling_probability)[:, 0]
        empty = tf.equal(tf.size(picked), 0)
        picked = tf.cond(empty, lambda: tf.zeros([1], tf.int64), lambda: picked)
        weights = tf.fill(tf.shape(picked), tf.where(empty, 0.0, 1.0))
        return tf.gather(x, picked), tf.gather(y, picked), weights

    return tf.data.Dataset.counter(start_step, dtype=tf.int64).map(sample).prefetch(2)


def shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = None) -> tf.data.Dataset:
    """An endless stream of fixed-size batches, reshuffled every pass; the last partial batch of a pass is dropped."""
    seed = new_seed() if seed is None else int(seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.map(lambda xb, yb: (xb, yb, tf.ones([batch_size]))).repeat().prefetch(2)


def private_batches(x, y, settings, seed=None, start_step=0) -> tf.data.Dataset:
    """The pipeline that matches `settings.sampling`."""
    if settings.sampling == "poisson":
        return poisson_batches(x, y, settings.sampling_probability, seed, start_step)
    return shuffled_batches(x, y, settings.batch_size, seed)
