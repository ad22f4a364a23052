"""Every malformed flag or file ends with exit code 2 and one line naming it and the fix, before any training, and
leaves what is on disk as it was: `tfdpgen train`, `evaluate`, `export`, `sample` and `serve`, by a table of cases and
by hypothesis over invalid numbers."""
import gzip
import hashlib
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tfdpgen import cli


def snapshot(folder):
    """{relative path: sha256} of every file under `folder` (empty if it does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv):
    """Run the command; return its single stderr line after checking exit code 2, one line, no traceback."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (argv, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("tfdpgen") and "Traceback" not in err, (argv, err[-2000:])
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Damaged inputs: a truncated IDX file, a schema with broken JSON."""
    folder = tmp_path_factory.mktemp("files")
    (folder / "mnist").mkdir()
    whole = gzip.compress(bytes([0, 0, 8, 3]) + (50).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(50 * 784))
    (folder / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(whole[:len(whole) // 2])
    (folder / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(bytes([0, 0, 8, 1]) + (50).to_bytes(4, "big") + bytes(50)))
    (folder / "broken.json").write_text('{"columns": [\n')
    (folder / "table").mkdir()
    (folder / "table" / "rows.csv").write_text("a,b\n1,x\n")
    (folder / "not_a_schema.json").write_text('{"columns": 3}')
    return folder


TRAIN_CASES = [
    (["--learning-rate", "-1"], "--learning-rate must be a positive number"),
    (["--learning-rate", "0"], "--learning-rate must be a positive number"),
    (["--learning-rate", "nan"], "--learning-rate must be a positive number"),
    (["--optimizer", "dp2-rmsprop", "--dp2-learning-rate", "-1"], "--dp2-learning-rate must be a positive"),
    (["--l2-norm-clip", "0"], "--l2-norm-clip must be a positive"),
    (["--l2-norm-clip", "inf"], "--l2-norm-clip must be a positive"),
    (["--epsilon", "-1"], "--epsilon must be a positive"),
    (["--noise-multiplier", "-1"], "--noise-multiplier must be >= 0"),
    (["--delta", "0.001"], "--delta must be in (0, 1/N)"),
    (["--noise-multiplier", "0.5", "--epsilon", "0.01"], "cannot be reached"),
    (["--batch-size", "5000"], "--batch-size must be an integer in [1, dataset_size=1438]"),
    (["--epochs", "0"], "--epochs must be positive"),
    (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--model", "gpt"], "argument --model: invalid choice: 'gpt'"),
    (["--holdout", "1.5"], "--holdout must be a fraction in [0, 1)"),
    (["--holdout", "half"], "a fraction like 0.2 or a count like 2000"),
    (["--seed", "-5"], "--seed must be a whole number in [0, 2**32)"),
    (["--insecure-noise-seed", "-1"], "--insecure-noise-seed must be a whole number"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
    (["--strategy", "mirrored", "--devices", "0"], "--devices must be at least 1"),
    (["--data-dir", "/nonexistent"], "is not a directory"),
    (["--data-dir", "{files}/mnist"], "train-images-idx3-ubyte.gz cannot be read (EOFError"),
    (["--model", "tabgan", "--data-dir", "{files}/table", "--schema", "{files}/broken.json"],
     "--schema {files}/broken.json is not valid JSON"),
    (["--model", "tabgan", "--data-dir", "{files}/table", "--schema", "{files}/missing.json"],
     "--schema {files}/missing.json cannot be read"),
    (["--model", "tabgan", "--data-dir", "{files}/table", "--schema", "{files}/not_a_schema.json"],
     "--schema {files}/not_a_schema.json: a table schema needs"),
    (["--clipping", "adaptive", "--target-quantile", "1.5"], "--target-quantile must be in (0, 1)"),
    (["--clipping", "adaptive", "--noise-multiplier", "9", "--batch-size", "64"],
     "noise_multiplier < 2 * clipped_count_stddev"),
    (["--optimizer", "dp2-rmsprop", "--dp2-delay", "0"], "delay must be a whole number of steps >= 1"),
    (["--optimizer", "dp2-rmsprop", "--engine", "vectorized"], "use engine='fast'"),
    (["--optimizer", "dp2-rmsprop", "--clipping", "adaptive"], "DP^2 clips with two norms"),
    (["--model", "merf", "--epochs", "3"], "--epochs is a DP-SGD setting; the merf family"),
    (["--model", "merf", "--noise-multiplier", "1.0"], "calibrates its noise from --epsilon"),
    (["--model", "merf", "--fit-steps", "0"], "--fit-steps must be a whole number of at least 1"),
    (["--model", "vae", "--frequencies", "8"], "settings of DP-MERF"),
    (["--model", "vae", "--pretrain", "mnist"], "--pretrain is available for diffusion, not vae"),
    (["--model", "diffusion", "--pretrain", "digits"], "--pretrain digits is the data set being trained on"),
    (["--model", "diffusion", "--pretrain-epochs", "3"], "--pretrain-epochs is a setting of --pretrain"),
    (["--model", "diffusion", "--pretrain", "mnist", "--pretrain-epochs", "0"],
     "--pretrain-epochs must be a whole number of at least 1"),
]


@pytest.mark.parametrize("argv, message", TRAIN_CASES, ids=[" ".join(argv)[:60] for argv, _ in TRAIN_CASES])
def test_train_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, files, argv, message):
    output = tmp_path / "run"
    argv = [arg.replace("{files}", str(files)) for arg in argv]
    line = one_line_error(capsys, ["train", "--output", str(output), "--quiet"] + argv)
    assert message.replace("{files}", str(files)) in line
    assert not output.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["train", "--output", str(run), "--epochs", "1", "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def unconditional_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("unconditional") / "run"
    assert cli.main(["train", "--model", "gan", "--output", str(run), "--epochs", "1", "--quiet"]) == 0
    return run


def test_labels_for_an_unconditional_model_are_refused_in_one_line(capsys, unconditional_run):
    before = snapshot(unconditional_run)
    line = one_line_error(capsys, ["sample", "--run", str(unconditional_run), "--labels", "3"])
    assert "--labels needs a conditional model" in line
    assert snapshot(unconditional_run) == before


RUN_CASES = [
    (["sample", "--run", "{run}", "-n", "-3"], "--num-samples must be at least 1, got -3"),
    (["sample", "--run", "{run}", "-n", "0"], "--num-samples must be at least 1"),
    (["sample", "--run", "{run}", "-n", "100000000"], "this model answers 1 to 10000 per request"),
    (["sample", "--run", "{run}", "--labels", "3", "12"], "--labels must be in [0, 10)"),
    (["sample", "--run", "{run}", "-n", "20", "--labels", "3", "4"], "-n 20 and 2 --labels disagree"),
    (["sample", "--run", "{run}", "--out", "{tmp}/samples.txt"], "--out must end in .npy, .csv or .png"),
    (["sample", "--run", "{run}", "--out", "{tmp}/no/such/folder/samples.png"], "does not exist"),
    (["sample", "--run", "{tmp}/missing"], "--run {tmp}/missing is not a directory"),
    (["sample", "--server", "localhost:1"], "--server needs --model-name"),
    (["sample", "--run", "{run}", "-n", "lots"], "argument -n/--num-samples: invalid int value"),
    (["sample", "--server", "127.0.0.1:1", "--model-name", "m"], "cannot reach 127.0.0.1:1"),
    (["sample", "--server", "127.0.0.1:1", "--model-name", "m", "--rest"], "cannot reach http://127.0.0.1:1"),
    (["serve", "--path", "{tmp}/missing", "--model-name", "m"], "--path {tmp}/missing holds no SavedModel"),
    (["evaluate", "--run", "{tmp}/missing"], "--run {tmp}/missing is not a directory"),
    (["evaluate", "--run", "{tmp}"], "is not a tfdpgen run (no run.json)"),
    (["evaluate", "--run", "{run}", "--n-samples", "-1"], "--n-samples must be a whole number in [1, 100000]"),
    (["evaluate", "--run", "{run}", "--real-test", "{tmp}/missing"], "--real-test {tmp}/missing is neither"),
    (["evaluate"], "the following arguments are required: --run"),
    (["export", "--run", "{tmp}/missing", "--model-name", "m", "--base-path", "{tmp}/base"], "is not a directory"),
    (["export", "--run", "{run}", "--model-name", "a/b", "--base-path", "{tmp}/base"], "--model-name must be a plain"),
    (["export", "--run", "{run}", "--model-name", "m", "--base-path", "{tmp}/file"], "--base-path {tmp}/file is a file"),
    (["export", "--run", "{run}", "--model-name", "m", "--base-path", "{tmp}/base", "--max-samples", "0"],
     "--max-samples must be a whole number >= 1"),
]


@pytest.mark.parametrize("argv, message", RUN_CASES, ids=[" ".join(argv)[:60] for argv, _ in RUN_CASES])
def test_evaluate_export_sample_refuse_bad_input_in_one_line_and_touch_nothing(tmp_path, capsys, finished_run, argv,
                                                                                message):
    (tmp_path / "file").write_text("not a folder")
    fill = {"{run}": str(finished_run), "{tmp}": str(tmp_path)}
    argv = [fill.get(arg, arg) for arg in argv]
    for key, value in fill.items():
        argv = [arg.replace(key, value) for arg in argv]
        message = message.replace(key, value)
    before, around = snapshot(finished_run), snapshot(tmp_path)
    assert message in one_line_error(capsys, argv)
    assert snapshot(finished_run) == before and snapshot(tmp_path) == around


NOT_POSITIVE = st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flag=st.sampled_from(["--learning-rate", "--l2-norm-clip", "--epsilon"]), value=NOT_POSITIVE)
def test_any_non_positive_or_non_finite_rate_clip_or_epsilon_is_refused(tmp_path, capsys, flag, value):
    output = tmp_path / "run"
    line = one_line_error(capsys, ["train", "--output", str(output), "--quiet", f"{flag}={value!r}"])
    assert flag in line
    assert not output.exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.one_of(st.integers(max_value=0), st.integers(min_value=10_001, max_value=2**31 - 1)))
def test_any_sample_count_outside_the_model_range_is_refused(capsys, finished_run, count):
    before = snapshot(finished_run)
    line = one_line_error(capsys, ["sample", "--run", str(finished_run), f"--num-samples={count}"])
    assert "--num-samples" in line
    assert snapshot(finished_run) == before
