"""DP diffusion after DPDM (Dockhorn, Cao, Vahdat, Kreis, TMLR 2023): a denoiser trained with DP-SGD where each
example's loss is the mean over K noise levels and draws ("noise multiplicity"): one example, one clipped gradient, so
K costs compute but no privacy, and it lowers the variance the clipping and noise act on.

Forward process: x_t = sqrt(a_t) x + sqrt(1 - a_t) e, t uniform in 1..T, a_t the cumulative product of 1 - beta_t
(linear betas 1e-4..0.02); the denoiser predicts e from (x_t, t) (epsilon-prediction, the DDPM loss). The K draws of
one example are the middle axis of the denoiser's input, [B, K, D], so every Dense layer sees them as positions and
the fast engine's norms stay per example. Sampling: deterministic DDIM over `sample_steps` evenly spaced timesteps.
The denoiser is an MLP on flattened images (small for CPU tests; widen `hidden` on a GPU).
"""
import math

import numpy as np
import tensorflow as tf

from tfdpgen.models.base import DPGenerativeModel

L = tf.keras.layers


def time_features(t, size=32, steps=1000):
    """Sinusoidal features of integer timesteps t [...]; returns [..., size]."""
    frequencies = tf.exp(-math.log(10_000.0) * tf.range(size // 2, dtype=tf.float32) / (size // 2))
    angles = tf.cast(t, tf.float32)[..., None] / steps * 1000.0 * frequencies
    return tf.concat([tf.sin(angles), tf.cos(angles)], -1)


class DPDiffusion(DPGenerativeModel):
    metric_names = ("loss",)

    def __init__(self, image_shape=(8, 8, 1), multiplicity: int = 8, timesteps: int = 1000, sample_steps: int = 50,
                 hidden: int = 256, seed: int = None, **kwargs):
        self.image_shape = tuple(int(size) for size in image_shape)
        size = int(np.prod(self.image_shape))
        super().__init__(latent_dim=size, seed=seed, **kwargs)
        if multiplicity < 1 or sample_steps < 1 or sample_steps > timesteps:
            raise ValueError("multiplicity must be >= 1 and sample_steps in [1, timesteps].")
        self.multiplicity, self.timesteps, self.sample_steps = multiplicity, timesteps, sample_steps
        betas = np.linspace(1e-4, 0.02, timesteps)
        self.alpha_bars = tf.constant(np.cumprod(1 - betas), tf.float32)
        self.denoiser = tf.keras.Sequential([L.InputLayer(input_shape=(None, size + 32)),
                                             L.Dense(hidden, activation="swish"), L.Dense(hidden, activation="swish"),
                                             L.Dense(hidden, activation="swish"), L.Dense(size)], name="denoiser")

    private_networks = property(lambda self: [self.denoiser])
    generator_networks = property(lambda self: [self.denoiser])

    def predict_noise(self, x_t, t, run=None):
        run = run or (lambda network, x: network(x, training=False))
        return run(self.denoiser, tf.concat([x_t, time_features(t, steps=self.timesteps)], -1))

    def per_example_terms(self, x, y, training):
        batch, k = tf.shape(x)[0], self.multiplicity
        x0 = tf.reshape(tf.cast(x, tf.float32), [batch, 1, -1]) * 2 - 1  # [0, 1] -> [-1, 1]
        t = tf.random.stateless_uniform([batch, k], seed=self.step_seed(1), maxval=self.timesteps, dtype=tf.int32)
        noise = tf.random.stateless_normal([batch, k, self.latent_dim], seed=self.step_seed(2), alg="philox")
        alpha_bar = tf.gather(self.alpha_bars, t)[..., None]
        x_t = tf.sqrt(alpha_bar) * x0 + tf.sqrt(1 - alpha_bar) * noise
        predicted = self.predict_noise(x_t, t, lambda network, inputs: self.run(network, inputs, training))
        loss = tf.reduce_mean(tf.reduce_sum(tf.square(predicted - noise), -1), -1)  # mean over the K draws
        return {"loss": loss}

    def generate(self, z, labels=None):
        """DDIM (eta = 0) from x_T = z over `sample_steps` timesteps; images in [0, 1]."""
        times = np.linspace(self.timesteps - 1, 0, self.sample_steps).round().astype(int)
        x = tf.cast(z, tf.float32)[:, None, :]
        for index, t in enumerate(times):
            alpha_bar = self.alpha_bars[t]
            previous = self.alpha_bars[times[index + 1]] if index + 1 < len(times) else tf.constant(1.0)
            noise = self.predict_noise(x, tf.fill(tf.shape(x)[:2], int(t)))
            x0 = tf.clip_by_value((x - tf.sqrt(1 - alpha_bar) * noise) / tf.sqrt(alpha_bar), -1, 1)
            x = tf.sqrt(previous) * x0 + tf.sqrt(1 - previous) * noise
        return tf.reshape((x[:, 0] + 1) / 2, tf.concat([tf.shape(z)[:1], self.image_shape], 0))

    def get_config(self):
        return {"image_shape": self.image_shape, "multiplicity": self.multiplicity, "timesteps": self.timesteps,
                "sample_steps": self.sample_steps}
