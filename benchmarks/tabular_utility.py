"""Synthetic tables side by side on the Adult split: tfdpgen's marginal family and tabular GAN, MST and AIM (mbi).

    .venv-bench/bin/python benchmarks/tabular_utility.py                          # every method, epsilon 1 and 10
    .venv-bench/bin/python benchmarks/tabular_utility.py --methods marginal mst tabgan --seeds 0 1 2   # headline rows
    .venv-bench/bin/python benchmarks/tabular_utility.py --methods tabgan --epsilons none   # the GAN without DP
    .venv-bench/bin/python benchmarks/tabular_utility.py --markdown               # README table and picture from the JSON

The environment: Python >= 3.12 with `pip install -e '.[baselines]'` (mbi needs NumPy 2; see benchmarks/
mbi_baselines.py). Data: ../shared/data/adult, rows 0..39,999 private, 40,000..48,841 held out; target income>50K;
delta 1e-5. Every method gets the same zCDP budget for its epsilon (tfdpgen.privacy.accounting.rho_for_epsilon) and
releases 40,000 rows; the held-out rows are read only for the scores:
- gradient-boosted trees and logistic regression trained on the synthetic rows, ROC AUC on the held-out rows;
- mean total-variation distance of every 1-way and 2-way marginal, and of every 3-way marginal with the target,
  synthetic rows against the held-out rows ("real" rows: the 40,000 training rows themselves, the floor that the
  held-out rows' own sampling noise sets), and the 2- and 3-way TV against the training rows, the data each method
  fitted (what MST's and AIM's papers call workload error; "real": a bootstrap resample of the training rows, the
  floor that drawing 40,000 rows sets);
- training time; for tfdpgen's runs, `tfdpgen evaluate`'s membership audit (empirical epsilon against the claim).
Finished rows are kept in benchmarks/results/tabular_utility.json (a row is (method, epsilon, seed)); a rerun adds the
missing ones. The picture: benchmarks/results/tabular_utility.png.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import tfdpgen  # noqa: E402,F401
import numpy as np  # noqa: E402

from tfdpgen.data.tables import load_table, table_codes  # noqa: E402
from tfdpgen.evaluation import tables  # noqa: E402
from tfdpgen.evaluation.evaluate import synthetic_labels  # noqa: E402
from tfdpgen.privacy.accounting import rho_for_epsilon  # noqa: E402
from tfdpgen.runs import evaluate_run, load_trained, train_run  # noqa: E402

ADULT = os.path.join(HERE, "..", "..", "shared", "data", "adult")
RESULTS = os.path.join(HERE, "results", "tabular_utility.json")
TRAIN_ROWS, DELTA = 40_000, 1e-5
METHODS = ("real", "marginal", "mst", "aim", "tabgan")


def scores(columns, held_out, schema, train_codes, reference_codes=None):
    """AUCs and TVs against the held-out rows, and TVs against the training rows (`train_codes`), the data the
    method fitted: what the issue's and the papers' "workload error" measures, without the held-out rows' own
    sampling noise. `reference_codes`: the rows compared with the training rows in place of `columns` (for "real")."""
    synthetic_codes, real_codes = tables.codes(columns, schema), tables.codes(held_out, schema)
    row = tables.marginal_distances(real_codes, synthetic_codes, schema)
    to_train = tables.marginal_distances(train_codes, synthetic_codes if reference_codes is None else reference_codes,
                                         schema)
    row.update({key + "_train": value for key, value in to_train.items()})
    efficacy = tables.ml_efficacy(columns, held_out, schema)
    row.update(gbt_auc=efficacy["gradient_boosting"]["roc_auc"], lr_auc=efficacy["logistic_regression"]["roc_auc"])
    return row


def tfdpgen_run(method, epsilon, seed, work, held_out_labels, num_classes):
    run = os.path.join(work, f"{method}-{epsilon}-{seed}")
    started = time.time()
    privacy = {"epsilon": epsilon, "delta": DELTA} if epsilon is not None else {"noise_multiplier": 0.0}
    train_run(model=method, dataset="adult", data_dir=ADULT, holdout=len(held_out_labels), holdout_order="tail",
              output=run, seed=seed, verbose=0, **privacy)
    seconds = time.time() - started
    model, _ = load_trained(run)
    if method == "marginal":
        columns = model.sample(TRAIN_ROWS, seed=seed)  # the model's own joint, condition included
    else:  # the GAN generates for given conditions: at the held-out frequencies, as `tfdpgen evaluate` does
        columns = model.sample(TRAIN_ROWS, seed=seed, labels=synthetic_labels(held_out_labels, TRAIN_ROWS,
                                                                               num_classes, seed))
    audit = evaluate_run(run, n_samples=10_000, verbose=False)["membership_inference"]
    return columns, seconds, {"empirical_epsilon": audit["empirical_epsilon_lower_bound"],
                              "audit_consistent": audit["consistent"]}


def baseline_run(method, epsilon, seed, codes, schema, aim_iters=1000):
    import mbi_baselines
    sizes = [column.width for column in schema.columns]
    rng, rho = np.random.default_rng(seed), rho_for_epsilon(epsilon, DELTA)
    started = time.time()
    if method == "mst":
        synthetic = mbi_baselines.mst(codes, sizes, rho, rng, rows=TRAIN_ROWS)
    else:
        target = [column.name for column in schema.columns].index(schema.condition)
        synthetic = mbi_baselines.aim(codes, sizes, rho, rng, target, rows=TRAIN_ROWS, iters=aim_iters,
                                      log=lambda line: None)
    seconds = time.time() - started
    extra = {"aim_iters": aim_iters} if method == "aim" else {}
    return {c.name: np.array(c.values)[synthetic[:, i]] for i, c in enumerate(schema.columns)}, seconds, extra


def load_rows():
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            return json.load(f)["rows"]
    return []


def save_rows(rows):
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "delta": DELTA,
                   "data": "Adult, rows 0..39999 private, 40000..48841 held out (../shared/data/adult)",
                   "rows": rows}, f, indent=1)


def summarize(rows):
    """Mean and spread over seeds per (method, epsilon)."""
    groups = {}
    for row in rows:
        groups.setdefault((row["method"], row["epsilon"]), []).append(row)
    out = []
    for (method, epsilon), group in sorted(groups.items(), key=lambda item: (METHODS.index(item[0][0]),
                                                                             item[0][1] or math.inf)):
        summary = {"method": method, "epsilon": epsilon, "seeds": len(group)}
        for key in ("gbt_auc", "lr_auc", "tv_1way_mean", "tv_2way_mean", "tv_3way_target_mean", "seconds",
                    "tv_2way_mean_train", "tv_3way_target_mean_train"):
            if any(key not in row for row in group):  # a row kept from before the column existed
                summary[key] = summary[key + "_spread"] = None
                continue
            values = np.array([row[key] for row in group])
            summary[key], summary[key + "_spread"] = float(values.mean()), float(values.max() - values.min())
        if method == "aim":
            summary["aim_iters"] = group[0].get("aim_iters", 1000)
        summary["audit_consistent"] = all(row.get("audit_consistent", True) for row in group)
        summary["empirical_epsilon"] = max((row.get("empirical_epsilon", 0.0) for row in group), default=0.0)
        out.append(summary)
    return out


def markdown(rows):
    lines = ["| method | epsilon | seeds | boosted trees AUC | logistic AUC | 1-way TV | 2-way TV | 3-way TV (target) "
             "| 2-way TV to training rows | 3-way TV to training rows | time (s) | audit: empirical epsilon |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summarize(rows):
        spread = lambda key: f" ±{s[key + '_spread'] / 2:.3f}" if s["seeds"] > 1 else ""  # noqa: E731
        train = lambda key: "-" if s[key] is None else f"{s[key]:.3f}{spread(key)}"  # noqa: E731
        audit = f"{s['empirical_epsilon']:.2f}" if s["method"] in ("marginal", "tabgan") else "-"
        epsilon = s["epsilon"] or ("-" if s["method"] == "real" else "no DP")
        method = s["method"] + (f" ({s['aim_iters']} iterations a round)" if s.get("aim_iters", 1000) != 1000 else "")
        lines.append(f"| {method} | {epsilon} | {s['seeds']} | "
                     f"{s['gbt_auc']:.3f}{spread('gbt_auc')} | {s['lr_auc']:.3f} | {s['tv_1way_mean']:.3f} | "
                     f"{s['tv_2way_mean']:.3f}{spread('tv_2way_mean')} | {s['tv_3way_target_mean']:.3f} | "
                     f"{train('tv_2way_mean_train')} | {train('tv_3way_target_mean_train')} | "
                     f"{s['seconds']:.0f} | {audit} |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    summary = summarize(rows)
    panels = (("gbt_auc", "boosted trees ROC AUC on held-out rows (higher is better)"),
              ("tv_2way_mean", "mean 2-way TV to held-out rows (lower is better)"),
              ("tv_2way_mean_train", "mean 2-way TV to the training rows (lower is better)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    for method in METHODS[1:]:
        points = [s for s in summary if s["method"] == method and s["epsilon"] is not None]
        if not points:
            continue
        eps = [s["epsilon"] for s in points]
        for axis, (key, _) in zip(axes, panels):
            if any(s[key] is None for s in points):  # rows kept from before the column
                continue
            axis.errorbar(eps, [s[key] for s in points], yerr=[s[key + "_spread"] / 2 for s in points], marker="o",
                          capsize=3, label=method)
    real = [s for s in summary if s["method"] == "real"]
    for axis, (key, title) in zip(axes, panels):
        if real and real[0][key] is not None:
            axis.axhline(real[0][key], color="grey", linestyle="--",
                         label="real: a resample of the training rows" if key.endswith("_train") else
                         "real training rows")
        axis.set_xscale("log")
        axis.set_yscale("log" if key.startswith("tv") else "linear")  # TV spans a factor of two or more
        axis.set_xlabel("epsilon (delta 1e-5)")
        axis.set_title(title, fontsize=9)
        axis.legend(fontsize=8)
    figure.suptitle("Adult: synthetic tables at equal privacy (40,000 private rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--epsilons", nargs="+", type=lambda v: None if v == "none" else float(v), default=[1.0, 10.0],
                        help="privacy budgets; 'none': tfdpgen's families without DP (the sanity run)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--rerun", action="store_true",
                        help="measure the selected methods, epsilons and seeds again, replacing their kept rows")
    parser.add_argument("--aim-iters", type=int, default=1000,
                        help="AIM: Private-PGM's mirror-descent iterations after each round (AIM's default 1000; "
                             "the row records it)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the README table and redraw the picture from the results, and stop")
    args = parser.parse_args()
    rows = load_rows()
    if args.markdown:
        plot(rows, os.path.join(HERE, "results", "tabular_utility.png"))
        print(markdown(rows))
        return
    if not os.path.isdir(ADULT):
        sys.exit(f"{ADULT} is absent: this benchmark needs ../shared/data/adult.")
    data = load_table("adult", ADULT)
    schema, codes = data.schema, table_codes(data, 16)
    held_out = tables.decode_encoded(data.features[TRAIN_ROWS:], data.labels[TRAIN_ROWS:], schema)
    train_columns = tables.decode_encoded(data.features[:TRAIN_ROWS], data.labels[:TRAIN_ROWS], schema)
    train_codes = tables.codes(train_columns, schema)
    # "real" against the training rows: a bootstrap resample of them (the floor that 40,000 drawn rows set)
    resample = train_codes[np.random.default_rng(0).integers(0, TRAIN_ROWS, TRAIN_ROWS)]
    if args.rerun:  # the selected rows are measured again (after a change of the method)
        rows = [row for row in rows if not (row["method"] in args.methods and row["seed"] in args.seeds
                                            and (row["method"] == "real" or row["epsilon"] in args.epsilons))]
    done = {(row["method"], row["epsilon"], row["seed"]) for row in rows}
    with tempfile.TemporaryDirectory() as work:
        for method in args.methods:
            for epsilon in ([None] if method == "real" else args.epsilons):
                for seed in ([0] if method == "real" else args.seeds):
                    if (method, epsilon, seed) in done or (epsilon is None and method in ("mst", "aim")):
                        continue  # MST and AIM have no run without DP
                    if method == "real":
                        columns, seconds, extra = train_columns, 0.0, {}
                    elif method in ("marginal", "tabgan"):
                        columns, seconds, extra = tfdpgen_run(method, epsilon, seed, work, data.labels[TRAIN_ROWS:],
                                                              len(schema.condition_column.values))
                    else:
                        columns, seconds, extra = baseline_run(method, epsilon, seed, codes[:TRAIN_ROWS], schema,
                                                               args.aim_iters)
                    row = {"method": method, "epsilon": epsilon, "seed": seed, "seconds": seconds,
                           **scores(columns, held_out, schema, train_codes, resample if method == "real" else None),
                           **extra}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    save_rows(rows)
    plot(rows, os.path.join(HERE, "results", "tabular_utility.png"))
    print(markdown(rows))


if __name__ == "__main__":
    main()
