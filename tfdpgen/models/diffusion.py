"""DP diffusion after DPDM (Dockhorn, Cao, Vahdat, Kreis, "Differentially Private Diffusion Models", TMLR 2023;
github nv-tlabs/DPDM): a denoiser trained with DP-SGD where each example's loss is the mean over K noise levels and
draws ("noise multiplicity"): one example, one clipped gradient, so K costs compute but no privacy, and it lowers the
variance the clipping and noise act on (the paper's ablation: K = 32 beats 8).

EDM's formulation (Karras, Aittala, Aila, Laine, NeurIPS 2022), as DPDM uses for epsilon >= 1: images x in [-1, 1],
noise levels ln(sigma) ~ N(p_mean -1.2, p_std 1.2), and the preconditioned denoiser
D(y; sigma) = c_skip y + c_out F(c_in y, c_noise) with sigma_data = 0.5, c_skip = sd^2 / (sigma^2 + sd^2),
c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4. With EDM's loss
weight the per-draw loss is ||F - (x - c_skip y) / c_out||^2, of unit scale at every noise level, so the clipping
treats all levels alike. The K draws of one example are the second axis of the network's input, [B, K, H, W, C], so
every layer sees them as positions and the fast engine's norms stay per example.

Sampling: EDM's second-order (Heun) sampler over `sample_steps` noise levels from sigma_max 80 to sigma_min 0.002
(rho 7), started at x = 80 z. With `num_classes` it is class-conditional as DPDM is: F reads the label's one-hot
beside the noise level's features (an embedding that shifts every residual block), dropped to all zeros ("no label")
for a tenth of the examples in training, so one network learns p(x | y)
and p(x); sampling uses classifier-free guidance (Ho and Salimans 2022), D = (1 + w) D(y | label) - w D(y), w =
`guidance`. Samples come from an exponential moving average of the denoiser's weights (DPDM's EMA, 0.999, with the
usual warm-up min(0.999, (1 + t) / (10 + t)) at step t): post-processing of the DP-trained weights, no privacy cost.
The network F is a small convolutional U-Net (models/unet.py), as DPDM's denoiser is convolutional: an MLP through a
few hundred hidden units cannot write the per-pixel correction a denoiser needs at low noise levels (on MNIST it drew
the right digits on salt-and-pepper speckle: train-on-synthetic accuracy 0.10 without DP). On images of 16 pixels a
side or more it works on 2x2 patches (`patch` 2, as DiT's patch 2) with `width` 32 at the first level: the same compute
a step as the full-resolution U-Net of width 16 (about 2 s at batch 128 x K 4 on 28x28, 2 CPU cores), but 0.42M
parameters instead of 0.11M, spent at 14x14, 7x7 and 4x4, where a digit's whole shape is in view (the full-resolution
net drew stroke fragments with no digit's shape on MNIST: 0.505 without DP). Smaller images keep patch 1 and width 16.
Sized for 2 CPU cores: DPDM's networks are far wider and its K 32; raise both on an accelerator.
"""
import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfdpgen.models.base import DPGenerativeModel, moving_average_decay, update_moving_average
from tfdpgen.models.unet import UNet

SIGMA_DATA, P_MEAN, P_STD = 0.5, -1.2, 1.2
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
EMA_DECAY = 0.999
PRETRAIN_EPOCHS = 150  # over the public images (pretrain), where none are given
NOISE_FEATURES = 32


def noise_features(c_noise, size=NOISE_FEATURES):
    """Sinusoidal features of the (continuous) noise conditioning c_noise [...]; returns [..., size]."""
    frequencies = tf.exp(tf.linspace(0.0, math.log(100.0), size // 2))
    angles = tf.cast(c_noise, tf.float32)[..., None] * frequencies
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1)


def pixels_times(scale, images):
    """scale [B, K] times images [B, K, H, W, C], each image by its own value."""
    return scale[..., None, None, None] * images


def scalings(sigma):
    """EDM's (c_skip, c_out) at noise level(s) sigma: D = c_skip y + c_out F."""
    return (SIGMA_DATA ** 2 / (sigma ** 2 + SIGMA_DATA ** 2),
            sigma * SIGMA_DATA / (sigma ** 2 + SIGMA_DATA ** 2) ** 0.5)


def sampling_sigmas(steps):
    """EDM's noise levels: sigma_max^(1/rho) to sigma_min^(1/rho) in equal steps, to the power rho, then 0."""
    ramp = np.linspace(0, 1, steps)
    sigmas = (SIGMA_MAX ** (1 / RHO) + ramp * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO))) ** RHO
    return np.append(sigmas, 0.0).astype(np.float32)


class DPDiffusion(DPGenerativeModel):
    metric_names = ("loss",)

    def __init__(self, image_shape=(8, 8, 1), multiplicity: int = 4, sample_steps: int = 30, width: int = None,
                 num_classes: int = None, guidance: float = 1.0, label_dropout: float = 0.1, patch: int = None,
                 seed: int = None, **kwargs):
        self.image_shape = tuple(int(size) for size in image_shape)
        size = int(np.prod(self.image_shape))
        super().__init__(latent_dim=size, seed=seed, **kwargs)
        if multiplicity < 1 or sample_steps < 2:
            raise ValueError("multiplicity must be >= 1 and sample_steps >= 2.")
        sides = self.image_shape[:2]
        if patch is None:  # 2x2 patches on images of 16 pixels a side or more
            patch = 2 if all(side >= 16 and side % 2 == 0 for side in sides) else 1
        width = 16 * patch if width is None else width
        if any(side % patch for side in sides):
            raise ValueError(f"patch {patch} must divide the image's height and width {sides}.")
        self.multiplicity, self.sample_steps, self.width, self.patch = multiplicity, sample_steps, width, patch
        self.num_classes, self.guidance, self.label_dropout = num_classes, guidance, label_dropout
        self.network = self.built_denoiser("denoiser")
        self.average = self.built_denoiser("averaged_denoiser")
        self.average.trainable = False
        self.restart_average()

    def restart_average(self):
        """The moving average starts again from the denoiser's weights (at construction, after public pretraining)."""
        for average, weight in zip(self.average.weights, self.network.weights):
            average.assign(weight)

    def built_denoiser(self, name):
        network = UNet(self.image_shape[-1], self.width, self.patch, name=name)
        network(tf.zeros([1, 1, *self.image_shape]), tf.zeros([1, 1, NOISE_FEATURES + (self.num_classes or 0)]))
        return network

    private_networks = property(lambda self: [self.network])
    generator_networks = property(lambda self: [self.average])

    def non_private_step(self):
        """The weights' moving average moves toward the weights this DP step gave."""
        update_moving_average(self.average, self.network, moving_average_decay(EMA_DECAY, self.dp_steps))
        return {}

    def network_output(self, noisy, sigma, labels=None, run=None, network=None):
        """F(c_in y, c_noise[, label]) for y [B, K, H, W, C] at noise levels sigma [B, K]; `labels` [B, C] (one-hot
        rows, all zeros for "no label") when conditional; `network`: the denoiser (default: the trained one) whose
        layers `run(layer, inputs)` calls (the recorder's in training)."""
        run = run or (lambda layer, inputs: layer(inputs))
        c_in = 1 / tf.sqrt(sigma ** 2 + SIGMA_DATA ** 2)
        conditioning = [noise_features(tf.math.log(sigma) / 4)]
        if self.num_classes is not None:
            conditioning.append(tf.broadcast_to(labels[:, None, :], tf.concat([tf.shape(sigma), [self.num_classes]], 0)))
        return (network or self.network).forward(pixels_times(c_in, noisy), tf.concat(conditioning, -1), run)

    def per_example_terms(self, x, y, training):
        return {"loss": self.denoising_losses(x, y, self.step_seed,
                                              lambda layer, inputs: self.run(layer, inputs, training))}

    def denoising_losses(self, x, y, seed, run=None):
        """Each example's loss, the mean over its K draws [B]; `seed(salt)`: the stateless seed of each draw's kind."""
        batch, k = tf.shape(x)[0], self.multiplicity
        clean = tf.cast(x, tf.float32)[:, None] * 2 - 1  # [B, 1, H, W, C] in [-1, 1]
        sigma = tf.exp(P_MEAN + P_STD * tf.random.stateless_normal([batch, k], seed=seed(1)))
        noisy = clean + pixels_times(sigma, tf.random.stateless_normal([batch, k, *self.image_shape], seed=seed(2),
                                                                        alg="philox"))
        labels = None
        if self.num_classes is not None:  # each record's label, dropped for a share of records (guidance)
            kept = tf.random.stateless_uniform([batch, 1], seed=seed(3)) >= self.label_dropout
            labels = self.one_hot(y) * tf.cast(kept, tf.float32)
        output = self.network_output(noisy, sigma, labels, run)
        c_skip, c_out = scalings(sigma)
        target = pixels_times(1 / c_out, clean - pixels_times(c_skip, noisy))
        return tf.reduce_mean(tf.reduce_sum(tf.square(output - target), [2, 3, 4]), -1)

    def pretrain(self, images, labels=None, epochs: int = PRETRAIN_EPOCHS, batch_size: int = 128,
                 learning_rate: float = 1e-3, seed: int = 0, verbose: int = 0):
        """Fit the denoiser to PUBLIC images without DP (plain Adam, the same loss), before DP training starts; the
        moving average starts from the result. This reads no private record and spends no privacy: the DP steps,
        their count and the accounting are untouched (as DP fine-tuning from public pretraining: Ghalebikesabi et
        al. 2023, "Differentially private diffusion models generate useful synthetic images"). Returns the mean
        loss of each epoch."""
        images = np.asarray(images, np.float32)
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"public images have shape {images.shape[1:]}, the model's are {self.image_shape}.")
        labels = np.zeros(len(images), np.int32) if labels is None else np.asarray(labels, np.int32)
        optimizer = keras.optimizers.Adam(learning_rate)
        variables = self.network.trainable_variables

        @tf.function
        def step(x, y, step_seed):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(self.denoising_losses(x, y, lambda salt: step_seed + salt))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        order, batch_size = np.random.default_rng(seed), min(batch_size, len(images))
        losses, count = [], 0
        for epoch in range(epochs):
            permutation, total = order.permutation(len(images)), []
            for start in range(0, len(images) - batch_size + 1, batch_size):  # whole batches only
                index = permutation[start:start + batch_size]
                count += 1
                total.append(float(step(images[index], labels[index], tf.constant([seed, count], tf.int64))))
            losses.append(float(np.mean(total)))
            if verbose:
                print(f"public pretraining epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
        self.restart_average()
        return losses

    def denoise(self, noisy, sigma, labels):
        """D(y; sigma) [B, 1, H, W, C] at one noise level (a scalar), guided when conditional."""
        sigmas = tf.fill(tf.shape(noisy)[:2], sigma)
        c_skip, c_out = scalings(sigma)
        if self.num_classes is None:
            output = self.network_output(noisy, sigmas, network=self.average)
        else:
            given = self.one_hot(labels)
            output = self.network_output(noisy, sigmas, given, network=self.average)
            if self.guidance:
                unlabelled = self.network_output(noisy, sigmas, tf.zeros_like(given), network=self.average)
                output = (1 + self.guidance) * output - self.guidance * unlabelled
        return c_skip * noisy + c_out * output

    # traced (a method's tf.function holds its model weakly): the sampler's loop runs about twice as fast as eagerly
    @tf.function(reduce_retracing=True)
    def generate(self, z, labels=None):
        """EDM's Heun sampler from x = sigma_max z; images in [0, 1]."""
        if self.num_classes is not None and labels is None:
            raise ValueError("a conditional diffusion model generates for given labels: pass labels (one per latent "
                             "vector).")
        sigmas = tf.constant(sampling_sigmas(self.sample_steps))

        def step(index, x):
            now, following = sigmas[index], sigmas[index + 1]
            slope = (x - self.denoise(x, now, labels)) / now
            moved = x + (following - now) * slope
            return index + 1, tf.cond(following > 0, lambda: x + (following - now) * 0.5 * (  # Heun's correction
                slope + (moved - self.denoise(moved, following, labels)) / following), lambda: moved)

        # a loop, not unrolled: the exported graph holds the denoiser a few times, not a few times per step
        x = SIGMA_MAX * tf.reshape(tf.cast(z, tf.float32), tf.concat([tf.shape(z)[:1], [1], self.image_shape], 0))
        _, x = tf.while_loop(lambda index, _: index < self.sample_steps, step, [tf.constant(0), x])
        return tf.clip_by_value((x[:, 0] + 1) / 2, 0, 1)

    def get_config(self):
        return {"image_shape": self.image_shape, "multiplicity": self.multiplicity, "sample_steps": self.sample_steps,
                "width": self.width, "num_classes": self.num_classes, "guidance": self.guidance, "patch": self.patch}
