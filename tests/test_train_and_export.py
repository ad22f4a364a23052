"""`tfdpgen train` end to end: the files it writes, privacy.json against dp_accounting, the SavedModel in plain TF."""
import json
import subprocess
import sys
import textwrap

import dp_accounting
import numpy as np
import pytest

from tfdpgen import cli
from toys import assert_published_keys_documented, write_idx

LOADER = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    assert "tfdpgen" not in sys.modules and "tf_keras" not in sys.modules
    loaded = tf.saved_model.load(sys.argv[1])
    fn = loaded.signatures["serving_default"]
    out = {}
    for n, seed in [(5, 11), (5, 11), (5, 12), (1, 0)]:
        samples = fn(num_samples=tf.constant(n, tf.int32), seed=tf.constant(seed, tf.int64))["samples"]
        out.setdefault("runs", []).append({"shape": samples.shape.as_list(), "dtype": samples.dtype.name,
                                           "values": samples.numpy().ravel().tolist()})
    try:
        fn(num_samples=tf.constant(10_001, tf.int32), seed=tf.constant(0, tf.int64))
        out["oversized"] = "accepted"
    except tf.errors.InvalidArgumentError as error:
        out["oversized"] = error.message
    out["inputs"] = sorted(fn.structured_input_signature[1])
    out["outputs"] = sorted(fn.structured_outputs)
    out["keras"] = "tf_keras" in sys.modules
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "vae-digits"
    assert cli.main(["train", "--epochs", "3", "--epsilon", "2", "--output", str(output), "--quiet"]) == 0
    return output


def test_run_writes_its_files(run_dir):
    for name in ("privacy.json", "privacy.txt", "samples.png", "run.json", "saved_model/1/saved_model.pb"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_published_keys_documented(run_dir)


def test_privacy_json_equals_dp_accounting_from_its_own_fields(run_dir):
    report = json.loads((run_dir / "privacy.json").read_text())
    for field in ("epsilon", "delta", "noise_multiplier", "l2_norm_clip", "steps", "sampling", "sampling_probability",
                  "accountant", "dataset_size", "batch_size", "epochs", "target_epsilon"):
        assert field in report, field
    # digits: 1,797 images, 20% (359) held out, 1,438 trained on; the VAE's default expected batch is 256
    assert report["dataset_size"] == 1438 and report["batch_size"] == 256 and report["sampling"] == "poisson"
    assert report["steps"] == 3 * round(1438 / 256) and report["delta"] < 1 / 1438
    assert report["sampling_probability"] == pytest.approx(256 / 1438)
    split = json.loads((run_dir / "split.json").read_text())
    assert split["records"] == 1797 and split["order"] == "random" and len(set(split["held_out_indices"])) == 359
    assert split["held_out_indices"] != list(range(1438, 1797))
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(
        report["sampling_probability"], dp_accounting.GaussianDpEvent(report["noise_multiplier"])), report["steps"])
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(report["delta"]), rel=1e-9)
    assert 0.99 * 2 <= report["epsilon"] <= 2


def test_saved_model_runs_in_plain_tensorflow(run_dir, subprocess_env):
    result = subprocess.run([sys.executable, "-c", LOADER, str(run_dir / "saved_model" / "1")], env=subprocess_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["inputs"] == ["num_samples", "seed"] and out["outputs"] == ["samples"] and not out["keras"]
    first, same, other, single = out["runs"]
    assert first["shape"] == [5, 8, 8, 1] and first["dtype"] == "float32" and single["shape"] == [1, 8, 8, 1]
    assert first["values"] == same["values"] and first["values"] != other["values"]
    assert 0 <= min(first["values"]) and max(first["values"]) <= 1
    assert "max_samples=10000" in out["oversized"]


def test_finished_run_is_never_overwritten(run_dir, capsys):
    before = (run_dir / "privacy.json").read_bytes()
    assert cli.main(["train", "--epochs", "1", "--output", str(run_dir), "--quiet"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert (run_dir / "privacy.json").read_bytes() == before


@pytest.mark.parametrize("argv, fields", [
    (["--clipping", "adaptive", "--target-quantile", "0.7"],
     {"clipping": "adaptive", "target_quantile": 0.7, "optimizer": "dp-adam", "dp2_delay": None}),
    (["--optimizer", "dp2-rmsprop", "--dp2-delay", "4"],
     {"clipping": "fixed", "target_quantile": None, "optimizer": "dp2-rmsprop", "dp2_delay": 4}),
])
def test_adaptive_clipping_and_dp2_runs_record_their_settings(tmp_path, argv, fields):
    output = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--batch-size", "64", "--epsilon", "2", "--output", str(output),
                     "--quiet"] + argv) == 0
    report = json.loads((output / "privacy.json").read_text())
    assert {key: report[key] for key in fields} == fields
    assert_published_keys_documented(output)
    assert report["epsilon"] <= 2.0
    if fields["clipping"] == "adaptive":
        z, sigma_b = report["noise_multiplier"], 64 / 20
        assert report["effective_noise_multiplier"] == pytest.approx((z ** -2 - (2 * sigma_b) ** -2) ** -0.5)
        assert report["final_l2_norm_clip"] != pytest.approx(1.0)
    else:
        assert report["effective_noise_multiplier"] == report["noise_multiplier"]


@pytest.mark.parametrize("images, message", [
    (np.zeros((0, 28, 28)), "empty"),
    (np.zeros((10, 10, 10)), "DPVAE supports image shapes"),
])
def test_bad_data_files_fail_clearly(tmp_path, capsys, images, message):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(len(images)))
    assert cli.main(["train", "--data-dir", str(tmp_path), "--output", str(tmp_path / "run"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_nan_and_unscaled_images_are_rejected():
    from tfdpgen.data.images import DataError, validate_images
    images = np.zeros((4, 8, 8, 1), "float32")
    images[2, 3, 3, 0] = np.nan
    with pytest.raises(DataError, match="1 images hold NaN"):
        validate_images(images)
    with pytest.raises(DataError, match="divide uint8 images by 255"):
        validate_images(np.full((4, 8, 8, 1), 255.0))
