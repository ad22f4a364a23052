"""Conv2DTranspose: the adjoint of a convolution, so its kernel gradient pairs patches of the *output* gradient with
the layer's input (kernel layout [kh, kw, C_out, C_in])."""
import tensorflow as tf
import tf_keras as keras

from tfdpgen.privacy.clipping.norms import (as_positions, chunked_over_batch, outer_sum_floats, outer_sum_squared_norms,
                                            per_example_size, sum_over_positions, sum_over_positions_squared,
                                            to_kernel_order, unfold)

LAYERS = (keras.layers.Conv2DTranspose,)


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
    """Patches [B, T_in, kh*kw*C_out] of the output gradient, one per input position, in `unfold`'s order."""
    return as_positions(unfold(g, layer.kernel_size, layer.strides, layer.dilation_rate, layer.padding.upper()))


def patch_floats(layer, x):
    return per_example_size(x) // x.shape[-1] * layer.kernel.shape[:-1].num_elements()


def squared_norms(layer, x, g):
    def norms(xs, gs):
        return outer_sum_squared_norms(output_gradient_patches(layer, gs), as_positions(xs))

    positions = per_example_size(x) // x.shape[-1]
    floats = patch_floats(layer, x) + outer_sum_floats((positions, layer.kernel.shape[:-1].num_elements()),
                                                       (positions, x.shape[-1]))
    kernel_norms = chunked_over_batch(norms, [x, g], floats)
    return kernel_norms + sum_over_positions_squared(g) if layer.use_bias else kernel_norms


def gradients(layer, x, g):
    """Per-example gradients [B, *variable shape] of the kernel (and bias)."""
    products = tf.einsum("btp,btq->bpq", output_gradient_patches(layer, g), as_positions(x))
    kernel = to_kernel_order(products, layer.kernel_size, layer.filters)
    return [kernel, sum_over_positions(g)] if layer.use_bias else [kernel]


def gradient_floats(layer, x, g):
    return patch_floats(layer, x) + 2 * layer.kernel.shape.num_elements()


def keeps_gradients(layer, x, g):
    """Whether per-example gradients take no more memory than the layer's input and output gradient already do."""
    return layer.kernel.shape.num_elements() <= per_example_size(x) + per_example_size(g)
