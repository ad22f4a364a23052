"""Dense: per-example gradient norms from the layer's input and the gradient of its pre-activation output."""
import tensorflow as tf

from tfdpgen.privacy.clipping.norms import as_positions, outer_sum_squared_norms, sum_over_positions_squared

LAYERS = (tf.keras.layers.Dense,)


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
        norms = outer_sum_squared_norms(as_positions(x), as_positions(g))
    return norms + sum_over_positions_squared(g) if layer.use_bias else norms


def weighted_squared_norms(layer, x, g, weights):
    """sum_jk w_jk G_i,jk^2 (+ the bias's), with `weights` aligned with the layer's trainable variables."""
    if x.shape.rank == 2:  # G_i = x_i g_i^T: sum_jk x_ij^2 w_jk g_ik^2
        norms = tf.reduce_sum(tf.matmul(tf.square(x), weights[0]) * tf.square(g), 1)
    else:
        norms = outer_sum_squared_norms(as_positions(x), as_positions(g), weights[0])
    return norms + sum_over_positions_squared(g, weights[1]) if layer.use_bias else norms
