"""Conv1D and Conv2D (strides, padding, dilation; channels_last, one group): norms from unfolded input patches."""
import tensorflow as tf

from tfdpgen.privacy.clipping.norms import (as_positions, chunked_over_batch, outer_sum_squared_norms,
                                            sum_over_positions_squared, unfold)

LAYERS = (tf.keras.layers.Conv1D, tf.keras.layers.Conv2D)


def supports(layer, x):
    return (type(layer) in LAYERS and layer.data_format == "channels_last" and layer.groups == 1)


def forward(layer, x):
    if layer.padding == "causal":  # as Keras' Conv1D.call: pad on the left, then a VALID convolution
        x = tf.pad(x, [[0, 0], [(layer.kernel_size[0] - 1) * layer.dilation_rate[0], 0], [0, 0]])
    z = layer.convolution_op(x, layer.kernel)
    if layer.use_bias:
        z = tf.nn.bias_add(z, layer.bias)
    return z, layer.activation(z), x


def patches(layer, x, kernel_order=False):
    """Input patches [B, T, k*k*C_in]; causal inputs arrive padded by `forward`. Values inside a patch come in
    `unfold`'s order (any fixed order serves plain norms), or with `kernel_order` in the kernel's own (kh, kw, C_in),
    as weighted norms need."""
    padding = "VALID" if layer.padding == "causal" else layer.padding.upper()
    if isinstance(layer, tf.keras.layers.Conv1D):
        x = x[:, None]
        kernel, strides, rates = (1, *layer.kernel_size), (1, *layer.strides), (1, *layer.dilation_rate)
    else:
        kernel, strides, rates = layer.kernel_size, layer.strides, layer.dilation_rate
    if kernel_order:
        return as_positions(tf.image.extract_patches(x, [1, *kernel, 1], [1, *strides, 1], [1, *rates, 1], padding))
    return as_positions(unfold(x, kernel, strides, rates, padding))


def squared_norms(layer, x, g):
    norms = chunked_over_batch(lambda xs, gs: outer_sum_squared_norms(patches(layer, xs), as_positions(gs)), [x, g])
    return norms + sum_over_positions_squared(g) if layer.use_bias else norms


def weighted_squared_norms(layer, x, g, weights):
    kernel_weight = tf.reshape(weights[0], [-1, layer.filters])
    norms = chunked_over_batch(
        lambda xs, gs: outer_sum_squared_norms(patches(layer, xs, True), as_positions(gs), kernel_weight),
        [x, g])
    return norms + sum_over_positions_squared(g, weights[1]) if layer.use_bias else norms
