"""Regenerate docs/api.md (from docstrings), docs/cli.md (from the argument parser), docs/benchmarks.md (its template
with every table made from benchmarks/results/*.json) and the README's block of headline figures (from the same JSON):

    .venv/bin/python docs/generate.py

tests/test_docs.py fails when the files differ from what this writes, so the references cannot drift from the code and
no figure from its results.
"""
import importlib
import importlib.util
import inspect
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(ROOT, "benchmarks", "results")
sys.path.insert(0, ROOT)

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


def results(name) -> dict:
    with open(os.path.join(RESULTS, f"{name}.json")) as f:
        return json.load(f)


def benchmark_script(name):
    """benchmarks/<name>.py as a module, for the table functions it prints with --markdown."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serving_table(found) -> str:
    lines = ["| path | request | samples/s | time per request |", "|---|---|---|---|"]
    for size, direct in found["direct"].items():
        lines.append(f"| SavedModel loaded in-process (`tf.saved_model.load`) | n = {size} | "
                     f"{direct['samples_per_second']:,.0f} | {direct['median_seconds'] * 1000:.2f} ms |")
    grpc = found["grpc"]
    lines.append(f"| gRPC `Predict` to `tfdpgen serve`, {grpc['clients']} concurrent clients x "
                 f"{grpc['requests_per_client']} requests, every reply checked ({grpc['failed']} failed of "
                 f"{grpc['requests']:,}) | n = {grpc['samples_per_request']} | {grpc['samples_per_second']:,.0f} "
                 f"({grpc['requests_per_second']:.0f} requests/s) | p50 {grpc['latency_ms_p50']:.1f} ms, p99 "
                 f"{grpc['latency_ms_p99']:.1f} ms |")
    return "\n".join(lines)


def dp2_table(found) -> str:
    configs = list(dict.fromkeys(run["config"] for run in found["runs"]))
    lines = ["| model | epsilon | " + " | ".join(configs) + " |", "|---|---|" + "---|" * len(configs)]
    for model, measure in (("classifier", "small CNN classifier, held-out accuracy"),
                           ("vae", "DP-VAE, held-out -ELBO (nats; steps to DP-SGD's final loss)")):
        for epsilon in sorted({run["target_epsilon"] for run in found["runs"] if run["model"] == model}):
            cells = []
            for config in configs:
                run = next(r for r in found["runs"] if (r["model"], r["target_epsilon"], r["config"]) ==
                           (model, epsilon, config))
                if model == "classifier":
                    cells.append(f"{run['held_out_accuracy']:.3f}")
                elif run["held_out_loss"] != run["held_out_loss"]:  # NaN
                    cells.append("diverged")
                else:
                    cells.append(f"{run['held_out_loss']:.1f} ({run['steps_to_target'] or 'never'})")
            lines.append(f"| {measure} | {epsilon:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def digits_table(found) -> str:
    lines = ["| command | accuracy | time | `samples.png` |", "|---|---|---|---|"]
    for row in found["rows"]:
        other = f" ({row['other_runs']})" if row["other_runs"] else ""
        lines.append(f"| `{row['command']}` | {row['accuracy']:.3f}{other} | {row['seconds']} s | {row['samples']} |")
    return "\n".join(lines)


def tables() -> dict:
    """Each table of docs/benchmarks.md, by the name its template's marker gives."""
    return {
        "privacy_utility": benchmark_script("privacy_utility").table(results("privacy_utility")["rows"]),
        "digits_runs": digits_table(results("digits_runs")),
        "merf_bandwidth": benchmark_script("merf_bandwidth").markdown(results("merf_bandwidth")["rows"]),
        "tabular_utility": benchmark_script("tabular_utility").markdown(results("tabular_utility")["rows"]),
        "marginal_independence": benchmark_script("marginal_independence").markdown(
            results("marginal_independence")["rows"]),
        "table_scale": benchmark_script("table_scale").markdown(results("table_scale")["rows"]),
        "serving_throughput": serving_table(results("serving_throughput")),
        "dp_step_speed": benchmark_script("dp_step_speed").markdown(results("dp_step_speed")["results"]),
        "dp2_convergence": dp2_table(results("dp2_convergence")),
    }


def benchmarks() -> str:
    with open(os.path.join(HERE, "benchmarks.template.md")) as f:
        template = f.read()
    made = tables()
    return re.sub(r"<!-- table: (\w+) -->", lambda found: made[found.group(1)], template)


def mean_tstr(rows, family, epsilon, settings=None):
    group = [r for r in rows if r["family"] == family and r["target_epsilon"] == epsilon
             and (r.get("settings") or None) == settings]
    key = "real_accuracy" if family == "dpsgd" else "tstr_accuracy"
    return sum(r[key] for r in group) / len(group), len(group)


def headline() -> str:
    """The README's table: one figure per family, from the benchmarks' JSON (docs/benchmarks.md has the rest)."""
    images = results("privacy_utility")["rows"]

    def image_figure(family, settings=None):
        cells = []
        for epsilon in (10.0, 1.0):
            value, seeds = mean_tstr(images, family, epsilon, settings)
            cells.append(f"{value:.3f} at epsilon {epsilon:g}" + (f" ({seeds} seeds)" if seeds > 1 else ""))
        return ("held-out accuracy " if family == "dpsgd" else "TSTR ") + ", ".join(cells)

    summary = {(s["method"], s["epsilon"]): s for s in benchmark_script("tabular_utility").summarize(
        results("tabular_utility")["rows"])}

    def table_figure(method):
        s = summary[(method, 1.0)]
        figure = f"boosted-trees AUC {s['gbt_auc']:.3f} at epsilon 1 ({s['seeds']} seeds)"
        if s.get("tv_2way_mean_train") is not None:
            figure += f", 2-way TV to the training rows {s['tv_2way_mean_train']:.3f}"
        return figure

    rows = [
        ("labelled images", "`merf`: DP-MERF, one noisy release of random-feature mean embeddings", image_figure("merf")),
        ("labelled images", "`sinkhorn`: DP-Sinkhorn, a generator trained on an optimal-transport loss",
         image_figure("sinkhorn")),
        ("labelled images", "`vae`: conditional VAE (the default run)", image_figure("vae")),
        ("labelled images", "`diffusion --pretrain digits`: DPDM-style denoiser, pretrained on public digits",
         image_figure("diffusion", {"pretrain": "digits"})),
        ("labelled images", "`cgan`: conditional GAN (each class collapses to one pattern under DP)",
         image_figure("cgan")),
        ("images: the bar", "a small CNN trained with DP-SGD on the real images", image_figure("dpsgd")),
        ("tables", "`marginal`: AIM's selected marginals, a fitted mixture of products", table_figure("marginal")),
        ("tables", "`tabgan`: conditional GAN for tables", table_figure("tabgan")),
        ("tables: the bar", "MST (mbi 2.0) at the same privacy", table_figure("mst")),
    ]
    lines = ["| data | `--model` | headline (MNIST: 8,000 private images; Adult: 40,000 private rows; delta 1e-5) |",
             "|---|---|---|"] + [f"| {data} | {family} | {figure} |" for data, family, figure in rows]
    return "\n".join(lines)


README_BLOCK = re.compile(r"(<!-- headline figures: generated by docs/generate.py -->\n)(?:.*?\n)?(<!-- end -->)", re.S)


def readme() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    return README_BLOCK.sub(lambda found: found.group(1) + headline() + "\n" + found.group(2), text)


def main():
    for path, text in ((os.path.join(HERE, "api.md"), api()), (os.path.join(HERE, "cli.md"), cli()),
                       (os.path.join(HERE, "benchmarks.md"), benchmarks()),
                       (os.path.join(ROOT, "README.md"), readme())):
        with open(path, "w") as f:
            f.write(text)
        print("wrote", path)


if __name__ == "__main__":
    main()
