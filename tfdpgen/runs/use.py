"""What is done with a finished run: evaluate it, export it for TensorFlow Serving, sample from its export. The run is
read here; evaluation/, export/ and serving/ compute and write what they are handed."""
import os

from tfdpgen.data.images import DATASETS
from tfdpgen.data.tables import DATAFRAME, is_frame
from tfdpgen.evaluation.evaluate import evaluate, summary
from tfdpgen.export.saved_model import DEFAULT_MAX_SAMPLES
from tfdpgen.export.serving_layout import export_version
from tfdpgen.models.registry import TABLE, family as find_family
from tfdpgen.runs.directory import RunDirectory
from tfdpgen.runs.split import load_records
from tfdpgen.runs.trained import load_split, load_trained


def real_test_records(family, real_test, schema):
    """(records, labels) of other real records to score against: images as a data set name or a folder of IDX files;
    tables as a CSV (a file or a folder holding one) or a DataFrame."""
    if family.data == TABLE:
        frame = real_test if is_frame(real_test) else None
        records, labels, _ = load_records(family, DATAFRAME if frame is not None else "csv",
                                          None if frame is not None else real_test, schema, frame)
        return records, labels
    if not os.path.isdir(real_test) and real_test not in DATASETS:
        raise ValueError(f"--real-test {real_test} is neither a folder of IDX files nor a data set name "
                         f"({', '.join(DATASETS)}).")
    folder = os.path.isdir(real_test)
    records, labels, _ = load_records(family, None if folder else real_test, real_test if folder else None, None)
    return records, labels


def evaluate_run(run_dir: str, n_samples: int = None, real_test=None, verbose: bool = True, data=None) -> dict:
    """Evaluate the finished run in `run_dir`; writes evaluation.json and pictures there, returns the dict.

    A run that trained on a DataFrame takes it again as `data`; `real_test` (other real records to score against)
    may then be a DataFrame too."""
    run = RunDirectory(run_dir)
    report = run.finished_report()
    if n_samples is not None and not (isinstance(n_samples, int) and 1 <= n_samples <= 100_000):
        raise ValueError(f"--n-samples must be a whole number in [1, 100000], got {n_samples!r}.")
    config = run.config()
    family = find_family(config["model"])
    train, train_labels, test, test_labels, data, split = load_split(run_dir, data)
    if real_test is not None:
        test, test_labels = real_test_records(family, real_test, data.schema if family.data == TABLE else None)
    if len(test) < 20:
        raise ValueError(f"{run_dir} held out {len(test)} records: evaluation needs at least 20 (train with "
                         "--holdout, or give --real-test).")
    model, _ = load_trained(run_dir)
    result = evaluate(model, family.name, family.data == TABLE, data, train, train_labels, test, test_labels, report,
                      split["order"], run.evaluation_picture, n_samples)
    result = {"run": os.path.abspath(run_dir), "family": family.name, "dataset": config["dataset"], **result}
    run.write_json(run.EVALUATION, result, indent=2)
    if verbose:
        print(summary(result))
    return result


def export_run(run_dir: str, model_name: str, base_path: str, max_samples: int = DEFAULT_MAX_SAMPLES) -> str:
    """Export the finished run in `run_dir` as the next version of `base_path/model_name`; returns its path."""
    model, metadata = load_trained(run_dir)
    metadata["privacy"] = RunDirectory(run_dir).finished_report()
    return export_version(model, metadata, model_name, base_path, max_samples)


def run_export_dir(run_dir: str) -> str:
    """The SavedModel of the finished run in `run_dir` (for sampling without a server)."""
    run = RunDirectory(run_dir)
    run.finished_report()
    run.export_metadata()  # one clear error where there is none
    return run.export_dir


def reproducible_noise_warning(run_dir: str):
    """privacy.json's warning of a run trained with --insecure-noise-seed, or None."""
    return RunDirectory(run_dir).finished_report().get("warning")
