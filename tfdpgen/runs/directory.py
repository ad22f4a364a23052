"""A run directory, the one owner of its layout: every path in it, and the rule for resuming or refusing it.

    run.json          the settings (written when the run starts)
    split.json        which records trained the model and which were held out
    .secrets.json     the noise key and sampling seed (mode 0600; only while training)
    checkpoints/      the model and optimizer, every few DP steps
    saved_model/1/    the export (assets/tfdpgen.json: its metadata)
    samples.png, privacy.txt, privacy.json (written last: its presence means the run finished)
    evaluation.json, evaluation_*.png (tfdpgen evaluate)
"""
import json
import os
import shutil
import time

from tfdpgen.data.sampling import new_seed


class RunDirectoryError(ValueError):
    """The directory cannot take this run, or holds no finished run; nothing in it was touched."""


class RunDirectory:
    CONFIG, SPLIT, SECRETS, REPORT, STATEMENT = "run.json", "split.json", ".secrets.json", "privacy.json", "privacy.txt"
    EVALUATION = "evaluation.json"

    def __init__(self, path: str):
        self.path = str(path)

    @classmethod
    def default(cls, family: str, dataset: str) -> "RunDirectory":
        return cls(os.path.join("runs", f"{family}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"))

    def file(self, *names) -> str:
        return os.path.join(self.path, *names)

    config_path = property(lambda self: self.file(self.CONFIG))
    report_path = property(lambda self: self.file(self.REPORT))
    checkpoints = property(lambda self: self.file("checkpoints"))
    export_dir = property(lambda self: self.file("saved_model", "1"))
    samples_picture = property(lambda self: self.file("samples.png"))
    evaluation_path = property(lambda self: self.file(self.EVALUATION))

    def evaluation_picture(self, kind: str) -> str:
        return self.file(f"evaluation_{kind}.png")

    # Starting, resuming or refusing.
    def resumes(self, config: dict) -> bool:
        """True when the directory holds an unfinished run of the same settings (resume), False when it is new or
        empty; anything else is refused."""
        if not self.holds_unfinished_run():
            return False
        saved = self.config()
        changed = [f"{key}: {saved.get(key)!r} -> {value!r}" for key, value in config.items() if saved.get(key) != value]
        if changed:
            raise RunDirectoryError(f"--output {self.path} holds an unfinished run with other settings "
                                    f"({'; '.join(changed)}). Resume it with its own settings, or give a new "
                                    "directory. Nothing was overwritten.")
        return True

    def holds_unfinished_run(self) -> bool:
        """True for an unfinished run, False for a new or empty directory; a finished run or other files are refused."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(f"--output {self.path} is a file; give a directory.")
        if os.path.exists(self.report_path):
            raise RunDirectoryError(f"--output {self.path} already holds a finished run (it has {self.REPORT}); give "
                                    "a new directory. Nothing was overwritten.")
        if not os.path.isdir(self.path) or not os.listdir(self.path):
            return False
        if not os.path.exists(self.config_path):
            raise RunDirectoryError(f"--output {self.path} holds files that are not a tfdpgen run; give a new or "
                                    "empty directory. Nothing was overwritten.")
        return True

    def refuse_unfinished(self, family: str) -> None:
        """One-shot runs cannot resume (their noisy releases are not kept): an unfinished run, of any settings, is
        refused."""
        if self.holds_unfinished_run():
            raise RunDirectoryError(
                f"--output {self.path} holds an unfinished {family} run. It cannot be resumed (its noisy releases were "
                "not kept), and what it released before it stopped counts against your data's budget too. Give a "
                "new directory. Nothing was overwritten.")

    def create(self, config: dict, split: dict) -> None:
        """run.json and split.json of a new run."""
        os.makedirs(self.path, exist_ok=True)
        self.write_json(self.CONFIG, config, indent=2)
        self.write_json(self.SPLIT, split)

    def secrets(self, insecure_noise_seed: int = None) -> dict:
        """The run's noise key and sampling seed: read back on resume, else drawn from OS entropy (or, for tests and
        debugging only, derived from `insecure_noise_seed`)."""
        path = self.file(self.SECRETS)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        if insecure_noise_seed is None:
            secrets = {"noise_key": new_seed(), "sampling_seed": new_seed()}
        else:
            secrets = {"noise_key": 2 * insecure_noise_seed + 1, "sampling_seed": 2 * insecure_noise_seed + 2}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(secrets, f)
        return secrets

    def delete_secrets(self) -> None:
        if os.path.exists(self.file(self.SECRETS)):
            os.remove(self.file(self.SECRETS))

    # Writing the finished run.
    def write_json(self, name: str, value: dict, indent=None) -> None:
        with open(self.file(name), "w") as f:
            json.dump(value, f, indent=indent)

    def write_statement(self, text: str) -> None:
        with open(self.file(self.STATEMENT), "w") as f:
            f.write(text)

    def write_report(self, report: dict) -> None:
        """privacy.json, last: from here on the run is finished."""
        self.write_json(self.REPORT, report, indent=2)

    def partial_export_dir(self) -> str:
        """Where the export is written before it is renamed into place; a leftover of an interrupted finish is
        removed with any export of this unfinished run."""
        partial = self.file("saved_model", ".1.partial")
        for leftover in (partial, self.export_dir):
            shutil.rmtree(leftover, ignore_errors=True)
        return partial

    # Reading a run.
    def config(self) -> dict:
        with open(self.config_path) as f:
            return json.load(f)

    def split(self) -> dict:
        with open(self.file(self.SPLIT)) as f:
            return json.load(f)

    def finished_report(self) -> dict:
        """The privacy.json of the finished run here, or one clear error saying why it is not one."""
        if not os.path.isdir(self.path):
            raise RunDirectoryError(f"--run {self.path} is not a directory: give a run directory that `tfdpgen train` "
                                    "wrote.")
        if not os.path.exists(self.config_path):
            raise RunDirectoryError(f"--run {self.path} is not a tfdpgen run (no {self.CONFIG}): give a run directory "
                                    "that `tfdpgen train` wrote.")
        if not os.path.exists(self.report_path):
            raise RunDirectoryError(f"{self.path} is not a finished tfdpgen run (no {self.REPORT}); finish training it "
                                    "first (run the same `tfdpgen train` command again to resume).")
        try:
            with open(self.report_path) as f:
                return json.load(f)
        except (OSError, ValueError) as error:
            raise RunDirectoryError(f"{self.report_path} cannot be read ({error}): the run is damaged.") from None

    def export_metadata(self) -> dict:
        path = os.path.join(self.export_dir, "assets", "tfdpgen.json")
        if not os.path.exists(path):
            raise RunDirectoryError(f"{self.path} has no saved_model/1: is it a finished tfdpgen run?")
        with open(path) as f:
            return json.load(f)
