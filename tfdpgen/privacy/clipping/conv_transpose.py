"""Conv2DTranspose: the adjoint of a convolution, so its kernel gradient pairs patches of the *output* gradient with
the layer's input (kernel layout [kh, kw, C_out, C_in])."""
import tensorflow as tf

from tfdpgen.privacy.clipping.norms import (as_positions, chunked_over_batch, outer_sum_squared_norms,
                                            sum_over_positions_squared, unfold)

LAYERS = (tf.keras.layers.Conv2DTranspose,)


def supports(layer, x):
    return type(layer) in LAYERS and layer.data_format == "channels_last" and layer.output_padding is None


def output_length(length, kernel, stride, dilation, padding):
    kernel = (kernel - 1) * dilation + 1
    return length * stride if padding == "same" else length * stride + max(kernel - stride, 0)


def forward(layer, x):
    shape = tf.shape(x)
    heights = [output_length(shape[axis], layer.kernel_size[i], layer.strides[i], layer.dilation_rate[i],
                             layer.padding) for i, axis in enumerate((1, 2))]
    z = tf.nn.conv2d_transpose(x, layer.kernel, tf.stack([shape[0], *heights, layer.filters]),
                               strides=[1, *layer.strides, 1], padding=layer.padding.upper(),
                               dilations=[1, *layer.dilation_rate, 1])
    if layer.use_bias:
        z = tf.nn.bias_add(z, layer.bias)
    return z, layer.activation(z), x


def output_gradient_patches(layer, g):
    return as_positions(unfold(g, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding.upper()))


def squared_norms(layer, x, g):
    norms = chunked_over_batch(
        lambda xs, gs: outer_sum_squared_norms(output_gradient_patches(layer, gs), as_positions(xs)), [x, g])
    return norms + sum_over_positions_squared(g) if layer.use_bias else norms


def weighted_squared_norms(layer, x, g, weights):
    """The kernel's gradient pairs output-gradient patches, in the kernel's (kh, kw, C_out) order, with the input."""
    def kernel_ordered(gs):
        return as_positions(tf.image.extract_patches(gs, [1, *layer.kernel_size, 1], [1, *layer.strides, 1],
                                                     [1, *layer.dilation_rate, 1], layer.padding.upper()))

    kernel_weight = tf.reshape(weights[0], [-1, tf.shape(weights[0])[-1]])
    norms = chunked_over_batch(lambda xs, gs: outer_sum_squared_norms(kernel_ordered(gs), as_positions(xs),
                                                                      kernel_weight), [x, g])
    return norms + sum_over_positions_squared(g, weights[1]) if layer.use_bias else norms
