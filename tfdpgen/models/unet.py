"""A small convolutional U-Net denoiser, in the line of DDPM's and DPDM's (Ho et al. 2020; Dockhorn et al. TMLR 2023,
nv-tlabs/DPDM) but sized for a CPU: two resolutions below the input's, residual blocks whose middle is shifted by an
embedding of the noise level and label, skip connections by concatenation, nearest-neighbour upsampling.

Images come as [B, K, H, W, C] (K noise draws of one example) and every layer with variables is a Conv2D or a Dense
called once per pass through `run(layer, inputs)`, so the fast clipping engine computes per-example norms of all of
them (examples on the first axis, draws and pixels as positions). No normalization layers: BatchNorm mixes examples
(not DP), and the engine has no GroupNorm rule; the last convolution of every block starts at zero instead (DDPM's
`zero_module`), so each block starts as the identity.
"""
import tensorflow as tf
import tf_keras as keras

L = keras.layers


def to_patches(x, patch):
    """[..., H, W, C] -> [..., H / patch, W / patch, patch * patch * C] (space to depth on the last three axes)."""
    return on_images(x, lambda images: tf.nn.space_to_depth(images, patch))


def from_patches(x, patch):
    """The inverse of to_patches."""
    return on_images(x, lambda images: tf.nn.depth_to_space(images, patch))


def on_images(x, op):
    """op on [N, H, W, C] images, for x with any leading axes (merged into N, then restored)."""
    lead = tf.shape(x)[:-3]
    out = op(tf.reshape(x, tf.concat([[-1], tf.shape(x)[-3:]], 0)))
    return tf.reshape(out, tf.concat([lead, tf.shape(out)[1:]], 0))


def upsample(x, like):
    """Nearest-neighbour x2 on the two pixel axes before the channels, cropped to `like`'s height and width."""
    x = tf.repeat(tf.repeat(x, 2, axis=-3), 2, axis=-2)
    return x[..., :tf.shape(like)[-3], :tf.shape(like)[-2], :]


class ResidualBlock(L.Layer):
    """in_width channels in, `width` out (through a 1x1 convolution on the skip path where the two differ)."""

    def __init__(self, in_width, width, **kwargs):
        super().__init__(**kwargs)
        self.first = L.Conv2D(width, 3, padding="same")
        self.shift = L.Dense(width)
        self.second = L.Conv2D(width, 3, padding="same", kernel_initializer="zeros")
        self.skip = L.Conv2D(width, 1) if in_width != width else None

    def forward(self, x, embedding, run):
        h = run(self.first, tf.nn.swish(x))
        h += run(self.shift, embedding)[..., None, None, :]
        h = run(self.second, tf.nn.swish(h))
        return h + (run(self.skip, x) if self.skip is not None else x)


class UNet(L.Layer):
    """F(x, conditioning) -> [..., H, W, out_channels] for x [..., H, W, C] and conditioning [..., E] (the leading axes
    of both alike). `width` channels at the first resolution, twice that at half and quarter of it. With `patch` p > 1
    the network works on p x p patches (space to depth, as DiT's patch 2): the first resolution is the image's / p,
    so its compute goes to the coarse levels, whose receptive field spans the whole digit."""

    def __init__(self, out_channels, width=32, patch=1, **kwargs):
        super().__init__(**kwargs)
        self.out_channels, self.width, self.patch = out_channels, width, patch
        self.embed = L.Dense(4 * width, activation="swish")
        self.stem = L.Conv2D(width, 3, padding="same")
        self.down_blocks = [ResidualBlock(width, width), ResidualBlock(2 * width, 2 * width),
                            ResidualBlock(2 * width, 2 * width)]
        self.downsamplers = [L.Conv2D(2 * width, 3, strides=2, padding="same") for _ in range(2)]
        # the up blocks read the upsampled features beside the skip connection's
        self.up_blocks = [ResidualBlock(4 * width, 2 * width), ResidualBlock(3 * width, width)]
        self.head = L.Conv2D(out_channels * patch * patch, 3, padding="same")

    def forward(self, x, conditioning, run):
        """The pass with every layer called through `run(layer, inputs)` (the fast engine's recorder in training)."""
        embedding = run(self.embed, conditioning)
        h = run(self.stem, to_patches(x, self.patch) if self.patch > 1 else x)
        skips = []
        for block, downsampler in zip(self.down_blocks, self.downsamplers + [None]):
            h = block.forward(h, embedding, run)
            if downsampler is not None:
                skips.append(h)
                h = run(downsampler, h)
        for block, skip in zip(self.up_blocks, reversed(skips)):
            h = block.forward(tf.concat([upsample(h, skip), skip], -1), embedding, run)
        out = run(self.head, tf.nn.swish(h))
        return from_patches(out, self.patch) if self.patch > 1 else out

    def call(self, x, conditioning):
        return self.forward(x, conditioning, lambda layer, inputs: layer(inputs))
