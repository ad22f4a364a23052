"""What synthetic images are worth: every conditional image family at epsilon 1 and 10 (delta 1e-5) and without DP,
beside a classifier trained with DP-SGD on the real images at the same epsilons.

    .venv/bin/python benchmarks/privacy_utility.py                                # everything (hours on 2 cores)
    .venv/bin/python benchmarks/privacy_utility.py --families merf --epsilons 1 10   # one part; other rows are kept
    .venv/bin/python benchmarks/privacy_utility.py --families dpsgd                # the DP-SGD reference rows
    .venv/bin/python benchmarks/privacy_utility.py --quick                         # digits, a smoke run

Data: the MNIST private split of ../shared/data (images 0..7,999 train, the last 2,000 held out, as its README says).
Each family trains with its own recipe (`tfdpgen train --model F`, its registry record's recipe, models.registry), then:
- TSTR: 10,000 class-balanced synthetic images train the evaluation's small CNN; its epoch (of at most 20) is chosen
  on a tenth of the *synthetic* images, and the real held-out images are touched once, for the final score
  (DPImageBench's protocol: choosing on the real test set is not DP and overstates utility);
- `tfdpgen evaluate`: Frechet distance in that CNN's features and the membership audit (empirical epsilon).
The DP-SGD reference ("dpsgd") is a small tanh CNN (Papernot et al.'s tempered activations, as
benchmarks/dp2_convergence.py) trained with DP-SGD on the 8,000 real images at the same epsilon, scored on the same
held-out images: the bar synthetic data must approach. Writes benchmarks/results/privacy_utility.json (rows of other
families, epsilons and seeds already there are kept), privacy_utility.png (TSTR against epsilon) and
privacy_utility_samples.png (each family's epsilon-10 samples), and prints a table.
"""
import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

# TensorFlow leaves oneDNN off on AMD CPUs; on this 2-core machine it halves the convolutional families' step time
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tfdpgen  # noqa: E402
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfdpgen.data.images import load_images, read_idx_dir  # noqa: E402
from tfdpgen.data.sampling import private_batches  # noqa: E402
from tfdpgen.evaluation.images import tstr_accuracy  # noqa: E402
from tfdpgen.runs import evaluate_run, load_trained, train_run  # noqa: E402

IMAGE_FAMILIES = ("vae", "cgan", "diffusion", "sinkhorn", "merf")
TSTR_SAMPLES = 10_000
# What the pictures show of a family where it is not its recipe: the settings the README recommends for it.
SHOWN = {"diffusion": {"pretrain": "digits"}}
DPSGD = {"batch_size": 256, "epochs": 10, "learning_rate": 2.0}  # dp2_convergence.py's DP-SGD: 0.920 at epsilon 3


def split(args):
    if args.quick:
        digits = load_images("digits")
        cut = len(digits.images) - 360
        return {"dataset": "digits", "holdout": 360, "holdout_order": "tail"}, digits.images, digits.labels, cut
    data_dir = os.path.join(HERE, "..", "..", "shared", "data", "mnist")
    if not os.path.isdir(data_dir):
        sys.exit(f"no MNIST IDX files at {data_dir}: this benchmark needs ../shared/data beside the repository.")
    images, labels = read_idx_dir(data_dir)
    return ({"dataset": "mnist", "data_dir": data_dir, "holdout": 2000, "holdout_order": "tail"},
            images.astype(np.float32), labels.astype(np.int32), 8000)


def synthetic_tstr(run, held_out, held_out_labels, num_classes, seed):
    """TSTR of TSTR_SAMPLES class-balanced samples of a finished run, epochs chosen on a tenth of them."""
    model, _ = load_trained(run)
    labels = np.arange(TSTR_SAMPLES) % num_classes
    images = np.concatenate([model.sample(1000, seed=seed * 100 + i, labels=labels[i * 1000:(i + 1) * 1000])
                             for i in range(TSTR_SAMPLES // 1000)])
    return tstr_accuracy(images, labels, held_out, held_out_labels, num_classes, epochs=20, seed=seed)


def overrides(family, args) -> dict:
    """Settings given instead of the family's recipe (none by default; --quick shortens every run)."""
    if family == "merf":
        given = {"fit_steps": 100 if args.quick else args.fit_steps, "frequencies": args.frequencies}
    else:
        given = {"epochs": 1 if args.quick else args.epochs, "batch_size": args.batch_size,
                 "discriminator_steps": args.discriminator_steps,
                 "pretrain": args.pretrain if family == "diffusion" else None}
    return {name: value for name, value in given.items() if value is not None}


def family_row(family, epsilon, seed, data, held_out, held_out_labels, args, work):
    name = f"{family}-{'nodp' if epsilon is None else f'eps{epsilon:g}'}-seed{seed}" + "".join(
        f"-{key}{value}" for key, value in overrides(family, args).items())
    run = os.path.join(work, name)
    private = {"epsilon": epsilon, "delta": 1e-5} if epsilon else {"noise_multiplier": 0.0, "delta": 1e-5}
    if epsilon is None and family != "merf":
        private["l2_norm_clip"] = 1e6  # no clipping either: the non-private ceiling of the same model
    begun = time.time()
    if not (args.reuse_runs and os.path.exists(os.path.join(run, "privacy.json"))):
        extra = overrides(family, args)
        extra = {"merf": extra} if family == "merf" and extra else extra
        train_run(model=family, output=run, seed=seed, checkpoint_every=10_000, verbose=0, **data, **private,
                  **extra)
    trained = time.time() - begun
    with open(os.path.join(run, "privacy.json")) as f:
        report = json.load(f)
    result = evaluate_run(run, verbose=False)
    audit, utility = result["membership_inference"], result["utility"]
    return {"family": family, "target_epsilon": epsilon, "epsilon": report["epsilon"], "seed": seed,
            "training_seconds": trained, "steps": report.get("steps"), "settings": overrides(family, args),
            "tstr_accuracy": synthetic_tstr(run, held_out, held_out_labels, 10, seed),
            "frechet_distance": utility["frechet_distance"], "real_accuracy": utility["reference_accuracy"],
            "empirical_epsilon": audit["empirical_epsilon_lower_bound"], "consistent": audit["consistent"],
            "samples": keep_samples(run, name, args)}


def keep_samples(run, name, args):
    """The run's samples.png, kept beside the results (the runs live in a temporary directory); its path relative
    to the JSON's folder."""
    folder = os.path.join(os.path.dirname(args.output), "privacy_utility_samples")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.png")
    shutil.copyfile(os.path.join(run, "samples.png"), path)
    return os.path.relpath(path, os.path.dirname(args.output))  # beside the JSON, wherever it is


def dpsgd_row(epsilon, seed, images, labels, cut, args):
    """The DP-SGD bar: a small classifier trained on the real training images at `epsilon`, scored once."""
    from dp2_convergence import DPClassifier
    x, y, x_test, y_test = images[:cut], labels[:cut], images[cut:], labels[cut:]
    keras.utils.set_random_seed(seed)
    model = DPClassifier(images.shape[1:])
    epochs = 1 if args.quick else DPSGD["epochs"]
    private = {"target_epsilon": epsilon} if epsilon else {"noise_multiplier": 0.0, "l2_norm_clip": 1e6}
    settings = tfdpgen.PrivacySettings(dataset_size=len(x), batch_size=DPSGD["batch_size"], epochs=epochs, delta=1e-5,
                                       **private)
    model.compile(privacy=settings, optimizer="dp-sgd", learning_rate=DPSGD["learning_rate"] if epsilon else 0.1)
    begun = time.time()
    model.fit(private_batches(x, y, model.privacy, seed=seed + 2), epochs=epochs,
              steps_per_epoch=model.privacy.steps_per_epoch, verbose=0)
    accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    report = model.privacy_report()
    return {"family": "dpsgd", "target_epsilon": epsilon, "epsilon": report["epsilon"], "seed": seed,
            "training_seconds": time.time() - begun, "steps": report["steps"], "tstr_accuracy": None,
            "real_accuracy": accuracy}


def setting_label(epsilon):
    return "no DP" if epsilon is None else f"{epsilon:g}"


def shown(row) -> bool:
    """Whether a row is of the configuration the pictures show for its family: its recipe, or SHOWN's settings."""
    return (row.get("settings") or {}) == SHOWN.get(row["family"], {})


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    settings = [1.0, 10.0, None]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for family in IMAGE_FAMILIES:
        means = [np.mean([r["tstr_accuracy"] for r in rows if r["family"] == family and r["target_epsilon"] == eps
                          and shown(r)] or [np.nan]) for eps in settings]
        if not np.all(np.isnan(means)):
            label = family + (f" ({variant({'settings': SHOWN[family]})})" if family in SHOWN else "")
            ax.plot([setting_label(e) for e in settings], means, marker="o", label=label)
    reference = [np.mean([r["real_accuracy"] for r in rows if r["family"] == "dpsgd" and r["target_epsilon"] == eps]
                         or [np.nan]) for eps in settings]
    ax.plot([setting_label(e) for e in settings], reference, "k--", marker="s", label="DP-SGD on real images")
    ax.axhline(0.1, color="grey", lw=0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epsilon (delta 1e-5), 8,000 MNIST training images")
    ax.set_ylabel("accuracy on 2,000 held-out real images")
    ax.set_title("train on 10,000 synthetic, test on real", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def samples_figure(rows, path):
    """The epsilon-10 sample grid of every family (its recipe's first seed), one above the other."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    kept = [r for r in rows if r["target_epsilon"] == 10.0 and r.get("samples") and shown(r)]
    kept = [min((r for r in kept if r["family"] == family), key=lambda r: r["seed"])
            for family in IMAGE_FAMILIES if any(r["family"] == family for r in kept)]
    if not kept:
        return
    fig, axes = plt.subplots(len(kept), 1, figsize=(6, 5.2 * len(kept)), squeeze=False)
    for ax, row in zip(axes[:, 0], kept):
        ax.imshow(plt.imread(os.path.join(os.path.dirname(path), row["samples"])))
        name = row["family"] + (f" ({variant(row)})" if variant(row) else "")
        ax.set_title(f"{name}, epsilon 10: TSTR {row['tstr_accuracy']:.3f}", fontsize=11)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def draw(rows, output):
    """Both pictures beside the JSON at `output`."""
    plot(rows, os.path.splitext(output)[0] + ".png")
    samples_figure(rows, os.path.splitext(output)[0] + "_samples.png")


def variant(row) -> str:
    """The settings a row was given instead of its recipe, in words ('' for the recipe)."""
    return ", ".join(f"{key} {value}" for key, value in (row.get("settings") or {}).items())


def table(rows):
    lines = ["| family | epsilon | seeds | TSTR accuracy | Frechet distance | training time (s) | audit: empirical "
             "epsilon |", "|---|---|---|---|---|---|---|"]
    keys = sorted({(r["family"], variant(r), r["target_epsilon"] is None, r["target_epsilon"] or 0) for r in rows},
                  key=lambda k: (k[0] == "dpsgd", k))
    for family, settings, _, eps in keys:
        group = [r for r in rows if (r["family"], variant(r), r["target_epsilon"] or 0) == (family, settings, eps)]
        accuracy = np.array([r["real_accuracy"] if family == "dpsgd" else r["tstr_accuracy"] for r in group])
        spread = f" ±{accuracy.std():.3f}" if len(group) > 1 else ""
        fd = "-" if family == "dpsgd" else f"{np.mean([r['frechet_distance'] for r in group]):.1f}"
        audit = "-" if family == "dpsgd" else f"{max(r['empirical_epsilon'] for r in group):.2f}"
        name = "DP-SGD classifier (real images)" if family == "dpsgd" else family + (
            f" ({settings})" if settings else "")
        lines.append(f"| {name} | {setting_label(eps or None)} | {len(group)} | {accuracy.mean():.3f}{spread} | {fd} | "
                     f"{np.mean([r['training_seconds'] for r in group]):.0f} | {audit} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="digits, 1 epoch: a smoke run of the script")
    parser.add_argument("--families", nargs="+", default=list(IMAGE_FAMILIES) + ["dpsgd"],
                        choices=list(IMAGE_FAMILIES) + ["dpsgd"])
    parser.add_argument("--epsilons", nargs="+", default=["1", "10", "none"],
                        help="target epsilons; 'none' trains without DP")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=int, help="instead of the recipe's (DP-SGD families; recorded in the row)")
    parser.add_argument("--batch-size", type=int, help="instead of the recipe's (DP-SGD families; recorded)")
    parser.add_argument("--discriminator-steps", type=int, help="cgan: instead of the recipe's (recorded)")
    parser.add_argument("--pretrain", help="diffusion: public image set to pretrain on without DP (recorded)")
    parser.add_argument("--frequencies", type=int, help="merf: instead of the default (recorded)")
    parser.add_argument("--fit-steps", type=int, help="merf: instead of the default (recorded)")
    parser.add_argument("--output", help="the results JSON (default results/privacy_utility.json; with --quick "
                        "results/privacy_utility_quick.json, so that digits rows never join the MNIST ones)")
    parser.add_argument("--work-dir", help="where the runs go (default: a temporary directory)")
    parser.add_argument("--reuse-runs", action="store_true", help="evaluate finished runs in --work-dir again")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table of the output's rows, redraw the pictures and stop")
    args = parser.parse_args()
    args.output = args.output or os.path.join(HERE, "results", "privacy_utility_quick.json" if args.quick
                                              else "privacy_utility.json")
    epsilons = [None if e == "none" else float(e) for e in args.epsilons]
    earlier = []
    if os.path.exists(args.output):
        with open(args.output) as f:
            earlier = json.load(f).get("rows", [])
    if args.markdown:
        print(table(earlier))
        draw(earlier, args.output)
        return
    work = args.work_dir or tempfile.mkdtemp(prefix="tfdpgen-privacy-utility-")
    data, images, labels, cut = split(args)
    start, rows = time.time(), list(earlier)
    for family in args.families:
        for epsilon in epsilons:
            for seed in args.seeds:
                if family == "dpsgd":
                    row = dpsgd_row(epsilon, seed, images, labels, cut, args)
                else:
                    row = family_row(family, epsilon, seed, data, images[cut:], labels[cut:], args, work)
                rows = [r for r in rows if (r["family"], r["target_epsilon"], r["seed"], variant(r))
                        != (family, epsilon, seed, variant(row))]
                rows.append(row)
                print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}),
                      flush=True)
                summary = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                       "tfdpgen": tfdpgen.__version__},
                           "data": data["dataset"], "tstr_samples": TSTR_SAMPLES, "delta": 1e-5, "rows": rows}
                os.makedirs(os.path.dirname(args.output), exist_ok=True)
                with open(args.output, "w") as f:  # after every run: a crash keeps what was measured
                    json.dump(summary, f, indent=1)
    draw(rows, args.output)
    print("\n" + table(rows))
    print(f"\nwrote {args.output} and the pictures beside it ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
