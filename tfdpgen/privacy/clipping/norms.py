"""Per-example squared norms of sums of outer products, without forming per-example gradients when that is cheaper.

A layer whose weight gradient for example i is G_i = sum_t a_it g_it^T (t over positions: sequence steps, image
patches) has ||G_i||_F^2 = sum_{t,s} (a_it . a_is)(g_it . g_is) (the "ghost norm", cost T^2 (p + q)), or can form
G_i directly (cost T p q). `outer_sum_squared_norms` takes whichever is cheaper (mixed ghost clipping, Bu et al. 2022).
"""
import tensorflow as tf


def outer_sum_squared_norms(a, g, weight=None):
    """||sum_t a[i, t] g[i, t]^T||_F^2 for a [B, T, p] and g [B, T, q]; returns [B]. With `weight` [p, q], the
    weighted sum of squares sum_pq weight_pq G_i,pq^2 (G_i is then always formed)."""
    positions, p, q = a.shape[1], a.shape[2], g.shape[2]
    if weight is not None:
        return tf.reduce_sum(tf.square(tf.einsum("btp,btq->bpq", a, g)) * weight, axis=[1, 2])
    if positions is None or positions * (p + q) <= p * q:
        a_gram = tf.einsum("btp,bsp->bts", a, a)
        g_gram = tf.einsum("btq,bsq->bts", g, g)
        return tf.reduce_sum(a_gram * g_gram, axis=[1, 2])
    per_example = tf.einsum("btp,btq->bpq", a, g)
    return tf.reduce_sum(tf.square(per_example), axis=[1, 2])


def chunked_over_batch(fn, tensors, chunk: int = 64):
    """fn(*tensors) -> [B], computed `chunk` examples at a time so that what fn materializes (input patches) stays
    bounded whatever the batch size. The batch is padded with zeros to a multiple of `chunk` and cut back."""
    batch = tf.shape(tensors[0])[0]
    padded = -(-batch // chunk) * chunk
    pieces = []
    for tensor in tensors:
        tensor = tf.pad(tensor, [[0, padded - batch]] + [[0, 0]] * (tensor.shape.rank - 1))
        pieces.append(tf.reshape(tensor, tf.concat([[padded // chunk, chunk], tf.shape(tensor)[1:]], 0)))
    norms = tf.map_fn(lambda parts: fn(*parts), tuple(pieces), fn_output_signature=tensors[-1].dtype)
    return tf.reshape(norms, [-1])[:batch]


ONE_HOT_PATCH_LIMIT = 64  # values per patch up to which a full one-hot convolution unfolds fastest (measured on CPU)


def unfold(x, kernel, strides, rates, padding):
    """Patches [B, H', W', kh*kw*C] of a [B, H, W, C] tensor, as a convolution with one-hot kernels sees them.

    The order of the values inside a patch differs between the two ways below; every norm computed from patches
    (sum_t a_t g_t^T in Frobenius norm, or a Gram matrix) is the same under any fixed reordering. A full one-hot
    convolution is fastest for small patches; beyond, a depthwise one (its cost grows with the patch size, not its
    square). Both are several times faster on CPU than tf.image.extract_patches."""
    channels = x.shape[-1]
    size = kernel[0] * kernel[1] * channels
    if size <= ONE_HOT_PATCH_LIMIT:
        one_hot = tf.reshape(tf.eye(size, dtype=x.dtype), (*kernel, channels, size))
        return tf.nn.conv2d(x, one_hot, strides=strides, padding=padding, dilations=rates)
    one_hot = tf.tile(tf.reshape(tf.eye(kernel[0] * kernel[1], dtype=x.dtype), (*kernel, 1, -1)), [1, 1, channels, 1])
    return tf.nn.depthwise_conv2d(x, one_hot, strides=[1, *strides, 1], padding=padding, dilations=rates)


def as_positions(tensor):
    """[B, ..., d] -> [B, T, d] with T the product of the middle axes (1 when there are none)."""
    shape = tf.shape(tensor)
    return tf.reshape(tensor, tf.stack([shape[0], -1, shape[-1]])) if tensor.shape.rank != 3 else tensor


def sum_over_positions_squared(g, weight=None):
    """||sum_t g[i, t]||^2 for g [B, ..., q] (a bias's per-example gradient), or its weighted sum of squares with
    `weight` [q]; returns [B]."""
    axes = list(range(1, g.shape.rank - 1))
    summed = tf.reduce_sum(g, axis=axes) if axes else g
    return tf.reduce_sum(tf.square(summed) * (1.0 if weight is None else weight), axis=-1)
