"""Every generator family: private networks get only clipped, noised per-example gradients; generators trained from a
private discriminator never read the real batch; each trains from the CLI and exports a model plain TF can load."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen import cli
from tfdpgen.data.images import DataError, load_images
from tfdpgen.data.tables import TableSchema, load_table
from tfdpgen.models.diffusion import DPDiffusion
from tfdpgen.models.gan import DPGAN
from tfdpgen.models.sinkhorn import DPSinkhorn
from tfdpgen.models.tabular_gan import DPTableGAN
from tfdpgen.models.vae import DPVAE
from tfdpgen.runs import load_trained, train_run
from toys import assert_published_keys_documented, assert_scale, write_idx

BATCH, CLIP, LR = 32, 0.5, 1.0


def breast_cancer():
    return load_table("breast_cancer")


def make(family, seed=0):
    keras.utils.set_random_seed(seed)
    if family == "gan":
        return DPGAN(image_shape=(8, 8, 1), latent_dim=8, seed=5)
    if family == "cgan":
        return DPGAN(image_shape=(8, 8, 1), latent_dim=8, num_classes=10, seed=5)
    if family == "tabgan":
        return DPTableGAN(breast_cancer().schema, latent_dim=8, seed=5)
    if family == "vae":
        return DPVAE(image_shape=(8, 8, 1), num_classes=10, seed=5)
    if family == "diffusion":
        return DPDiffusion(image_shape=(8, 8, 1), multiplicity=4, width=8, seed=5)
    if family == "csinkhorn":
        return DPSinkhorn(image_shape=(8, 8, 1), latent_dim=8, num_classes=10, seed=5)
    return DPSinkhorn(image_shape=(8, 8, 1), latent_dim=8, seed=5)


def outlier_batch(family):
    """One record far from everything (a batch of one, weight 1), and its label."""
    if family == "tabgan":
        row = np.full((1, breast_cancer().features.shape[1]), 1.0, np.float32)
        return row, np.array([1], np.int32)
    return np.ones((1, 8, 8, 1), np.float32), np.array([3], np.int32)


def compile_sgd(model, noise=0.0, clip=CLIP, lr=LR):
    settings = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=BATCH, epochs=1, l2_norm_clip=clip,
                                       noise_multiplier=noise)
    model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=lr, noise_key=3)


def private_update(family, clip, x, y, weights):
    model = make(family)
    compile_sgd(model, clip=clip)
    before = [v.numpy() for network in model.private_networks for v in network.trainable_variables]
    model.fit(tf.data.Dataset.from_tensors((x, y, weights)), epochs=1, verbose=0)
    return [v.numpy() - b for v, b in zip(
        [v for network in model.private_networks for v in network.trainable_variables], before)]


def record_contribution(family, clip):
    """How far one outlier record moves the private networks: the update from a batch holding it minus the update
    from the same step without it (a weight-0 row; the generated rows, drawn from the step's seed, are the same)."""
    x, y = outlier_batch(family)
    with_record = private_update(family, clip, x, y, np.ones(1, np.float32))
    without = private_update(family, clip, x, y, np.zeros(1, np.float32))
    return np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(with_record, without)))


@pytest.mark.parametrize("family", ["vae", "gan", "cgan", "tabgan", "diffusion"])
def test_one_record_moves_private_networks_at_most_lr_clip_over_batch(family):
    bound = LR * CLIP / BATCH
    assert 0 < record_contribution(family, CLIP) <= bound * (1 + 1e-4)
    assert record_contribution(family, 1e4) > 2 * bound  # unclipped, the outlier would move them further


def test_sinkhorn_closed_form_per_record_gradients_equal_autodiff():
    from tfdpgen.models.sinkhorn import SoftMinClipping, soft_min_cost
    rng = np.random.default_rng(0)
    real = tf.constant(rng.uniform(size=(6, 10)), tf.float32)
    fake = tf.constant(rng.uniform(size=(5, 10)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(fake)
        loss = soft_min_cost(real, fake, 0.05)
    jacobian = tape.jacobian(loss, fake).numpy()  # [records, B, D]
    norms = np.sqrt(np.sum(jacobian.reshape(6, -1) ** 2, 1))
    clip = float(np.median(norms))
    expected = np.tensordot(np.minimum(1, clip / norms), jacobian, axes=[[0], [0]])
    (clipped,), closed_norms = SoftMinClipping(real, fake, 0.05).clipped_sums(None, loss, [fake], None, clip)
    np.testing.assert_allclose(closed_norms, norms, rtol=1e-4)
    np.testing.assert_allclose(clipped, expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("family", ["sinkhorn", "csinkhorn"])
def test_sinkhorn_releases_a_clipped_gradient_of_the_generated_batch(family):
    """DP-Sinkhorn's private quantity is the gradient with respect to the generated batch: one outlier record moves
    it by at most C/B; without clipping it would move it further (conditional: the label columns are in the norm)."""
    x, y = outlier_batch("sinkhorn")
    norms = {}
    for clip in (0.01, 1e4):
        model = make(family)
        compile_sgd(model, clip=clip)
        fake = model.fake_batch(False)
        released, _, _ = model.private_fake_gradient(tf.constant(x), None, fake, labels=tf.constant(y))
        norms[clip] = float(tf.norm(released))
    assert norms[0.01] <= 0.01 / BATCH * (1 + 1e-4)
    assert norms[1e4] > 2 * 0.01 / BATCH


def sinkhorn_without_records(noise, lr=1.0, batch=256):
    """A DP-Sinkhorn whose step reads no record (every weight 0): its clipped sum is exactly 0, so what it releases is
    the noise alone."""
    keras.utils.set_random_seed(0)
    model = DPSinkhorn(image_shape=(8, 8, 1), latent_dim=8, seed=5)
    settings = tfdpgen.PrivacySettings(dataset_size=10 * batch, batch_size=batch, epochs=1, l2_norm_clip=0.01,
                                       noise_multiplier=noise)
    model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=lr, noise_key=11)
    x = np.random.default_rng(0).uniform(size=(batch, 8, 8, 1)).astype(np.float32)
    return model, x, np.zeros(batch, np.float32)


def test_sinkhorn_release_carries_noise_sigma_clip_over_batch():
    """The released gradient with respect to the generated batch is (clipped sum + N(0, sigma^2 C^2)) / B.
    Catches: the noise left out of DP-Sinkhorn's release, or drawn at another scale (every other DP-Sinkhorn test
    ran it with noise 0 or as a smoke test, and passed with no noise at all)."""
    sigma, batch = 1.3, 256
    model, x, weights = sinkhorn_without_records(sigma, batch=batch)
    released, _, _ = model.released_gradient(tf.constant(x), None, tf.constant(weights), model.fake_batch(False),
                                             model.step_clip_norm())
    assert released.shape == (batch, 8, 8, 1)
    assert_scale(released.numpy() * batch / 0.01, sigma)


def test_sinkhorn_step_applies_exactly_its_release():
    """One training step moves the generator by the back-propagated release (noise included) and the data-free
    self-term's gradient, nothing else. Catches: a train_step that takes a noise-free path around the release."""
    sigma, batch = 1.3, 256
    model, x, weights = sinkhorn_without_records(sigma, batch=batch)
    before = [v.numpy() for v in model.generator.trainable_variables]
    with tf.GradientTape() as generator_tape:
        fake = model.fake_batch(True)
    released, _, _ = model.released_gradient(tf.constant(x), None, tf.constant(weights), fake, model.step_clip_norm())
    with tf.GradientTape() as self_tape:
        self_tape.watch(fake)
        term = model.self_term(fake)
    total = released - self_tape.gradient(term, fake) / batch
    expected = generator_tape.gradient(fake, model.generator.trainable_variables, output_gradients=total)
    model.fit(tf.data.Dataset.from_tensors((x, np.zeros(batch, np.int32), weights)), epochs=1, verbose=0)
    moved = [v.numpy() - b for v, b in zip(model.generator.trainable_variables, before)]
    for step, gradient in zip(moved, expected):
        np.testing.assert_allclose(step, -gradient.numpy(), rtol=1e-4, atol=1e-7)
    quiet, _, _ = sinkhorn_without_records(0.0, batch=batch)
    quiet_before = [v.numpy() for v in quiet.generator.trainable_variables]
    quiet.fit(tf.data.Dataset.from_tensors((x, np.zeros(batch, np.int32), weights)), epochs=1, verbose=0)
    noise_moved = sum(np.sum((v.numpy() - b - m) ** 2)
                      for v, b, m in zip(quiet.generator.trainable_variables, quiet_before, moved))
    assert noise_moved > 1e-8  # the noise reached the generator


def test_sinkhorn_repulsion_weights_only_the_data_free_self_term():
    """The self-term's weight changes the generator's update, never the release: the released gradient with respect to
    the generated batch is the same at repulsion 1 and 4, and the self-term's gradient is 4 times as large."""
    x, y = outlier_batch("sinkhorn")
    released, spreading = [], []
    for weight in (1.0, 4.0):
        keras.utils.set_random_seed(0)
        model = DPSinkhorn(image_shape=(8, 8, 1), latent_dim=8, num_classes=10, seed=5, repulsion=weight)
        compile_sgd(model, clip=0.01)
        fake = model.fake_batch(False)
        released.append(model.private_fake_gradient(tf.constant(x), None, fake, labels=tf.constant(y))[0].numpy())
        with tf.GradientTape() as tape:
            tape.watch(fake)
            term = model.self_term(fake)
        spreading.append(tape.gradient(term, fake).numpy())
    np.testing.assert_allclose(released[1], released[0], rtol=1e-6, atol=1e-9)
    assert np.abs(spreading[0]).max() > 0
    np.testing.assert_allclose(spreading[1], 4 * spreading[0], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="repulsion"):
        DPSinkhorn(image_shape=(8, 8, 1), repulsion=-1.0)
    with pytest.raises(ValueError, match="generator_width"):
        DPSinkhorn(image_shape=(8, 8, 1), generator_width=0)


@pytest.mark.parametrize("family", ["gan", "cgan", "tabgan"])
def test_generator_step_never_reads_the_real_batch(family):
    """Discriminator frozen (learning rate 0, no noise): the generator's update is the same for two different real
    batches, and it did move."""
    generators = []
    for batch_seed in (1, 2):
        model = make(family)
        compile_sgd(model, lr=0.0)
        start = [v.numpy() for v in model.generator.trainable_variables]
        x, y = outlier_batch(family)
        x = np.random.default_rng(batch_seed).uniform(size=(BATCH,) + x.shape[1:]).astype("float32")
        y = np.random.default_rng(batch_seed).integers(0, 2, size=BATCH).astype("int32")
        model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
        generators.append([v.numpy() for v in model.generator.trainable_variables])
    for a, b in zip(*generators):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(generators[0], start))


LOADER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    assert "tfdpgen" not in sys.modules and "tf_keras" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    with open(sys.argv[1] + "/assets/tfdpgen.json") as f:
        num_classes = json.load(f)["num_classes"]
    out = {"signatures": sorted(loaded.signatures)}
    fn = loaded.signatures["serving_default"]
    first = fn(num_samples=tf.constant(6, tf.int32), seed=tf.constant(1, tf.int64))
    again = fn(num_samples=tf.constant(6, tf.int32), seed=tf.constant(1, tf.int64))
    out["outputs"] = {k: [v.shape.as_list(), v.dtype.name] for k, v in first.items()}
    out["same_seed_same"] = all(bool(tf.reduce_all(first[k] == again[k])) for k in first)
    if "sample_conditional" in loaded.signatures:
        cond = loaded.signatures["sample_conditional"](labels=tf.constant([0, 1, num_classes - 1], tf.int32),
                                                       seed=tf.constant(2, tf.int64))
        out["conditional"] = {k: v.shape.as_list() for k, v in cond.items()}
        try:
            loaded.signatures["sample_conditional"](labels=tf.constant([num_classes], tf.int32),
                                                    seed=tf.constant(2, tf.int64))
            out["bad_label"] = "accepted"
        except tf.errors.InvalidArgumentError as error:
            out["bad_label"] = error.message
    print(json.dumps(out))
""")


def load_in_plain_tensorflow(path, env):
    result = subprocess.run([sys.executable, "-c", LOADER, str(path)], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def epoch_losses(output):
    return json.loads((output / "privacy.json").read_text())


@pytest.mark.parametrize("family, epochs", [("vae", 3), ("gan", 3), ("cgan", 3), ("diffusion", 3), ("sinkhorn", 3)])
def test_image_family_trains_on_digits_and_exports(tmp_path, subprocess_env, capsys, family, epochs):
    output = tmp_path / family
    assert cli.main(["train", "--model", family, "--epochs", str(epochs), "--epsilon", "3", "--output", str(output),
                     "--checkpoint-every", "1000"]) == 0
    printed = capsys.readouterr().out
    losses = [float(line.split(" - loss: ")[1].split()[0]) for line in printed.replace("\r", "\n").splitlines()
              if " - loss: " in line and "epsilon" in line]
    assert len(losses) == epochs and losses[-1] < losses[0], losses
    report = json.loads((output / "privacy.json").read_text())
    assert report["epsilon"] <= 3 and (output / "samples.png").exists()
    out = load_in_plain_tensorflow(output / "saved_model" / "1", subprocess_env)
    assert out["outputs"] == {"samples": [[6, 8, 8, 1], "float32"]} and out["same_seed_same"]
    if family in ("vae", "cgan", "sinkhorn", "diffusion"):  # conditional on the digits' labels
        assert out["signatures"] == ["sample_conditional", "serving_default"]
        assert out["conditional"] == {"samples": [3, 8, 8, 1]} and "num_classes=10" in out["bad_label"]
    else:
        assert out["signatures"] == ["serving_default"]
    if family == "sinkhorn":  # its export's metadata rebuilds the wider generator (and holds no entropic "epsilon")
        model, metadata = load_trained(str(output))
        assert metadata["config"]["generator_width"] == model.generator_width == 2 and "epsilon" not in metadata


def test_tabgan_trains_on_a_slice_of_adult_and_exports_readable_columns(tmp_path, shared_data, subprocess_env):
    data_dir = tmp_path / "adult"
    data_dir.mkdir()
    shutil.copy(shared_data / "adult" / "adult-domain.json", data_dir)
    with open(shared_data / "adult" / "adult.csv") as source, open(data_dir / "adult.csv", "w") as target:
        target.writelines(line for _, line in zip(range(3001), source))
    output = tmp_path / "run"
    assert cli.main(["train", "--model", "tabgan", "--dataset", "adult", "--data-dir", str(data_dir), "--epochs", "2",
                     "--epsilon", "3", "--output", str(output), "--quiet"]) == 0
    domain = json.loads((data_dir / "adult-domain.json").read_text())
    out = load_in_plain_tensorflow(output / "saved_model" / "1", subprocess_env)
    assert sorted(out["outputs"]) == sorted(domain)
    assert all(shape_dtype == [[6], "string"] for shape_dtype in out["outputs"].values())
    assert out["same_seed_same"] and "num_classes=2" in out["bad_label"]
    assert out["conditional"] == {name: [3] for name in domain}


def test_tabular_samples_decode_to_exactly_the_declared_columns_and_values():
    data = breast_cancer()
    model = DPTableGAN(data.schema, latent_dim=8, seed=1)
    samples = model.sample(500, seed=0)
    assert list(samples) == [column.name for column in data.schema.columns]
    for column in data.schema.columns:
        values = samples[column.name]
        assert values.shape == (500,)
        if column.type == "categorical":
            assert set(v.decode() for v in values) <= set(column.values)
        else:
            assert values.dtype == np.float32 and column.min <= values.min() and values.max() <= column.max
    labels = model.sample(4, seed=0, labels=[1, 1, 0, 1])["diagnosis"]
    assert [v.decode() for v in labels] == ["benign", "benign", "malignant", "benign"]


def test_csv_with_schema_and_bad_schemas(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("age,smoker,outcome\n40,yes,ill\n70,no,well\n55,no,ill\n")
    schema = {"condition": "outcome", "columns": [{"name": "age", "type": "continuous", "min": 0, "max": 100},
                                                  {"name": "smoker", "type": "categorical", "values": ["no", "yes"]},
                                                  {"name": "outcome", "type": "categorical", "values": ["ill", "well"]}]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    data = load_table("rows", str(tmp_path / "data"), str(tmp_path / "schema.json"))
    np.testing.assert_allclose(data.features, [[-0.2, 0, 1], [0.4, 1, 0], [0.1, 1, 0]], atol=1e-6)
    assert data.labels.tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="declared bounds"):
        TableSchema.from_dict({"condition": "outcome", "columns": [{"name": "age", "type": "continuous"}]})
    with pytest.raises(DataError, match="condition 'age' must name one of its categorical columns"):
        TableSchema.from_dict(dict(schema, condition="age"))
    (tmp_path / "data" / "rows.csv").write_text("age,smoker,outcome\n40,maybe,ill\n")
    with pytest.raises(DataError, match="row 0, column .smoker.: .maybe. is not one of the declared values"):
        load_table("rows", str(tmp_path / "data"), str(tmp_path / "schema.json"))


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_conditional_gan_on_larger_images_takes_the_fast_path(shape, caplog):
    keras.utils.set_random_seed(0)
    model = DPGAN(image_shape=shape, num_classes=10, seed=1)
    model.compile(privacy=tfdpgen.PrivacySettings(dataset_size=100, batch_size=8, epochs=1, noise_multiplier=1.0))
    x = np.random.default_rng(0).uniform(size=(8, *shape)).astype("float32")
    with caplog.at_level("WARNING", logger="tfdpgen"):
        model.fit(x, np.arange(8) % 10, batch_size=8, epochs=1, verbose=0)
    assert "falls back to Jacobians" not in caplog.text
    assert model.sample(3, labels=[0, 1, 2]).shape == (3, *shape)


@pytest.mark.parametrize("family", ["gan", "cgan", "tabgan", "diffusion", "sinkhorn"])
@pytest.mark.parametrize("variant", ["adaptive", "dp2-rmsprop"])
def test_every_family_trains_with_adaptive_clipping_and_dp2(family, variant):
    model = make(family)
    x, y = outlier_batch(family)
    x = np.random.default_rng(0).uniform(size=(3 * BATCH,) + x.shape[1:]).astype("float32")
    y = np.random.default_rng(0).integers(0, 2, size=3 * BATCH).astype("int32")
    settings = tfdpgen.PrivacySettings(dataset_size=1000, batch_size=BATCH, epochs=1, noise_multiplier=1.0,
                                       clipping="adaptive" if variant == "adaptive" else "fixed")
    if family == "sinkhorn" and variant == "dp2-rmsprop":
        with pytest.raises(ValueError, match="DP\\^2 preconditions per-example gradients of the parameters"):
            model.compile(privacy=settings, optimizer=variant)
        return
    model.compile(privacy=settings, optimizer="dp-adam" if variant == "adaptive" else variant, dp2_delay=1)
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert int(model.dp_steps.numpy()) == 3 and np.isfinite(history.history["loss"][0])
    if variant == "adaptive":
        assert history.history["clip"][0] != pytest.approx(1.0)


def test_diffusion_unet_takes_the_fast_path_with_its_noise_draws(caplog):
    """Every layer of the U-Net denoiser, fed K draws per example as [B, K, H, W, C], has a per-layer norm rule: no
    layer is run again per example and no variable falls back to Jacobians."""
    keras.utils.set_random_seed(0)
    model = DPDiffusion(image_shape=(28, 28, 1), multiplicity=2, width=4, num_classes=10, seed=1)
    model.compile(privacy=tfdpgen.PrivacySettings(dataset_size=100, batch_size=4, epochs=1, noise_multiplier=1.0))
    x = np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype("float32")
    with caplog.at_level("INFO", logger="tfdpgen"):
        model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
    assert "falls back to Jacobians" not in caplog.text and "again per example" not in caplog.text, caplog.text
    assert model.sample(2, labels=[3, 4]).shape == (2, 28, 28, 1)


def test_unet_patches_are_the_image_s_2x2_blocks_and_come_back_whole():
    """The patched U-Net's space to depth: each patch holds its 2x2 block in row order, draws and examples apart, and
    from_patches undoes it exactly (a transposed block would still invert, so the layout is checked too)."""
    from tfdpgen.models.unet import from_patches, to_patches
    x = tf.reshape(tf.range(2 * 3 * 4 * 6 * 1, dtype=tf.float32), [2, 3, 4, 6, 1])
    patches = to_patches(x, 2)
    assert patches.shape == (2, 3, 2, 3, 4)
    np.testing.assert_array_equal(patches[1, 2, 1, 2], tf.reshape(x[1, 2, 2:4, 4:6, 0], [-1]))
    np.testing.assert_array_equal(from_patches(patches, 2), x)
    with pytest.raises(ValueError, match="patch 2 must divide"):
        DPDiffusion(image_shape=(10, 9, 1), patch=2, width=4)


def test_public_pretraining_fits_the_denoiser_and_takes_no_dp_step():
    """Pretraining on public images lowers the denoising loss, moves the weights, leaves the DP step count at 0 (so
    the accounting sees none of it) and starts the moving average from its result."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    model = DPDiffusion(image_shape=(8, 8, 1), multiplicity=1, width=8, num_classes=10, seed=2)
    before = [w.numpy().copy() for w in model.network.weights]
    losses = model.pretrain(digits.images[..., None] / 16.0, digits.target, epochs=3, batch_size=64)
    assert losses[-1] < 0.8 * losses[0], losses
    assert int(model.dp_steps.numpy()) == 0
    assert max(float(np.abs(w.numpy() - b).max()) for w, b in zip(model.network.weights, before)) > 1e-3
    for average, weight in zip(model.average.weights, model.network.weights):
        np.testing.assert_array_equal(average.numpy(), weight.numpy())
    with pytest.raises(ValueError, match="public images have shape"):
        model.pretrain(np.zeros((4, 28, 28, 1), "float32"), epochs=1)


def test_public_images_sit_in_the_private_frame_and_must_match_its_channels():
    """The digits in a 28x28 frame: resized into the central 20x20 box, as MNIST's digits; other channels refused."""
    from tfdpgen.data.images import public_images
    public = public_images("digits", (28, 28, 1), "mnist")
    assert public.images.shape == (1797, 28, 28, 1) and public.labels.max() == 9
    assert public.images[:, :4].max() == 0 and public.images[:, 24:].max() == 0 and public.images[:, 4:24].max() > 0.9
    with pytest.raises(DataError, match="1 channel"):
        public_images("digits", (32, 32, 3), "cifar10")


def test_a_pretrained_dp_run_counts_only_its_dp_steps(tmp_path, shared_data):
    """A diffusion run on MNIST pretrained on the public digits: privacy.json names the pretraining, and its epsilon is
    that of its DP steps alone, computed here with dp_accounting (the pretraining's steps are not among them)."""
    import dp_accounting
    mnist = load_images("mnist", shared_data / "mnist")  # its first 400 images: 300 trained on, 100 held out
    folder = tmp_path / "mnist400"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.round(mnist.images[:400, ..., 0] * 255))
    write_idx(folder / "train-labels-idx1-ubyte.gz", mnist.labels[:400])
    output = train_run(model="diffusion", dataset="mnist", data_dir=str(folder), pretrain="digits",
                       pretrain_epochs=1, epochs=1, batch_size=150, noise_multiplier=1.0, holdout=100,
                       holdout_order="tail", output=str(tmp_path / "run"), seed=0, verbose=0)
    with open(os.path.join(output, "privacy.json")) as f:
        report = json.load(f)
    assert report["public_pretraining"]["dataset"] == "digits" and report["public_pretraining"]["epochs"] == 1
    assert report["steps"] == 2
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(0.5, dp_accounting.GaussianDpEvent(1.0)), 2)
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(report["delta"]), rel=1e-6)
    with open(os.path.join(output, "run.json")) as f:
        assert json.load(f)["pretrain"] == {"dataset": "digits", "epochs": 1}
    assert_published_keys_documented(output)
