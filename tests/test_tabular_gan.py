"""The tabular GAN's marginal anchoring: the released statistic, its sensitivity and noise, its place in the epsilon,
and that the generator learns the released marginals."""
import json
import math
import os
import subprocess
import sys

import dp_accounting
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tf_keras as keras

import tfdpgen
from tfdpgen.data.tables import TableSchema, load_table
from tfdpgen.data.sampling import private_batches
from tfdpgen.models.tabular_gan import RELEASE_SHARE, DPTableGAN
from tfdpgen.privacy.accounting import rho_for_epsilon
from tfdpgen.privacy.ledger import PrivacyLedger
from tfdpgen.runs import train_run
from tfdpgen.runs.dp_sgd import release_marginals
from toys import assert_published_keys_documented, assert_scale

WIDE = 30  # a wide, skewed column: where a GAN left to itself drops modes
SCHEMA = {"condition": "label",
          "columns": [{"name": "wide", "type": "categorical", "values": [str(i) for i in range(WIDE)]},
                      {"name": "flag", "type": "categorical", "values": ["a", "b", "c"]},
                      {"name": "x", "type": "continuous", "min": 0, "max": 1},
                      {"name": "label", "type": "categorical", "values": ["no", "yes"]}]}


def table(n, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.3
    zipf = 1 / np.arange(1, WIDE + 1)
    wide = np.where(label, rng.choice(WIDE, n, p=zipf / zipf.sum()), rng.choice(WIDE, n, p=zipf[::-1] / zipf.sum()))
    return pd.DataFrame({"wide": wide.astype(str), "flag": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
                         "x": rng.random(n), "label": np.where(label, "yes", "no")})


def test_marginal_counts_and_their_sensitivity():
    data = load_table(frame=table(200), schema=SCHEMA)
    model = DPTableGAN(data.schema, latent_dim=4, seed=0)
    counts, sensitivity = model.marginal_counts(data.features, data.labels)
    assert sensitivity == math.sqrt(2)  # two categorical feature columns; the continuous one is not counted
    frame = table(200)
    for c, name in enumerate(["no", "yes"]):
        rows = frame[frame["label"] == name]
        np.testing.assert_array_equal(counts[c, :WIDE], [np.sum(rows["wide"] == str(i)) for i in range(WIDE)])
        np.testing.assert_array_equal(counts[c, WIDE:WIDE + 3], [np.sum(rows["flag"] == v) for v in "abc"])
        assert counts[c, -1] == 0
    # one record more moves the counts by exactly the sensitivity
    more, _ = model.marginal_counts(data.features[:201], data.labels[:201])
    fewer, _ = model.marginal_counts(data.features[:199], data.labels[:199])
    assert np.linalg.norm(more - fewer) == pytest.approx(sensitivity)


def test_release_draws_its_stated_noise_and_is_recorded():
    """Released from all-zero counts many times: the noise's spread is noise_multiplier x sensitivity (and not 1.1x)."""
    data = load_table(frame=table(50), schema=SCHEMA)
    model = DPTableGAN(data.schema, latent_dim=4, seed=0)
    model.marginal_counts = lambda features, labels: (np.zeros((2, 40000)), math.sqrt(2))
    captured = []
    model.set_marginals = captured.append
    ledger = PrivacyLedger()
    release_marginals(model, None, None, 3.0, noise_key=7, ledger=ledger)
    noise = captured[0].ravel()
    stated = 3.0 * math.sqrt(2)
    assert_scale(noise, stated)
    assert ledger.to_list()[0]["stddev"] == pytest.approx(stated)
    assert ledger.to_list()[0]["sensitivity"] == pytest.approx(math.sqrt(2))


def test_epsilon_composes_the_release_with_the_steps(tmp_path):
    run = str(tmp_path / "run")
    train_run(model="tabgan", dataset=table(1000), schema=SCHEMA, epsilon=2.0, epochs=2, output=run, seed=0,
              verbose=0)
    with open(os.path.join(run, "privacy.json")) as f:
        report = json.load(f)
    release = report["release_noise_multiplier"]
    # the release gets RELEASE_SHARE of the target's zCDP budget
    assert 1 / (2 * release ** 2) == pytest.approx(RELEASE_SHARE * rho_for_epsilon(2.0, report["delta"]), rel=1e-6)
    [entry] = report["releases"]
    assert entry["mechanism"] == "gaussian" and entry["stddev"] == pytest.approx(release * math.sqrt(2))
    assert report["mechanisms"] == {"dp_sgd_steps": report["steps"], "gaussian": 1}
    assert_published_keys_documented(run)

    def epsilon(*events):
        accountant = dp_accounting.rdp.RdpAccountant()
        accountant.compose(dp_accounting.ComposedDpEvent(list(events)))
        return accountant.get_epsilon(report["delta"])

    steps = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        report["sampling_probability"], dp_accounting.GaussianDpEvent(report["noise_multiplier"])), report["steps"])
    assert report["epsilon"] == pytest.approx(epsilon(dp_accounting.GaussianDpEvent(release), steps), rel=1e-9)
    assert 2.0 * 0.99 <= report["epsilon"] <= 2.0  # calibrated to the target with the release inside it
    assert epsilon(steps) < 0.97 * report["epsilon"]  # the release is not free


def test_the_generator_learns_the_released_marginals():
    """Without noise, a short fit: the anchored generator's per-class marginals of the wide column come close to the
    data's; the same fit without anchoring does not (so the test fails for a generator that ignores the release)."""
    data = load_table(frame=table(3000), schema=SCHEMA)
    distances = {}
    for weight in (1.0, 0.0):
        keras.utils.set_random_seed(0)
        model = DPTableGAN(data.schema, latent_dim=8, seed=0, marginal_weight=weight)
        settings = tfdpgen.PrivacySettings(dataset_size=3000, batch_size=128, epochs=6, noise_multiplier=0.0)
        model.compile(privacy=settings, optimizer="dp-adam", learning_rate=5e-4, noise_key=1)
        counts, _ = model.marginal_counts(data.features, data.labels)
        model.set_marginals(counts)
        model.fit(private_batches(data.features, data.labels, model.privacy, seed=1), epochs=6,
                  steps_per_epoch=model.privacy.steps_per_epoch, verbose=0)
        labels = np.arange(4000) % 2
        wide = np.array([int(v) for v in model.sample(4000, seed=0, labels=labels)["wide"].astype(str)])
        target = counts[:, :WIDE] / counts[:, :WIDE].sum(1, keepdims=True)
        distances[weight] = np.mean([0.5 * np.abs(np.bincount(wide[labels == c], minlength=WIDE) / 2000
                                                  - target[c]).sum() for c in (0, 1)])
    assert distances[1.0] < 0.15, distances  # measured 0.078 (2,000 samples per class: about 0.05 is noise)
    assert distances[0.0] > 3 * distances[1.0], distances  # measured 0.77


def test_a_killed_run_resumes_with_its_release_counted_once(tmp_path):
    """SIGKILL after a checkpoint, then the same command: the marginals come back from the checkpoint, the release is
    listed once and the epsilon is the uninterrupted run's."""
    from test_resume import kill_after_checkpoint
    table(1000).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    train = ["--model", "tabgan", "--data-dir", str(tmp_path / "rows.csv"), "--schema", str(tmp_path / "schema.json"),
             "--epochs", "8", "--epsilon", "2", "--seed", "5", "--insecure-noise-seed", "5", "--checkpoint-every", "4",
             "--quiet"]
    command = lambda output: [sys.executable, "-m", "tfdpgen.cli", "train", "--output", str(output)] + train  # noqa
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert subprocess.run(command(whole), capture_output=True, timeout=600).returncode == 0
    kill_after_checkpoint(killed, 8, command(killed))
    result = subprocess.run(command(killed), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed, uninterrupted = (json.loads((d / "privacy.json").read_text()) for d in (killed, whole))
    assert resumed["epsilon"] == uninterrupted["epsilon"] and resumed["steps"] == uninterrupted["steps"]
    assert resumed["releases"] == uninterrupted["releases"] and len(resumed["releases"]) == 1
    marginals = [tf.train.load_variable(str(d / "checkpoints"), "model/conditional_marginals/.ATTRIBUTES/VARIABLE_VALUE")
                 for d in (killed, whole)]
    np.testing.assert_array_equal(*marginals)
    assert marginals[0].sum() > 0
