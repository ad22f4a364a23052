"""Dense: per-example gradient norms from the layer's input and the gradient of its pre-activation output."""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping.norms import (as_positions, chunked_over_batch, outer_sum_floats, outer_sum_squared_norms,
                                            per_example_size, sum_over_positions, sum_over_positions_squared)

LAYERS = (keras.layers.Dense,)


def supports(layer, x):
    return type(layer) in LAYERS


def forward(layer, x):
    z = tf.tensordot(x, layer.kernel, axes=[[x.shape.rank - 1], [0]]) if x.shape.rank > 2 else tf.matmul(x, layer.kernel)
    if layer.use_bias:
        z = tf.nn.bias_add(z, layer.bias)
    return z, layer.activation(z), x


def squared_norms(layer, x, g):
    if x.shape.rank == 2:
        norms = tf.reduce_sum(tf.square(x), 1) * tf.reduce_sum(tf.square(g), 1)
    else:
        a, b = as_positions(x), as_positions(g)
        norms = chunked_over_batch(outer_sum_squared_norms, [a, b], outer_sum_floats(a.shape, b.shape))
    return norms + sum_over_positions_squared(g) if layer.use_bias else norms


def weighted_squared_norms(layer, x, g, weights):
    """sum_jk w_jk G_i,jk^2 (+ the bias's) for one position per example (G_i = x_i g_i^T: sum_jk x_ij^2 w_jk g_ik^2),
    without forming G_i; None for sequences (then computed from `gradients`)."""
    if x.shape.rank != 2:
        return None
    norms = tf.reduce_sum(tf.matmul(tf.square(x), weights[0]) * tf.square(g), 1)
    return norms + tf.reduce_sum(tf.square(g) * weights[1], 1) if layer.use_bias else norms


def gradients(layer, x, g):
    """Per-example gradients [B, *variable shape] of the kernel (and bias)."""
    kernel = tf.einsum("btp,btq->bpq", as_positions(x), as_positions(g))
    return [kernel, sum_over_positions(g)] if layer.use_bias else [kernel]


def gradient_floats(layer, x, g):
    return layer.kernel.shape.num_elements() + (layer.units if layer.use_bias else 0)


def keeps_gradients(layer, x, g):
    """Whether per-example gradients take no more memory than the layer's input and output gradient already do."""
    return layer.kernel.shape.num_elements() <= per_example_size(x) + per_example_size(g)
