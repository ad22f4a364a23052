"""Conv1D and Conv2D (strides, padding, dilation; channels_last, one group): norms from unfolded input patches."""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping.norms import (as_positions, chunked_over_batch, outer_sum_floats, outer_sum_squared_norms,
                                            per_example_size, sum_over_positions, sum_over_positions_squared,
                                            to_kernel_order, unfold)

LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D)


def supports(layer, x):
    return (type(layer) in LAYERS and layer.data_format == "channels_last" and layer.groups == 1)


def forward(layer, x):
    if layer.padding == "causal":  # as Keras' Conv1D.call: pad on the left, then a VALID convolution
        x = tf.pad(x, [[0, 0], [(layer.kernel_size[0] - 1) * layer.dilation_rate[0], 0], [0, 0]])
    z = layer.convolution_op(x, layer.kernel)
    if layer.use_bias:
        z = tf.nn.bias_add(z, layer.bias)
    return z, layer.activation(z), x


def geometry(layer):
    """(kernel, strides, rates, padding) of the equivalent 2-D convolution; causal inputs arrive padded by `forward`."""
    padding = "VALID" if layer.padding == "causal" else layer.padding.upper()
    if isinstance(layer, keras.layers.Conv1D):
        return (1, *layer.kernel_size), (1, *layer.strides), (1, *layer.dilation_rate), padding
    return tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate), padding


def patches(layer, x):
    """Input patches [B, T, k*k*C_in], in `unfold`'s order."""
    return as_positions(unfold(x[:, None] if isinstance(layer, keras.layers.Conv1D) else x, *geometry(layer)))


def patch_floats(layer, g):
    return per_example_size(g) // layer.filters * layer.kernel.shape[:-1].num_elements()


def squared_norms(layer, x, g):
    def norms(xs, gs):
        return outer_sum_squared_norms(patches(layer, xs), as_positions(gs))

    positions = per_example_size(g) // layer.filters
    floats = patch_floats(layer, g) + outer_sum_floats((positions, layer.kernel.shape[:-1].num_elements()),
                                                       (positions, layer.filters))
    kernel_norms = chunked_over_batch(norms, [x, g], floats)
    return kernel_norms + sum_over_positions_squared(g) if layer.use_bias else kernel_norms


def gradients(layer, x, g):
    """Per-example gradients [B, *variable shape] of the kernel (and bias)."""
    products = tf.einsum("btp,btq->bpq", patches(layer, x), as_positions(g))
    kernel = tf.reshape(to_kernel_order(products, geometry(layer)[0], layer.kernel.shape[-2]), [-1, *layer.kernel.shape])
    return [kernel, sum_over_positions(g)] if layer.use_bias else [kernel]


def gradient_floats(layer, x, g):
    return patch_floats(layer, g) + 2 * layer.kernel.shape.num_elements()


def keeps_gradients(layer, x, g):
    """Whether per-example gradients take no more memory than the layer's output gradient already does (kept beyond
    that, with patches in depthwise order, they measured slower than a second weight-gradient pass)."""
    return layer.kernel.shape.num_elements() <= per_example_size(g)
