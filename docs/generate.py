"""Regenerate docs/api.md (from docstrings) and docs/cli.md (from the argument parser):

    .venv/bin/python docs/generate.py

tests/test_docs.py fails when the files differ from what this writes, so the references cannot drift from the code.
"""
import importlib
import inspect
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

API = [  # module -> its public names, in reading order
    ("tfdpgen.privacy.settings", ["PrivacySettings", "PrivacySettingsError", "default_delta"]),
    ("tfdpgen.privacy.ledger", ["PrivacyLedger", "epsilon_of"]),
    ("tfdpgen.privacy.accounting", ["compute_epsilon", "calibrate_noise_multiplier", "max_steps_within",
                                    "sum_noise_multiplier", "rho_for_epsilon", "epsilon_for_rho", "ReleaseBudget"]),
    ("tfdpgen.privacy.report", ["ledger_report", "privacy_report", "privacy_statement"]),
    ("tfdpgen.privacy.budget", ["PrivacyBudget", "PrivacyBudgetExhausted"]),
    ("tfdpgen.privacy.noise", ["GaussianNoise"]),
    ("tfdpgen.privacy.gradients", ["private_gradients"]),
    ("tfdpgen.privacy.adaptive_clipping", ["AdaptiveClipNorm"]),
    ("tfdpgen.privacy.dp2", ["DP2Optimizer"]),
    ("tfdpgen.privacy.optimizers", ["make_optimizer"]),
    ("tfdpgen.privacy.releases", ["gaussian_release", "exponential_choice"]),
    ("tfdpgen.privacy.aim", ["run_aim", "measure_exactly", "Measurement"]),
    ("tfdpgen.privacy.clipping.fast", ["FastClipping", "Recorder"]),
    ("tfdpgen.privacy.clipping.vectorized", ["VectorizedClipping"]),
    ("tfdpgen.models.base", ["DPGenerativeModel"]),
    ("tfdpgen.models.vae", ["DPVAE"]),
    ("tfdpgen.models.gan", ["DPGAN"]),
    ("tfdpgen.models.tabular_gan", ["DPTableGAN"]),
    ("tfdpgen.models.diffusion", ["DPDiffusion"]),
    ("tfdpgen.models.marginal", ["DPMarginalTable"]),
    ("tfdpgen.models.sinkhorn", ["DPSinkhorn"]),
    ("tfdpgen.models.merf", ["DPMERF"]),
    ("tfdpgen.data.images", ["load_images", "read_idx_dir", "DataError"]),
    ("tfdpgen.data.tables", ["TableSchema", "load_table", "encode", "table_codes"]),
    ("tfdpgen.data.sampling", ["private_batches", "distributed_private_batches"]),
    ("tfdpgen.models.registry", ["Family", "Option", "register", "family"]),
    ("tfdpgen.runs.train", ["train_run"]),
    ("tfdpgen.runs.use", ["evaluate_run", "export_run"]),
    ("tfdpgen.runs.trained", ["load_trained", "load_split"]),
    ("tfdpgen.runs.config", ["RunConfig"]),
    ("tfdpgen.runs.directory", ["RunDirectory"]),
    ("tfdpgen.runs.checkpoints", ["RunCheckpoint"]),
    ("tfdpgen.runs.strategies", ["make_strategy"]),
    ("tfdpgen.export.saved_model", ["export_sampler"]),
    ("tfdpgen.export.serving_layout", ["export_version", "write_warmup_requests"]),
    ("tfdpgen.serving.client", ["SamplerClient", "ServingError"]),
    ("tfdpgen.serving.local_server", ["LocalServer"]),
    ("tfdpgen.evaluation.evaluate", ["evaluate"]),
    ("tfdpgen.evaluation.images", ["tstr_accuracy", "frechet_distance", "precision_recall"]),
    ("tfdpgen.evaluation.tables", ["marginal_distances", "association_difference", "ml_efficacy"]),
    ("tfdpgen.evaluation.audits", ["attack_auc", "empirical_epsilon", "memorization"]),
]


def describe(name, obj, level="###"):
    doc = inspect.getdoc(obj) or "(no docstring)"
    try:
        signature = str(inspect.signature(obj))
    except (TypeError, ValueError):
        signature = ""
    kind = "class" if inspect.isclass(obj) else "def"
    lines = [f"{level} `{name}`", "", f"```python\n{kind} {name}{signature}\n```", "", doc, ""]
    if inspect.isclass(obj):
        for member, value in vars(obj).items():
            if member.startswith("_") or not (inspect.isfunction(value) or isinstance(value, property)):
                continue
            if isinstance(value, property):
                lines += [f"- `{name}.{member}` (property): {(inspect.getdoc(value) or '').splitlines()[0] if inspect.getdoc(value) else ''}"]
            elif inspect.getdoc(value):
                lines += [f"- `{name}.{member}{inspect.signature(value)}`: {inspect.getdoc(value).splitlines()[0]}"]
        lines.append("")
    return lines


def api() -> str:
    import tfdpgen  # noqa: F401
    lines = ["# API reference", "", "Generated from the docstrings by `docs/generate.py`; do not edit by hand.", ""]
    for module_name, names in API:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", "", (inspect.getdoc(module) or "").strip(), ""]
        for name in names:
            lines += describe(name, getattr(module, name))
    return "\n".join(lines).rstrip() + "\n"


def cli() -> str:
    os.environ["COLUMNS"] = "110"  # argparse wraps to the terminal width: fix it
    from tfdpgen.cli import build_parser
    parser = build_parser()
    lines = ["# Command-line reference", "", "Generated from the argument parser by `docs/generate.py`.", "",
             "```", parser.format_help().rstrip(), "```", ""]
    commands = next(a for a in parser._actions if a.dest == "command")
    for name, sub in commands.choices.items():
        lines += [f"## `tfdpgen {name}`", "", "```", sub.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def main():
    for name, text in (("api.md", api()), ("cli.md", cli())):
        with open(os.path.join(HERE, name), "w") as f:
            f.write(text)
        print("wrote", os.path.join(HERE, name))


if __name__ == "__main__":
    main()
