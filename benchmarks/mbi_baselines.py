"""MST and AIM, the standard marginal-based baselines, on mbi 2.0 (private-pgm's estimators; its wheel does not ship
the mechanism scripts, so this is the thin driver, written from the papers: McKenna, Miklau, Sheldon, "Winning the
NIST Contest: A scalable and general approach to differentially private synthetic data", JPC 2021 (MST), and McKenna
et al., PVLDB 2022 (AIM)). Install with `pip install -e '.[baselines]'` on Python >= 3.12 (mbi needs jax, which
needs NumPy 2; TF Privacy's pins keep Python 3.11 on NumPy 1.26).

Both take the budget as rho (zCDP), the same conversion from (epsilon, delta) as tfdpgen's marginal family
(tfdpgen.privacy.accounting.rho_for_epsilon), so the comparison is at equal privacy. Data: integer codes [N, columns].
"""
import itertools
import math

import jax
import numpy as np
from mbi import Dataset, Domain, LinearMeasurement, junction_tree
from mbi.estimation import MirrorDescent
from scipy.cluster.hierarchy import DisjointSet

from tfdpgen.privacy.aim import candidate_weights, workload


def _dataset(codes, sizes):
    names = [str(i) for i in range(len(sizes))]
    return Dataset({name: codes[:, i] for i, name in enumerate(names)}, Domain(names, sizes)), names


def _measure(data, cliques, sigma, rng):
    """Each clique's histogram with Gaussian noise `sigma` per cell (L2 sensitivity 1: rho 1 / (2 sigma^2) each)."""
    out = []
    for clique in cliques:
        x = np.asarray(data.project(clique).datavector(), np.float64)
        out.append(LinearMeasurement(x + rng.normal(0, sigma, x.size), clique, stddev=sigma))
    return out


def _exponential(scores, epsilon, sensitivity, rng):
    scores = np.asarray(scores, np.float64)
    return int(np.argmax(epsilon * scores / (2 * sensitivity) + rng.gumbel(size=scores.size)))


def _codes(dataset, names):
    return np.stack([np.asarray(dataset.data[name]) for name in names], 1)


def mst(codes, sizes, rho, rng, rows=None, iters=3000):
    """MST: all 1-way marginals (a third of rho), a maximum spanning tree of 2-way marginals chosen by the
    exponential mechanism on their L1 error (a third), those 2-way marginals (a third), then Private-PGM."""
    data, names = _dataset(codes, sizes)
    # A third of rho for the d 1-way marginals together: each gets noise sqrt(3 d / (2 rho)) (MST's measure()
    # divides sigma = sqrt(3 / (2 rho)) by weights normalized to unit L2 norm, 1 / sqrt(d) each); likewise the tree.
    sigma_ones = math.sqrt(3 * len(names) / (2 * rho))
    sigma_twos = math.sqrt(3 * (len(names) - 1) / (2 * rho))
    ones = _measure(data, [(name,) for name in names], sigma_ones, rng)
    # Values whose noisy count is below 3 sigma are merged into one (MST's compress_domain): fewer, larger cells.
    mapping = {}
    for m in ones:
        keep = np.asarray(m.noisy_measurement) >= 3 * sigma_ones
        if not keep.all():
            mapping[m.clique[0]] = np.where(keep, np.cumsum(keep) - 1, keep.sum()).astype(np.int64)
    small = data.compress(mapping) if mapping else data
    ones = [m.compress(mapping, data.domain) for m in ones]
    estimate = MirrorDescent().estimate(small.domain, ones, iters=iters // 2)
    pairs = list(itertools.combinations(names, 2))
    errors = {pair: np.abs(np.asarray(small.project(pair).datavector())
                           - np.asarray(estimate.project(pair).datavector())).sum() for pair in pairs}
    components = DisjointSet(names)
    epsilon = math.sqrt(8 * (rho / 3) / (len(names) - 1))
    tree = []
    for _ in range(len(names) - 1):
        candidates = [pair for pair in pairs if not components.connected(*pair)]
        chosen = candidates[_exponential([errors[pair] for pair in candidates], epsilon, 1.0, rng)]
        tree.append(chosen)
        components.merge(*chosen)
    twos = _measure(small, tree, sigma_twos, rng)
    spent = len(ones) / (2 * sigma_ones ** 2) + len(tree) * epsilon ** 2 / 8 + len(twos) / (2 * sigma_twos ** 2)
    assert math.isclose(spent, rho, rel_tol=1e-9), f"MST spent rho {spent}, its budget is {rho}"
    model = MirrorDescent().estimate(small.domain, ones + twos, iters=iters)
    synthetic = model.synthetic_data(rows or codes.shape[0])
    return _codes(synthetic.decompress(mapping) if mapping else synthetic, names)


def aim(codes, sizes, rho, rng, target, max_cells=10_000, max_model_size=80.0, iters=1000, rows=None, log=print):
    """AIM with the workload tfdpgen's marginal family uses (every 2-way marginal and every 3-way one holding
    `target`, at most `max_cells` cells), its model-size cap (`max_model_size` MB, AIM's default 80) and Private-PGM;
    `iters` mirror-descent iterations after each round (AIM's 1000; fewer to make it fit a session), at least 1000
    in the final estimate."""
    data, names = _dataset(codes, sizes)
    weights = {tuple(names[c] for c in r): weight
               for r, weight in candidate_weights(workload(sizes, target, max_cells)).items()}
    answers = {r: np.asarray(data.project(r).datavector(), np.float64) for r in weights}
    rounds = 16 * len(sizes)
    sigma = math.sqrt(rounds / (2 * 0.9 * rho))
    epsilon = math.sqrt(8 * 0.1 * rho / rounds)
    measurements = _measure(data, [(name,) for name in names], sigma, rng)
    used = len(names) * 0.5 / sigma ** 2
    model = MirrorDescent().estimate(data.domain, measurements, iters=iters)
    terminate = False
    while not terminate:
        if rho - used < 2 * (0.5 / sigma ** 2 + epsilon ** 2 / 8):
            remaining = rho - used
            sigma, epsilon, terminate = math.sqrt(1 / (2 * 0.9 * remaining)), math.sqrt(8 * 0.1 * remaining), True
        used += 0.5 / sigma ** 2 + epsilon ** 2 / 8
        limit = max_model_size * used / rho
        cliques = [m.clique for m in measurements]
        candidates = [r for r in weights if junction_tree.hypothetical_model_size(data.domain, cliques + [r]) <= limit]
        scores = [weights[r] * (np.abs(answers[r] - np.asarray(model.project(r).datavector())).sum()
                                - math.sqrt(2 / math.pi) * sigma * answers[r].size) for r in candidates]
        chosen = candidates[_exponential(scores, epsilon, max(weights[r] for r in candidates), rng)]
        before = np.asarray(model.project(chosen).datavector())
        measurements += _measure(data, [chosen], sigma, rng)
        model = MirrorDescent().estimate(data.domain, measurements, iters=iters, warm_start=model)
        # Each new set of cliques compiles new XLA programs; kept, their code sections exhaust the process's memory
        # maps (vm.max_map_count, 65530 here) and LLVM aborts with "Unable to allocate section memory".
        jax.clear_caches()
        log(f"AIM: measured {chosen}, budget used {used / rho:.1%}")
        if np.abs(np.asarray(model.project(chosen).datavector()) - before).sum() <= math.sqrt(2 / math.pi) * sigma * answers[chosen].size:
            sigma, epsilon = sigma / 2, epsilon * 2
    model = MirrorDescent().estimate(data.domain, measurements, iters=max(iters, 1000), warm_start=model)  # as AIM ends
    return _codes(model.synthetic_data(rows or codes.shape[0]), names)
