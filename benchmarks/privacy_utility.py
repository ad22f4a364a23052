"""Privacy-utility of every generator family: epsilon 1 and 10 (delta 1e-5) and a non-private run of the same model.

    .venv/bin/python benchmarks/privacy_utility.py            # MNIST and Adult from ../shared/data, CPU sizes
    .venv/bin/python benchmarks/privacy_utility.py --quick    # digits and breast_cancer, 1 epoch (a smoke run)
    .venv/bin/python benchmarks/privacy_utility.py --epochs 50 --families ...   # GPU sizes

Image families on the MNIST private split (images 0..7999; the last 2,000 held out, as ../shared/data/README.md
says), tabgan on Adult (rows 0..39,999; 8,842 held out). Each run is `tfdpgen train` then `tfdpgen evaluate`. The
non-private ceiling trains the same model with noise 0 and a clip norm no gradient reaches (1e6). Writes
benchmarks/results/privacy_utility.json and privacy_utility.png, and prints a table.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tfdpgen  # noqa: E402
import numpy as np  # noqa: E402

from tfdpgen.evaluation.evaluate import evaluate_run  # noqa: E402
from tfdpgen.training import train_run  # noqa: E402

IMAGE_FAMILIES = ("vae", "gan", "cgan", "diffusion", "sinkhorn")
SETTINGS = (1.0, 10.0, None)  # None: non-private


def data_for(family, args):
    shared = os.path.join(HERE, "..", "..", "shared", "data")
    if family == "tabgan":
        return ({"dataset": "breast_cancer"} if args.quick else
                {"dataset": "adult", "data_dir": os.path.join(shared, "adult"), "holdout": 8842,
                 "holdout_order": "tail"})
    return ({"dataset": "digits"} if args.quick else
            {"dataset": "mnist", "data_dir": os.path.join(shared, "mnist"), "holdout": 2000,
                 "holdout_order": "tail"})


def headline(family, result):
    utility, audit = result["utility"], result["membership_inference"]
    row = {"mia_auc": max(a["auc"] for a in audit["attacks"].values()),
           "empirical_epsilon": audit["empirical_epsilon_lower_bound"], "consistent": audit["consistent"],
           "near_copies_flagged": result["memorization"]["flagged"]}
    if family == "tabgan":
        row.update(tv_1way=utility["tv_1way_mean"], tv_2way=utility["tv_2way_mean"],
                   gbt_auc=utility["ml_efficacy_synthetic"]["gradient_boosting"]["roc_auc"],
                   gbt_auc_real=utility["ml_efficacy_real"]["gradient_boosting"]["roc_auc"])
    else:
        row.update(frechet_distance=utility["frechet_distance"], precision=utility["precision"],
                   recall=utility["recall"], tstr_accuracy=utility["tstr_accuracy"],
                   real_accuracy=utility["reference_accuracy"])
    return row


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = ["1", "10", "no DP"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = (("frechet_distance", "Frechet distance (small-CNN features), lower is better", IMAGE_FAMILIES),
              ("tstr_accuracy", "train on synthetic, test on real (cgan)", ("cgan",)),
              ("gbt_auc", "tabgan: boosted trees on synthetic, ROC AUC on real", ("tabgan",)))
    for ax, (metric, title, families) in zip(axes, panels):
        for family in families:
            values = [next((r[metric] for r in rows if r["family"] == family and r["target_epsilon"] == eps
                            and r.get(metric) is not None), np.nan) for eps in SETTINGS]
            ax.plot(labels, values, marker="o", label=family)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epsilon (delta 1e-5)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, help="default: 1 with --quick, else 10")
    parser.add_argument("--families", nargs="+", default=list(IMAGE_FAMILIES) + ["tabgan"])
    parser.add_argument("--output", default=os.path.join(HERE, "results", "privacy_utility.json"))
    parser.add_argument("--work-dir", help="where the runs go (default: a temporary directory)")
    parser.add_argument("--reuse-runs", action="store_true",
                        help="evaluate finished runs already in --work-dir again instead of training them")
    args = parser.parse_args()
    epochs = args.epochs or (1 if args.quick else 10)
    work = args.work_dir or tempfile.mkdtemp(prefix="tfdpgen-privacy-utility-")
    # Rows of other families (or settings) already in the output are kept: families can be run one at a time.
    earlier = []
    if os.path.exists(args.output):
        with open(args.output) as f:
            earlier = [r for r in json.load(f)["runs"] if r["family"] not in args.families]
    rows, start = [], time.time()

    def save():
        summary = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "tfdpgen": tfdpgen.__version__},
                   "command": " ".join(["benchmarks/privacy_utility.py"] + sys.argv[1:]), "epochs": epochs,
                   "wall_seconds_this_invocation": time.time() - start, "runs": earlier + rows}
        os.makedirs(os.path.dirname(args.output), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(summary, f, indent=1)
        return summary

    for family in args.families:
        for epsilon in SETTINGS:
            name = f"{family}-{'nodp' if epsilon is None else f'eps{epsilon:g}'}"
            private = {"epsilon": epsilon, "delta": 1e-5} if epsilon else {"noise_multiplier": 0.0, "delta": 1e-5,
                                                                              "l2_norm_clip": 1e6}
            begun = time.time()
            run = os.path.join(work, name)
            if not (args.reuse_runs and os.path.exists(os.path.join(run, "privacy.json"))):
                train_run(model=family, epochs=epochs, batch_size=256 if not args.quick else 64, output=run, seed=0,
                          checkpoint_every=10_000, verbose=0, **data_for(family, args), **private)
            result = evaluate_run(run, verbose=False)
            row = {"family": family, "target_epsilon": epsilon, "epsilon": result["privacy"]["epsilon"],
                   "dataset": result["dataset"], "seconds": time.time() - begun, **headline(family, result)}
            rows.append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
            summary = save()  # after every run: a crash keeps what was measured
    rows = earlier + rows
    plot(rows, os.path.splitext(args.output)[0] + ".png")
    print(f"\n| family | data | epsilon | utility | membership-inference AUC | empirical epsilon >= |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if r["family"] == "tabgan":
            utility = (f"TV 1-way {r['tv_1way']:.3f}, 2-way {r['tv_2way']:.3f}; boosted trees AUC {r['gbt_auc']:.3f} "
                       f"(real {r['gbt_auc_real']:.3f})")
        else:
            utility = (f"FD {r['frechet_distance']:.1f}, precision {r['precision']:.2f}, recall {r['recall']:.2f}"
                       + (f", TSTR {r['tstr_accuracy']:.3f} (real {r['real_accuracy']:.3f})"
                          if r["tstr_accuracy"] is not None else ""))
        eps = "no DP" if r["target_epsilon"] is None else f"{r['epsilon']:.2f}"
        print(f"| {r['family']} | {r['dataset']} | {eps} | {utility} | {r['mia_auc']:.3f} | "
              f"{r['empirical_epsilon']:.2f} |")
    print(f"\nwrote {args.output} and the plot beside it ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
