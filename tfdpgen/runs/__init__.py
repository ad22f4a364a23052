"""The run wing: the only code, with the CLI, that knows a run directory (runs.directory). A run is configured
(runs.config), trained by the trainer of its family's mechanism kind (runs.dp_sgd, runs.one_shot), finished
(runs.finish), and read back to be evaluated, exported or sampled (runs.trained, runs.use)."""
from tfdpgen.runs.train import train_run
from tfdpgen.runs.trained import load_split, load_trained
from tfdpgen.runs.use import evaluate_run, export_run

__all__ = ["train_run", "evaluate_run", "export_run", "load_trained", "load_split"]
