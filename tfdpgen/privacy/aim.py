"""AIM's adaptive selection of marginals to measure (McKenna, Mullins, Sheldon, Miklau, PVLDB 2022, "AIM: An Adaptive
and Iterative Mechanism for Differentially Private Synthetic Data"; their mechanisms/aim.py in private-pgm).

The workload W is every 2-way marginal and every 3-way marginal that holds the target column, each at most
`max_cells` cells. A run measures every 1-way marginal, then rounds of:
1. select the candidate (any marginal inside a workload marginal) that the model answers worst, by the exponential
   mechanism on AIM's score w_r * (||x_r - N p_r||_1 - sqrt(2/pi) sigma |r|): its L1 error in counts minus the error
   the measurement's own noise would leave, weighted by how much of the workload it covers
   (w_r = sum over W of |r intersect s|; the score's sensitivity is max w_r);
2. measure it with the Gaussian mechanism (a histogram of counts: L2 sensitivity 1);
3. refit the model to every measurement so far (post-processing: no privacy cost);
4. anneal: when the refitted model's answer moved less than the noise expected, halve sigma and double epsilon.
The budget rho (zCDP) is split as AIM does: 90% to measurements and 10% to selections over 16 x columns rounds, and
the last round takes whatever is left, so the run spends exactly rho.

The model is anything with `fit(measurements, total)`, `marginal(clique) -> probabilities` (flattened, C order
over the clique's columns) and `marginals(cliques)`, several at once. Data flow stays one way: this module never imports a model.
"""
import dataclasses
import itertools
import math
import time
from typing import Callable, Dict, List, Tuple

import numpy as np

from tfdpgen.privacy.accounting import epsilon_for_rho
from tfdpgen.privacy.ledger import PrivacyLedger
from tfdpgen.privacy.releases import exponential_choice, gaussian_release

Clique = Tuple[int, ...]
MEASUREMENT_SHARE = 0.9  # AIM: of each round's budget, this share measures and the rest selects
ROUNDS_PER_COLUMN = 16  # AIM's default number of rounds: 16 per column (the budget per round, before annealing)


@dataclasses.dataclass(frozen=True)
class Measurement:
    clique: Clique  # column indices, increasing
    values: np.ndarray  # noisy counts, flattened in C order over the clique's columns
    stddev: float  # noise stddev per cell (0: measured exactly, no DP)


def marginal_counts(codes: np.ndarray, clique: Clique, sizes) -> np.ndarray:
    """The histogram of `codes`[:, clique] over its cells, flattened in C order."""
    shape = tuple(sizes[i] for i in clique)
    flat = np.ravel_multi_index(tuple(codes[:, i] for i in clique), shape)
    return np.bincount(flat, minlength=int(np.prod(shape))).astype(np.float64)


def cells(clique: Clique, sizes) -> int:
    return int(np.prod([sizes[i] for i in clique]))


def workload(sizes, target: int, max_cells: int) -> List[Clique]:
    """Every 2-way marginal, and every 3-way one holding `target`, of at most `max_cells` cells."""
    columns = range(len(sizes))
    pairs = [tuple(pair) for pair in itertools.combinations(columns, 2)]
    triples = [tuple(sorted(pair + (target,))) for pair in itertools.combinations(
        [c for c in columns if c != target], 2)]
    return [clique for clique in pairs + triples if cells(clique, sizes) <= max_cells]


def check_workload(sizes, target: int, max_cells: int, names) -> None:
    """Refuse, before anything is released, a workload that leaves a column out: every column must be in some
    workload marginal of at most `max_cells` cells, or AIM could neither score nor measure it."""
    covered = {column for clique in workload(sizes, target, max_cells) for column in clique}
    for column in range(len(sizes)):
        if column not in covered:
            smallest = sizes[column] * min(size for other, size in enumerate(sizes) if other != column)
            raise ValueError(f"column {names[column]!r} ({sizes[column]} cells) is in no marginal of at most "
                             f"--max-cells {max_cells} cells (the smallest holding it has {smallest}): raise "
                             f"--max-cells to {smallest}, or declare fewer categories or bins for it.")


def candidate_weights(work: List[Clique]) -> Dict[Clique, float]:
    """AIM's candidates, the downward closure of the workload, each weighted by w_r = sum_s |r intersect s|."""
    closure = {subset for clique in work for size in range(1, len(clique) + 1)
               for subset in itertools.combinations(clique, size)}
    return {r: float(sum(len(set(r) & set(s)) for s in work)) for r in sorted(closure, key=lambda c: (len(c), c))}


def estimate_total(measurements: List[Measurement]) -> float:
    """The number of records, from the 1-way measurements (inverse-variance weighted; post-processing)."""
    ones = [m for m in measurements if len(m.clique) == 1]
    if any(m.stddev == 0 for m in ones):
        return float(next(m.values.sum() for m in ones if m.stddev == 0))
    weights = np.array([1 / (m.stddev ** 2 * m.values.size) for m in ones])
    sums = np.array([m.values.sum() for m in ones])
    return max(1.0, float(np.sum(weights * sums) / np.sum(weights)))


def measure_exactly(codes, sizes, target: int, max_cells: int) -> List[Measurement]:
    """No DP: every candidate measured without noise (the non-private sanity run: what the model can learn)."""
    return [Measurement(clique, marginal_counts(codes, clique, sizes), 0.0)
            for clique in candidate_weights(workload(sizes, target, max_cells))]


def run_aim(codes: np.ndarray, sizes, target: int, rho: float, model, rng: np.random.Generator,
            ledger: PrivacyLedger, names, max_cells: int = 10_000, rounds: int = None,
            log: Callable[[str], None] = print, delta: float = None) -> List[Measurement]:
    """Spend exactly `rho` (zCDP) on the private `codes` [N, columns] (column j in [0, sizes[j])) and return the
    measurements; `model` ends fitted to them. `names` name the columns in the ledger and the log; with `delta`, the
    log says the epsilon spent so far after every round."""
    if not rho > 0:
        raise ValueError(f"AIM needs a positive zCDP budget rho, got {rho}.")
    check_workload(sizes, target, max_cells, names)
    columns = len(sizes)
    rounds = rounds or ROUNDS_PER_COLUMN * columns
    candidates = candidate_weights(workload(sizes, target, max_cells))
    answers = {clique: marginal_counts(codes, clique, sizes) for clique in candidates}  # private: scores only
    sensitivity = max(candidates.values())
    sigma = math.sqrt(rounds / (2 * MEASUREMENT_SHARE * rho))
    epsilon = math.sqrt(8 * (1 - MEASUREMENT_SHARE) * rho / rounds)
    label = lambda clique: " x ".join(names[i] for i in clique)  # noqa: E731

    measurements, used = [], 0.0
    for column in range(columns):  # every 1-way marginal, as AIM starts
        if used + 0.5 / sigma ** 2 > rho:  # a budget too small for 16 rounds: the 1-way marginals take it all
            sigma = math.sqrt((columns - column) / (2 * (rho - used)))
        clique = (column,)
        measurements.append(Measurement(clique, gaussian_release(answers[clique], sigma, 1.0, rng, ledger,
                                                                 f"marginal {label(clique)}"), sigma))
        used += 0.5 / sigma ** 2
    started = time.time()
    spent = lambda: f"; epsilon {epsilon_for_rho(used, delta):.3g} so far" if delta else ""  # noqa: E731
    log(f"measured the {columns} one-way marginals (sigma {sigma:.1f}){spent()}")
    model.fit(measurements, estimate_total(measurements))
    round_number = 0
    while rho - used > 1e-12 * rho:
        round_number += 1
        if rho - used < 2 * (0.5 / sigma ** 2 + epsilon ** 2 / 8):  # the last round takes what is left
            remaining = rho - used
            sigma = math.sqrt(1 / (2 * MEASUREMENT_SHARE * remaining))
            epsilon = math.sqrt(8 * (1 - MEASUREMENT_SHARE) * remaining)
        total = estimate_total(measurements)
        names_list = list(candidates)
        fitted = model.marginals(names_list)
        scores = np.array([candidates[r] * (np.abs(answers[r] - total * p).sum()
                                            - math.sqrt(2 / math.pi) * sigma * answers[r].size)
                           for r, p in zip(names_list, fitted)])
        chosen = names_list[exponential_choice(scores, epsilon, sensitivity, rng, ledger,
                                               f"select the worst-fitted of {len(names_list)} marginals")]
        before = total * model.marginal(chosen)
        measurements.append(Measurement(chosen, gaussian_release(answers[chosen], sigma, 1.0, rng, ledger,
                                                                 f"marginal {label(chosen)}"), sigma))
        used, total = ledger.rho, estimate_total(measurements)
        model.fit(measurements, total)
        moved = np.abs(total * model.marginal(chosen) - before).sum()
        log(f"round {round_number}: measured {label(chosen)} ({answers[chosen].size} cells, sigma {sigma:.1f}); "
            f"budget used {used / rho:.1%}{spent()}; {time.time() - started:.0f} s")
        if moved <= math.sqrt(2 / math.pi) * sigma * answers[chosen].size:
            sigma, epsilon = sigma / 2, epsilon * 2
    return measurements
