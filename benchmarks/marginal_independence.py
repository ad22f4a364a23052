"""How strongly the marginal family's fit should pull towards independence, chosen on synthetic tables only.

    .venv/bin/python benchmarks/marginal_independence.py                        # the default grid
    .venv/bin/python benchmarks/marginal_independence.py --networks 7 --epsilons 1 --independence 0 0.01
    .venv/bin/python benchmarks/marginal_independence.py --markdown             # the table from the kept rows

Each table is 40,000 rows drawn from a random Bayesian network over 14 columns with Adult's domain sizes (read from
../shared/data/adult/adult-domain.json, the public domain; no record of Adult is read): columns in a random order,
each with no parent (one in five), one or two earlier parents (at most 2,000 parent values), its conditional tables
Dirichlet around a skewed base distribution with a random concentration, so pairs range from independent to strongly
dependent. The marginal family's AIM run (privacy.aim.run_aim, the run's final fit, a stratified table of 40,000 rows)
at each `independence` (models.marginal) is scored by the mean TV of every 1-way, 2-way and 3-way-with-the-target
marginal against the table it was fitted to, as tabular_utility.py scores Adult. Rows:
benchmarks/results/marginal_independence.json, a row per (network, epsilon, independence), kept between invocations.
"""
import argparse
import itertools
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import numpy as np  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfdpgen.models.marginal import FINAL_FIT_STEPS, MAX_CELLS  # noqa: E402
from tfdpgen.data.tables import Column, TableSchema  # noqa: E402
from tfdpgen.evaluation import tables  # noqa: E402
from tfdpgen.models.marginal import DPMarginalTable  # noqa: E402
from tfdpgen.privacy.aim import estimate_total, run_aim  # noqa: E402
from tfdpgen.privacy.accounting import rho_for_epsilon
from tfdpgen.privacy.ledger import PrivacyLedger  # noqa: E402

RESULTS = os.path.join(HERE, "results", "marginal_independence.json")
ADULT_DOMAIN = os.path.join(HERE, "..", "..", "shared", "data", "adult", "adult-domain.json")
ROWS, DELTA, MAX_PARENT_VALUES = 40_000, 1e-5, 2_000


def random_network_table(sizes, seed, rows=ROWS):
    """Codes [rows, columns] drawn from a random Bayesian network over columns of these sizes."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(sizes)))
    codes = np.zeros([rows, len(sizes)], np.int64)
    for position, column in enumerate(order):
        width, earlier = sizes[column], order[:position]
        base = rng.dirichlet(np.full(width, 0.7))
        parents = []
        if earlier and rng.uniform() > 0.2:
            parents = list(rng.choice(earlier, size=min(len(earlier), 1 + int(rng.uniform() < 0.4)), replace=False))
            while np.prod([sizes[p] for p in parents]) > MAX_PARENT_VALUES:
                parents = parents[:-1]
        if not parents:
            codes[:, column] = rng.choice(width, size=rows, p=base)
            continue
        parent_sizes = [sizes[p] for p in parents]
        concentration = width * np.exp(rng.uniform(np.log(0.3), np.log(30)))
        conditional = rng.dirichlet(concentration * base + 1e-3, size=int(np.prod(parent_sizes)))
        parent_value = np.ravel_multi_index(tuple(codes[:, p] for p in parents), parent_sizes)
        cumulative = np.cumsum(conditional[parent_value], 1)
        codes[:, column] = np.minimum((cumulative < rng.uniform(size=rows)[:, None]).sum(1), width - 1)
    return codes


def measure(schema, network, epsilon, independence):
    sizes = [column.width for column in schema.columns]
    target = [column.name for column in schema.columns].index(schema.condition)
    codes = random_network_table(sizes, network)
    started = time.time()
    keras.utils.set_random_seed(0)
    model = DPMarginalTable(schema, seed=0, independence=independence)
    measurements = run_aim(codes, model.sizes, target, rho_for_epsilon(epsilon, DELTA), model,
                           np.random.default_rng(5), PrivacyLedger(), [c.name for c in schema.columns],
                           MAX_CELLS, log=lambda line: None)
    model.fit(measurements, estimate_total(measurements), steps=FINAL_FIT_STEPS)
    distances = tables.marginal_distances(codes, tables.codes(model.sample(ROWS, seed=0), schema), schema)
    return {"network": network, "epsilon": epsilon, "independence": independence,
            "tv_1way": distances["tv_1way_mean"], "tv_2way": distances["tv_2way_mean"],
            "tv_3way_target": distances["tv_3way_target_mean"],
            "measured_higher_way": sum(len(m.clique) > 1 for m in measurements),
            "component_information": float(model.component_information()), "seconds": time.time() - started}


def markdown(rows):
    lines = ["| network | epsilon | independence | 1-way TV | 2-way TV | 3-way TV (target) | 2-/3-way marginals "
             "measured | time (s) |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["epsilon"], r["network"], r["independence"])):
        lines.append(f"| {r['network']} | {r['epsilon']:g} | {r['independence']:g} | {r['tv_1way']:.4f} | "
                     f"{r['tv_2way']:.4f} | {r['tv_3way_target']:.4f} | {r['measured_higher_way']} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", type=int, default=[123, 7], help="seeds of the random networks")
    parser.add_argument("--epsilons", nargs="+", type=float, default=[1.0])
    parser.add_argument("--independence", nargs="+", type=float, default=[0.0, 0.003, 0.01, 0.03, 0.1])
    parser.add_argument("--markdown", action="store_true", help="print the kept rows as a table, and stop")
    args = parser.parse_args()
    rows = json.load(open(RESULTS))["rows"] if os.path.exists(RESULTS) else []
    if not args.markdown:
        with open(ADULT_DOMAIN) as f:  # column names and sizes only
            schema = TableSchema([Column(name, "categorical", [str(v) for v in range(size)])
                                  for name, size in json.load(f).items()], "income>50K")
        for network, epsilon, independence in itertools.product(args.networks, args.epsilons, args.independence):
            if any((r["network"], r["epsilon"], r["independence"]) == (network, epsilon, independence) for r in rows):
                continue
            row = measure(schema, network, epsilon, independence)
            print(json.dumps(row), flush=True)
            rows.append(row)
            os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
            with open(RESULTS, "w") as f:
                json.dump({"delta": DELTA, "rows_per_table": ROWS, "rows": rows}, f, indent=1)
    print(markdown(rows))


if __name__ == "__main__":
    main()
