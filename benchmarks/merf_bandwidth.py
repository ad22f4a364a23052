"""DP-MERF's kernel bandwidth chosen on public data: scikit-learn's digits (8x8), never the MNIST images it is used on.

    .venv/bin/python benchmarks/merf_bandwidth.py                      # the grid below, 2 seeds (about 40 min on 2 cores)
    .venv/bin/python benchmarks/merf_bandwidth.py --multipliers 1 2 --seeds 0

The digits are split once (a fixed public permutation: 1,297 to train on, 500 held out; all of it public, so choosing
on the held-out part leaks nothing private). For each multiple of the digits' median heuristic (bandwidth^2 =
multiplier * median squared distance), DP-MERF releases the training digits' embeddings at epsilon 10 (delta 1e-5, the
exact Gaussian calibration) and fits the generator with the family's default frequencies and fit steps; TSTR as
privacy_utility.py (the evaluation's CNN, its epoch chosen on a tenth of the synthetic images) scores it on the 500
held-out digits. The per-pixel median heuristic carries the chosen multiple to any image size (models.merf). Writes
benchmarks/results/merf_bandwidth.json (rows already there are kept) and prints a table.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import numpy as np  # noqa: E402

from tfdpgen.data.images import load_images  # noqa: E402
from tfdpgen.evaluation.images import tstr_accuracy  # noqa: E402
from tfdpgen.models.merf import DEFAULT_FIT_STEPS, DPMERF, median_heuristic  # noqa: E402
from tfdpgen.privacy.accounting import ReleaseBudget  # noqa: E402
from tfdpgen.privacy.ledger import PrivacyLedger  # noqa: E402

HELD_OUT = 500
TSTR_SAMPLES = 5000


def digits_split():
    data = load_images("digits")
    order = np.random.default_rng(0).permutation(len(data.labels))
    train, test = order[HELD_OUT:], order[:HELD_OUT]
    return data, train, test


def bandwidth_row(multiplier, epsilon, seed, data, train, test, fit_steps):
    bandwidth_squared = multiplier * median_heuristic(data.images) * 64
    model = DPMERF(image_shape=(8, 8, 1), num_classes=10, bandwidth=bandwidth_squared ** 0.5)
    begun = time.time()
    ledger = PrivacyLedger("pld")
    budget = None if epsilon is None else ReleaseBudget(epsilon, 1e-5, "pld")
    model.release_and_fit(data, train, budget, np.random.default_rng(1000 + seed), ledger, seed=seed,
                          fit_steps=fit_steps, verbose=0)
    labels = np.arange(TSTR_SAMPLES) % 10
    images = model.sample(TSTR_SAMPLES, seed=seed, labels=labels)
    accuracy = tstr_accuracy(images, labels, data.images[test], data.labels[test], 10, epochs=20, seed=seed)
    return {"multiplier": multiplier, "bandwidth_squared": bandwidth_squared, "target_epsilon": epsilon,
            "epsilon": ledger.epsilon(1e-5) if epsilon is not None else None, "seed": seed, "fit_steps": fit_steps,
            "frequencies": model.frequencies, "tstr_accuracy": accuracy, "seconds": time.time() - begun}


def markdown(rows) -> str:
    """Mean TSTR over the seeds for each fit length, epsilon and multiple of the median heuristic."""
    groups = {}
    for row in rows:
        groups.setdefault((row["fit_steps"], row["target_epsilon"], row["multiplier"]), []).append(row)
    lines = ["| fit steps | epsilon | bandwidth^2 (x the median heuristic) | TSTR on the held-out digits (seeds) |",
             "|---|---|---|---|"]
    for (steps, epsilon, multiplier), group in sorted(groups.items()):
        scores = [row["tstr_accuracy"] for row in sorted(group, key=lambda row: row["seed"])]
        lines.append(f"| {steps} | {epsilon:g} | {group[0]['bandwidth_squared']:.2f} ({multiplier:g}x) | "
                     f"{np.mean(scores):.3f} ({', '.join(f'{s:.3f}' for s in scores)}) |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--multipliers", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 3.0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[10.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--fit-steps", type=int, default=DEFAULT_FIT_STEPS)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "merf_bandwidth.json"))
    parser.add_argument("--markdown", action="store_true", help="print the table of the output's rows and stop")
    args = parser.parse_args()
    rows = json.load(open(args.output))["rows"] if os.path.exists(args.output) else []
    if args.markdown:
        print(markdown(rows))
        return
    data, train, test = digits_split()
    key = lambda row: (row["multiplier"], row["target_epsilon"], row["seed"], row["fit_steps"])  # noqa: E731
    for epsilon in args.epsilons:
        for multiplier in args.multipliers:
            for seed in args.seeds:
                row = bandwidth_row(multiplier, epsilon, seed, data, train, test, args.fit_steps)
                rows = [old for old in rows if key(old) != key(row)] + [row]
                print(f"multiplier {multiplier:g} (bandwidth^2 {row['bandwidth_squared']:.2f}) epsilon {epsilon:g} "
                      f"seed {seed}: TSTR {row['tstr_accuracy']:.3f} ({row['seconds']:.0f} s)", flush=True)
                with open(args.output, "w") as f:
                    json.dump({"data": "scikit-learn digits, 1,297 train / 500 held out (public)", "rows": rows}, f,
                              indent=1)
    print(markdown(rows))


if __name__ == "__main__":
    main()
