"""DP-MERF: one record moves the released statistic by exactly its sensitivity, a run's release has the noise its
privacy.json states and its epsilon is the exact Gaussian mechanism's for that noise, the generator learns the labels without noise
(and a fit to label-blind embeddings does not), and the export samples by label in plain TensorFlow."""
import json
import math
import os
import subprocess
import sys
import textwrap

import dp_accounting
import numpy as np
import pytest
import tf_keras as keras

import tfdpgen  # noqa: F401
from tfdpgen import cli
from tfdpgen.data.images import load_images
from tfdpgen.evaluation.images import tstr_accuracy
from tfdpgen.models.gan import SHAPES
from tfdpgen.models.merf import DIGITS_BANDWIDTH_SQUARED_PER_PIXEL, DPMERF, median_heuristic
from tfdpgen.runs import load_split, load_trained
from tfdpgen.runs.config import RunConfig
from tfdpgen.runs.split import load_records
from toys import analytic_gaussian_epsilon, assert_published_keys_documented, assert_scale, write_idx


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1)])
def test_no_record_moves_the_release_by_more_than_its_sensitivity(shape):
    """Bug caught: the features computed in float32, whose rows reach norm 1 + 7e-9, above the sensitivity 1 the
    noise is calibrated to."""
    images = np.random.default_rng(1).uniform(size=(2000, *shape)).astype(np.float32)
    model = DPMERF(shape, 10, frequencies=2000)
    labels = np.zeros(len(images), np.int64)
    contributions = [np.linalg.norm(model.release_statistic(images[k:k + 1], labels[k:k + 1]))
                     for k in range(0, len(images), 10)]
    norms = np.linalg.norm(model.release_features(images), axis=-1)
    assert max(contributions) <= model.sensitivity and norms.max() <= 1.0 and norms.min() > 1 - 1e-9


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1)])
def test_each_record_moves_the_statistic_by_exactly_one(shape):
    rng = np.random.default_rng(0)
    images, labels = rng.uniform(size=(40, *shape)).astype(np.float32), rng.integers(0, 10, 40)
    model = DPMERF(shape, 10, frequencies=500)
    full = model.release_statistic(images, labels)
    for k in (0, 17, 39):
        without = model.release_statistic(np.delete(images, k, 0), np.delete(labels, k))
        assert np.linalg.norm(full - without) == pytest.approx(model.sensitivity, abs=1e-6)
    assert full[:, -1].sum() / 0.2 == pytest.approx(40)  # the count entries hold the class counts


def test_the_kernel_bandwidth_comes_from_the_public_digits():
    """The default bandwidth^2 is the digits' median heuristic per pixel times the pixel count, for every image size,
    and depends on no private image. Bug caught: DP-MERF's 127 for 784 pixels, the median heuristic on MNIST, one of
    the private sets offered (127 / 784 is not the digits' figure)."""
    assert median_heuristic(load_images("digits").images) == DIGITS_BANDWIDTH_SQUARED_PER_PIXEL
    for shape in SHAPES:
        assert DPMERF(shape, 10, frequencies=10).bandwidth ** 2 == pytest.approx(
            DIGITS_BANDWIDTH_SQUARED_PER_PIXEL * np.prod(shape), rel=1e-12)


def run_cli(*args):
    return cli.main(["train", "--model", "merf", "--quiet", *args])


@pytest.fixture(scope="module")
def merf_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("merf") / "run")
    assert run_cli("--output", run, "--epsilon", "2", "--fit-steps", "200", "--frequencies", "1000",
                   "--insecure-noise-seed", "5") == 0
    return run


def test_release_has_the_stated_noise_and_epsilon(merf_run):
    with open(os.path.join(merf_run, "privacy.json")) as f:
        report = json.load(f)
    assert report["mechanisms"] == {"gaussian": 1} and 2 - 1e-6 <= report["epsilon"] <= 2
    assert report["accountant"] == report["composed_by"] == "pld"  # one release: calibrated exactly by default
    release = report["releases"][0]
    # epsilon recomputed from the recorded noise alone: by dp_accounting's PLD, and exactly by the analytic Gaussian
    # mechanism (Balle and Wang 2018), which PLD bounds from above (within float error) by at most a hair
    accountant = dp_accounting.pld.PLDAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(release["stddev"] / release["sensitivity"]))
    assert accountant.get_epsilon(report["delta"]) == pytest.approx(report["epsilon"], rel=1e-9)
    exact = analytic_gaussian_epsilon(release["stddev"] / release["sensitivity"], report["delta"])
    assert exact * (1 - 1e-9) <= report["epsilon"] <= 1.002 * exact
    # the noise actually in the release (kept in the checkpoint) against the exact statistic of the training images
    model, _ = load_trained(merf_run)
    train, train_labels, _, _, _, _ = load_split(merf_run)
    noise = model.release.numpy() - model.release_statistic(train, train_labels)
    assert_scale(noise, release["stddev"])
    assert "one Gaussian release" in open(os.path.join(merf_run, "privacy.txt")).read()
    assert_published_keys_documented(merf_run)


def test_export_samples_by_label_in_plain_tensorflow(merf_run):
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        model = tf.saved_model.load({os.path.join(merf_run, "saved_model", "1")!r})
        given = model.signatures["sample_conditional"](labels=tf.constant([0, 1, 7], tf.int32),
                                                       seed=tf.constant(2, tf.int64))["samples"]
        joint = model.signatures["serving_default"](num_samples=tf.constant(5), seed=tf.constant(1, tf.int64))
        print(json.dumps({{"given": given.shape.as_list(), "joint": joint["samples"].shape.as_list(),
                          "range": [float(tf.reduce_min(given)), float(tf.reduce_max(given))]}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["given"] == [3, 8, 8, 1] and result["joint"] == [5, 8, 8, 1]
    assert 0 <= result["range"][0] <= result["range"][1] <= 1


def test_without_noise_it_learns_the_labels_and_a_label_blind_fit_does_not():
    digits = load_images("digits")
    train, labels = digits.images[:1400], digits.labels[:1400]
    test, test_labels = digits.images[1400:], digits.labels[1400:]
    scores = {}
    for name, given in (("labels", labels), ("shuffled", np.random.default_rng(0).permutation(labels))):
        keras.utils.set_random_seed(0)  # the generator's initial weights: one draw, not a new one each run
        model = DPMERF((8, 8, 1), 10, frequencies=1000)
        model.set_release(model.release_statistic(train, given))
        model.fit(300, verbose=0)
        sample_labels = np.arange(1000) % 10
        scores[name] = tstr_accuracy(model.sample(1000, seed=1, labels=sample_labels), sample_labels, test,
                                     test_labels, 10, epochs=10)
    assert scores["labels"] > 0.8, scores
    assert scores["shuffled"] < 0.3, scores


def digits_as_idx(folder, keep=lambda labels: np.ones(len(labels), bool), relabel=lambda labels: labels):
    digits = load_images("digits")
    kept = keep(digits.labels)
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.round(digits.images[kept, ..., 0] * 255))
    write_idx(folder / "train-labels-idx1-ubyte.gz", relabel(digits.labels[kept]))
    return str(folder)


def test_the_label_set_is_declared_not_read_from_the_private_labels(tmp_path, capsys):
    """Bug caught (found by the privacy review): the number of classes taken as max(label) + 1 over the records, so
    removing the only record of the top class shrank the release from (10, 2m + 1) to (9, 2m + 1) and the export's
    num_classes with it: the two neighbouring data sets told apart with certainty."""
    without_nines = digits_as_idx(tmp_path / "no9", keep=lambda labels: labels != 9)
    run = str(tmp_path / "run")
    assert run_cli("--data-dir", without_nines, "--output", run, "--fit-steps", "2", "--frequencies", "50") == 0
    model, _ = load_trained(run)
    metadata = json.load(open(os.path.join(run, "saved_model", "1", "assets", "tfdpgen.json")))
    assert model.release.shape == (10, 101) and model.num_classes == metadata["num_classes"] == 10
    # labels outside the declared set: one line, before anything is written; --num-classes declares a larger set
    letters = digits_as_idx(tmp_path / "letters", relabel=lambda labels: labels + 3)
    assert run_cli("--data-dir", letters, "--output", str(tmp_path / "refused")) == 2
    error = capsys.readouterr().err.strip()
    assert "labels lie outside the declared classes 0..9: give --num-classes" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "refused").exists()
    config = RunConfig.build("merf", data_dir=letters, num_classes=13, frequencies=50)
    _, _, data = load_records(config.family, config.dataset, config.data_dir, None, None, config.num_classes)
    assert config.family.build(data, frequencies=50).release.shape == (13, 101)
