"""Run one DP training scenario under a tf.distribute strategy in a fresh process; print its results as JSON.

python strategy_run.py noise|weights|weights_static|weights_adaptive|weights_dp2|gan_steps|diffusion_average|
                       sinkhorn_noise|count_noise REPLICAS
    (MirroredStrategy over REPLICAS logical CPU devices; 0: no strategy)
python strategy_run.py multiworker|multiworker_noise 1
    (with TF_CONFIG set: MultiWorkerMirroredStrategy, one CPU per worker; multiworker_noise: the noise scenario)
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfdpgen  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras

mode, replicas = sys.argv[1], int(sys.argv[2])
if mode.startswith("multiworker"):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    mode = {"multiworker": "multiworker", "multiworker_noise": "noise"}[mode]
elif replicas == 0:  # no strategy: TF's default one
    strategy = tf.distribute.get_strategy()
else:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])

from tfdpgen.data.sampling import distributed_private_batches  # noqa: E402
from toys import LinearToy  # noqa: E402

result = {"replicas": strategy.num_replicas_in_sync}
if mode == "noise":
    n, batch, clip, sigma, width = 640, 64, 1.0, 1.0, 8192
    settings = tfdpgen.PrivacySettings(dataset_size=n, batch_size=batch, epochs=1, l2_norm_clip=clip,
                                       noise_multiplier=sigma)
    with strategy.scope():
        model = LinearToy(4, width, zero_init=True)
        model.compile(privacy=settings, optimizer="sgd", learning_rate=1.0)
    x, y = np.zeros((n, 4), "float32"), np.zeros((n, width), "float32")
    model.fit(distributed_private_batches(x, y, settings, strategy, seed=1), epochs=1, steps_per_epoch=1, verbose=0)
    result.update(std=float(model.net.kernel.numpy().std()), expected=sigma * clip / batch,
                  noise=(model.net.kernel.numpy() * batch / clip).ravel().tolist(), sigma=sigma)
elif mode.startswith("weights"):
    n, batch = 256, 32
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(n, 6)) * rng.uniform(0.1, 3, size=(n, 1))).astype("float32")
    y = rng.normal(size=(n, 3)).astype("float32")
    # adaptive: a negligible count noise, so that the clip trajectory does not depend on how it is split
    adaptive = dict(clipping="adaptive", clipped_count_stddev=1e-9) if mode == "weights_adaptive" else {}
    settings = tfdpgen.PrivacySettings(dataset_size=n, batch_size=batch, epochs=1, l2_norm_clip=1.0,
                                       noise_multiplier=0.0, **adaptive)
    with strategy.scope():
        model = LinearToy(6, 3)
        model.compile(privacy=settings, optimizer="dp2-rmsprop" if mode == "weights_dp2" else "sgd",
                      learning_rate=0.5, dp2_delay=2)
    batches = distributed_private_batches(x, y, settings, strategy, seed=2, static_size=mode == "weights_static")
    model.fit(batches, epochs=1, steps_per_epoch=5, verbose=0)
    result.update(kernel=model.net.kernel.numpy().ravel().tolist(), steps=int(model.dp_steps.numpy()),
                  clip=float(model.clip_norm.numpy()))
elif mode == "gan_steps":  # 3 DP steps per generator step: which steps moved the generator, and its average
    from tfdpgen.models.tabular_gan import DPTableGAN
    from tfdpgen.data.tables import load_table
    data = load_table("breast_cancer")
    settings = tfdpgen.PrivacySettings(dataset_size=len(data.labels), batch_size=32, epochs=1, l2_norm_clip=1.0,
                                       noise_multiplier=0.0)
    with strategy.scope():
        model = DPTableGAN(data.schema, latent_dim=8, seed=5, discriminator_steps=3, average_decay=0.999)
        model.compile(privacy=settings, optimizer="adam", learning_rate=1e-3)
    batches = distributed_private_batches(data.features, data.labels, settings, strategy, seed=2, static_size=True)
    weights = [model.generator.get_weights()]
    average = model.average_generator.get_weights()
    moved = []
    for step in range(1, 7):
        model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)
        weights.append(model.generator.get_weights())
        moved.append(any(not np.array_equal(a, b) for a, b in zip(weights[-2], weights[-1])))
        if moved[-1]:
            t = int(model.generator_steps.numpy())
            decay = min(0.999, (1 + t) / (10 + t))
            average = [decay * a + (1 - decay) * w for a, w in zip(average, weights[-1])]
    result.update(moved=moved, generator_steps=int(model.generator_steps.numpy()),
                  average_error=max(float(np.abs(a - b).max())
                                    for a, b in zip(average, model.average_generator.get_weights())))
elif mode == "diffusion_average":  # the denoiser's moving average after each DP step
    from tfdpgen.data.images import load_images
    from tfdpgen.models.diffusion import DPDiffusion
    data = load_images("digits")
    settings = tfdpgen.PrivacySettings(dataset_size=len(data.images), batch_size=32, epochs=1, noise_multiplier=1.0)
    with strategy.scope():
        model = DPDiffusion(image_shape=(8, 8, 1), multiplicity=2, width=4, num_classes=10, seed=5)
        model.compile(privacy=settings, optimizer="adam", learning_rate=1e-2)
    batches = distributed_private_batches(data.images, data.labels, settings, strategy, seed=2, static_size=True)
    average = model.average.get_weights()
    for step in range(1, 4):
        model.fit(batches, epochs=1, steps_per_epoch=1, verbose=0)
        decay = min(0.999, (1 + step) / (10 + step))
        average = [decay * a + (1 - decay) * w for a, w in zip(average, model.network.get_weights())]
    result.update(average_error=max(float(np.abs(a - b).max()) for a, b in zip(average, model.average.get_weights())),
                  moved=max(float(np.abs(a - b).max()) for a, b in zip(average, model.network.get_weights())))
elif mode == "sinkhorn_noise":  # DP-Sinkhorn's release from a batch that reads no record: the noise alone
    from tfdpgen.models.sinkhorn import DPSinkhorn
    batch, clip, sigma = 256, 0.01, 1.3
    settings = tfdpgen.PrivacySettings(dataset_size=10 * batch, batch_size=batch, epochs=1, l2_norm_clip=clip,
                                       noise_multiplier=sigma)
    with strategy.scope():
        model = DPSinkhorn(image_shape=(8, 8, 1), latent_dim=8, seed=5)
        model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=1.0, noise_key=11)
    x = tf.constant(np.random.default_rng(0).uniform(size=(batch // replicas if replicas else batch, 8, 8, 1)),
                    tf.float32)

    @tf.function
    def release():
        def replica_release():
            released, _, _ = model.released_gradient(x, None, tf.zeros([x.shape[0]]), model.fake_batch(False), clip)
            return released
        return strategy.run(replica_release)
    shares = [t.numpy() for t in strategy.experimental_local_results(release())]
    result.update(noise=(shares[0] * batch / clip).ravel().tolist(), expected=sigma,
                  replicas_agree=all(np.array_equal(shares[0], share) for share in shares))
elif mode == "count_noise":  # the clipped count's noise at steps that read no record, read back from the clip norm
    batch, steps = 40, 2000
    settings = tfdpgen.PrivacySettings(dataset_size=4000, batch_size=batch, epochs=20, l2_norm_clip=0.1,
                                       noise_multiplier=1.0, clipping="adaptive")
    with strategy.scope():
        model = LinearToy(2, 2, zero_init=True)
        model.compile(privacy=settings, optimizer="sgd", learning_rate=0.0, noise_key=5)
    clips = [float(model.clip_norm.numpy())]
    data = tf.data.Dataset.from_tensors((np.zeros((batch, 2), "float32"), np.zeros((batch, 2), "float32"),
                                         np.zeros(batch, "float32"))).repeat()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda b, logs: clips.append(float(model.clip_norm.numpy())))])  # logs sum the replicas
    fraction = settings.target_quantile - np.diff(np.log(np.array(clips, np.float64))) / settings.clip_learning_rate
    result.update(noise=((fraction - 0.5) * batch).tolist(), expected=model.privacy.count_stddev,
                  unclipped=bool(np.all((fraction > 0.01) & (fraction < 0.99))))
elif mode == "multiworker":
    from tfdpgen.data.images import load_images
    data = load_images("digits")
    settings = tfdpgen.PrivacySettings(dataset_size=len(data.images), batch_size=64, epochs=1, target_epsilon=2.0)
    with strategy.scope():
        model = tfdpgen.DPVAE(image_shape=(8, 8, 1), latent_dim=4)
        model.compile(privacy=settings, optimizer="adam", learning_rate=5e-3)
    history = model.fit(distributed_private_batches(data.images, data.labels, model.privacy, strategy, seed=3),
                        epochs=1, steps_per_epoch=model.privacy.steps_per_epoch, verbose=0)
    result.update(report=model.privacy_report(), loss=history.history["loss"])
print("RESULT " + json.dumps(result))
