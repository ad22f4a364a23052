"""DP-ready tf.data pipelines yielding (x, y, sample_weight) batches, on one device or split over replicas.

Step t's global batch is chosen by a stateless draw keyed by (seed, t), so a resumed run continues at its exact data
position and every worker of a strategy computes the same global batch without talking to the others:
- poisson (what the accounting assumes): every record joins independently with probability q; sizes vary;
- shuffle: a fresh permutation per epoch, cut into fixed-size batches (the remainder of an epoch is dropped).
Under a strategy with R replicas, replica r takes records r, r+R, r+2R, ... of the global batch. A replica whose share
is empty gets one record with weight 0, so its step still adds its noise share and the batch shapes stay valid.
With `static_size`, every share is padded with weight-0 records to one fixed size (TPUs and XLA need static shapes);
for Poisson batches that size is the expected share plus ten standard deviations, and a larger draw fails loudly
rather than being cut (cutting would change the sampling the accounting assumes).
The seed decides which records each step used: keep it secret, like the noise key.
"""
import secrets

import numpy as np
import tensorflow as tf
import tf_keras as keras


def new_seed() -> int:
    return secrets.randbits(62)


def _global_batch_indices(settings, n, seed):
    if settings.sampling == "poisson":
        def indices(step):
            draws = tf.random.stateless_uniform([n], seed=tf.stack([tf.constant(seed, tf.int64), step]))
            return tf.where(draws < settings.sampling_probability)[:, 0]
    else:
        batch, per_epoch = settings.batch_size, settings.steps_per_epoch

        def indices(step):
            epoch, position = step // per_epoch, step % per_epoch
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
            return order[position * batch:(position + 1) * batch]
    return indices


def static_share_size(settings, num_replicas: int) -> int:
    if settings.sampling == "shuffle":
        return -(-settings.batch_size // num_replicas)
    mean = settings.dataset_size * settings.sampling_probability
    return int(np.ceil((mean + 10 * np.sqrt(mean * (1 - settings.sampling_probability)) + 1) / num_replicas))


def private_batches(x: np.ndarray, y: np.ndarray, settings, seed: int = None, start_step: int = 0,
                    replicas=(0,), num_replicas: int = 1, static_size: bool = False) -> tf.data.Dataset:
    """An endless stream, from step `start_step`, of this pipeline's replicas' shares of each step's global batch.

    `start_step` may be the model's `dp_steps` variable: the stream then starts wherever the model is when iteration
    begins, so a model restored inside `fit` (Keras' BackupAndRestore) continues at its own step and never reuses
    another step's batch. Elements come step by step, one per replica in `replicas`, in that order (what
    `strategy.distribute_datasets_from_function` hands to the local replicas in turn).
    """
    seed = new_seed() if seed is None else int(seed)
    n = len(x)
    x, y = tf.constant(x), tf.constant(y)
    global_indices = _global_batch_indices(settings, n, seed)
    size = static_share_size(settings, num_replicas) if static_size else None

    def replica_share(picked, replica):
        share = picked[replica::num_replicas]
        if size is None:
            empty = tf.equal(tf.size(share), 0)
            share = tf.cond(empty, lambda: tf.zeros([1], tf.int64), lambda: share)
            weights = tf.fill(tf.shape(share), tf.where(empty, 0.0, 1.0))
        else:
            count = tf.size(share)
            tf.debugging.assert_less_equal(count, size, message="a Poisson draw exceeded the static batch size")
            weights = tf.concat([tf.ones([count]), tf.zeros([size - count])], 0)
            share = tf.ensure_shape(tf.concat([share, tf.zeros([size - count], tf.int64)], 0), [size])
            weights = tf.ensure_shape(weights, [size])
        return tf.gather(x, share), tf.gather(y, share), weights

    def step_elements(step):
        picked = global_indices(step)
        return tf.data.Dataset.from_tensor_slices(tf.constant(list(replicas), tf.int64)).map(
            lambda replica: replica_share(picked, replica))

    if isinstance(start_step, tf.Variable):
        steps = tf.data.Dataset.from_tensors(0).map(lambda _: tf.cast(start_step.read_value(), tf.int64)).flat_map(
            lambda start: tf.data.Dataset.counter(start, dtype=tf.int64))
    else:
        steps = tf.data.Dataset.counter(start_step, dtype=tf.int64)
    return steps.flat_map(step_elements).prefetch(2)


def distributed_private_batches(x, y, settings, strategy, seed: int = None, start_step: int = 0,
                                static_size: bool = None):
    """`private_batches` for `model.fit` under `strategy`: each worker builds the shares of its own replicas.

    `static_size` defaults to True under TPUStrategy."""
    seed = new_seed() if seed is None else int(seed)
    if static_size is None:
        static_size = isinstance(strategy, tf.distribute.TPUStrategy)
    if strategy.num_replicas_in_sync == 1:
        return private_batches(x, y, settings, seed, start_step, static_size=static_size)

    def dataset_fn(context: tf.distribute.InputContext):
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return private_batches(x, y, settings, seed, start_step, range(first, first + local),
                               context.num_replicas_in_sync, static_size)

    return keras.utils.experimental.DatasetCreator(dataset_fn)
