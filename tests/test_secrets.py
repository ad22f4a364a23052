"""No secret in a run: `--seed` fixes the weights, never the DP noise or the sampling, and nothing a finished run leaves
(run.json, split.json, privacy.json, checkpoints, the SavedModel and its assets) lets anyone regenerate the noise."""
import json

import numpy as np
import pytest
import tensorflow as tf

from tfdpgen import cli
from tfdpgen.runs.directory import RunDirectory

MAKE_SECRETS = RunDirectory.secrets


def train(monkeypatch, output, *flags):
    """Train one epoch through the CLI; return the secrets the run drew (read where they are made)."""
    drawn = {}

    def recording(run, insecure_noise_seed=None):
        drawn.update(MAKE_SECRETS(run, insecure_noise_seed))
        return dict(drawn)

    monkeypatch.setattr(RunDirectory, "secrets", recording)
    assert cli.main(["train", "--output", str(output), "--epochs", "1", "--quiet", *flags]) == 0
    return drawn


def encodings(value: int):
    """The ways a number can sit in a file: decimal and hex text, 8 bytes either endian, a protobuf varint."""
    varint, rest = bytearray(), value
    while True:
        varint.append((rest & 0x7F) | (0x80 if rest > 0x7F else 0))
        rest >>= 7
        if not rest:
            break
    return [str(value).encode(), format(value, "x").encode(), value.to_bytes(8, "little"), value.to_bytes(8, "big"),
            bytes(varint)]


def files_holding(run_dir, values):
    hits = []
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits += [(str(path.relative_to(run_dir)), value) for value in values
                 if any(code in data for code in encodings(value))]
    return hits


def secret_values(secrets):
    key, seed = secrets["noise_key"], secrets["sampling_seed"]
    return [key, seed, (key + 1) % 2**63]  # (key + 1): adaptive clipping's count noise


def initial_weights(run_dir):
    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / "ckpt-0"))
    names = sorted(name for name in reader.get_variable_to_shape_map() if "/net" in name or "encoder" in name
                   or "decoder" in name)
    return {name: reader.get_tensor(name) for name in names if "OPTIMIZER" not in name}


def test_seed_fixes_weights_but_never_the_noise_and_no_file_holds_the_secrets(tmp_path, monkeypatch):
    first = train(monkeypatch, tmp_path / "a", "--seed", "7")
    second = train(monkeypatch, tmp_path / "b", "--seed", "7")
    a, b = initial_weights(tmp_path / "a"), initial_weights(tmp_path / "b")
    assert a and a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # --seed: same weights
    assert first["noise_key"] != second["noise_key"] and first["sampling_seed"] != second["sampling_seed"]
    for run, secrets in ((tmp_path / "a", first), (tmp_path / "b", second)):
        assert not (run / ".secrets.json").exists()
        assert files_holding(run, secret_values(secrets)) == []
        report = json.loads((run / "privacy.json").read_text())
        assert report["reproducible_noise"] is False and "warning" not in report


def test_the_files_scan_finds_a_secret_where_one_is_left(tmp_path, monkeypatch):
    """The scan above can fail: a run directory that kept its secrets file is caught."""
    monkeypatch.setattr(RunDirectory, "delete_secrets", lambda run: None)
    secrets = train(monkeypatch, tmp_path / "kept")
    assert (tmp_path / "kept" / ".secrets.json").exists()
    assert {path for path, _ in files_holding(tmp_path / "kept", secret_values(secrets))} == {".secrets.json"}


def test_insecure_noise_seed_repeats_the_noise_and_every_output_says_so(tmp_path, monkeypatch, capsys):
    seed = 123_456_789_012_345
    first = train(monkeypatch, tmp_path / "a", "--insecure-noise-seed", str(seed))
    assert "--insecure-noise-seed" in capsys.readouterr().err
    second = train(monkeypatch, tmp_path / "b", "--insecure-noise-seed", str(seed))
    assert first == second
    run = tmp_path / "a"
    assert files_holding(run, [seed] + secret_values(first)) == []  # the seed itself is not written either
    assert json.loads((run / "run.json").read_text())["insecure_noise_seed_given"] is True
    report = json.loads((run / "privacy.json").read_text())
    assert report["reproducible_noise"] is True and "only while that seed stays secret" in report["warning"]
    metadata = json.loads((run / "saved_model" / "1" / "assets" / "tfdpgen.json").read_text())
    assert metadata["privacy"]["warning"] == report["warning"]
    capsys.readouterr()
    assert cli.main(["export", "--run", str(run), "--model-name", "m", "--base-path", str(tmp_path / "base")]) == 0
    assert "only while that seed stays secret" in capsys.readouterr().err
    exported = json.loads((tmp_path / "base" / "m" / "1" / "assets" / "tfdpgen.json").read_text())
    assert exported["privacy"]["reproducible_noise"] is True
    assert files_holding(tmp_path / "base", [seed] + secret_values(first)) == []  # the export, warm-up requests too
    assert cli.main(["evaluate", "--run", str(run), "--n-samples", "200"]) == 0
    assert "only while that seed stays secret" in capsys.readouterr().err
    assert json.loads((run / "evaluation.json").read_text())["privacy"]["reproducible_noise"] is True
