"""A table generator fitted to noisy marginals: a mixture of K product distributions, as a Keras model.

p(x) = sum_k pi_k prod_j softmax(logits_kj)[x_j]: each component is independent across columns, the mixture carries
their dependencies (RAP, Aydore et al. ICML 2021, and GEM, Liu, Vietri and Wu NeurIPS 2021, fit such a generator to
noisy marginal answers; mbi ships the same family as MixtureOfProducts). Any marginal is exact and cheap: the
mixture of the components' outer products, a few matrix products. The private part is only which marginals are
measured and their noise (privacy.aim); fitting the mixture to the measurements is post-processing, so it is fitted
well: weighted least squares, sum_r ||N p_r - y_r||^2 / sigma_r^2 (the Gaussian likelihood of the measurements, as
Private-PGM's estimator uses), with Adam.

The fit also pays for dependence the measurements do not show. Private-PGM's estimate is the maximum-entropy
distribution consistent with the measurements (McKenna, Sheldon, Miklau ICML 2019): columns no measurement links stay
independent. A mixture has no such bias: its components can differ on any column, so noise fitted in a measured
marginal (and the random start) spreads into pairs nobody measured. The penalty `independence` x N x
sum_j I(component; column j), in nats, bounds the mixture's total correlation from above (sum_j H(x_j) - H(x) <=
sum_j I(z; x_j) when columns are independent given the component z) and so pulls the fit towards maximum entropy;
N x that penalty is on the scale of the measurements' log-likelihood. 0.01 was chosen on random Bayesian networks
with Adult's domain sizes (synthetic tables: `benchmarks/marginal_independence.py`), never on real records.

Columns are those of the declared schema, the condition column included: categories as declared, numeric columns cut
into `bins` equal bins over their declared bounds (public, so the domain costs no privacy); a numeric value is drawn
uniformly within its bin. Sampling by the condition draws a component from its posterior given the label, so
`sample_conditional` draws from p(x | label) exactly; `serving_default` draws from the joint. `sample(n)`, the
table a run writes and evaluates, is stratified (counts follow the model up to rounding, as Private-PGM's synthetic
data does) and carries far less sampling noise than n independent draws.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfdpgen.data.tables import TableData, TableSchema, table_codes
from tfdpgen.privacy.aim import check_workload, estimate_total, measure_exactly, run_aim

DEFAULT_COMPONENTS = 256
MAX_ANSWER_CELLS = 50_000_000  # the answer tensor A (condition values x W x W) stays under 200 MB
DEFAULT_BINS = 16
DEFAULT_INDEPENDENCE = 0.01  # see the module docstring: chosen on synthetic tables
MAX_CELLS = 10_000  # the largest marginal AIM may measure (AIM's own workload cap)
FINAL_FIT_STEPS = 2000  # the last fit, after every release: post-processing, so it can take its time


def domain_sizes(schema: TableSchema, bins: int = DEFAULT_BINS):
    return [column.width if column.type == "categorical" else bins for column in schema.columns]


def inverse_cdf(probabilities, uniforms):
    """Per row, the index whose cumulative probability first exceeds the row's uniform."""
    cumulative = tf.math.cumsum(probabilities, axis=-1)
    index = tf.searchsorted(cumulative, uniforms[:, None] * cumulative[:, -1:], side="right")[:, 0]
    return tf.minimum(index, tf.shape(probabilities)[-1] - 1)


def systematic_counts(probabilities: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """How many of `count` draws fall on each value: `count` evenly spaced points, one shared uniform offset, through
    the inverse CDF. Each value gets floor or ceil of count * p, count * p in expectation."""
    cumulative = np.cumsum(probabilities) / np.sum(probabilities)
    points = (np.arange(count) + rng.uniform()) / count
    index = np.minimum(np.searchsorted(cumulative, points, side="right"), len(probabilities) - 1)
    return np.bincount(index, minlength=len(probabilities))


class DPMarginalTable(keras.Model):
    """`fit(measurements, total)` fits the mixture to marginal measurements (privacy.aim.Measurement); `marginal`
    answers any marginal of at most two columns, or three with the condition; `generate(z, labels)` decodes to the
    schema's columns, like the tabular GAN's.

    Every such marginal is a slice of one tensor: A[v, a, b] = sum_k pi_k P_k(condition = v) P_k(a) P_k(b) over all
    (column, value) pairs a and b, a few matrix products (so fitting traces one graph for any set of measurements).
    """

    def __init__(self, schema: TableSchema, components: int = DEFAULT_COMPONENTS, bins: int = DEFAULT_BINS,
                 seed: int = None, fit_steps: int = 100, learning_rate: float = 0.05,
                 independence: float = DEFAULT_INDEPENDENCE, **kwargs):
        super().__init__(**kwargs)
        self.schema = schema
        self.components = components
        self.bins = bins
        self.sizes = domain_sizes(schema, bins)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        self.condition_index = [c.name for c in schema.columns].index(schema.condition)
        self.num_classes = self.sizes[self.condition_index]
        width = self.offsets[-1]
        if self.num_classes * width ** 2 > MAX_ANSWER_CELLS:
            raise ValueError(f"the table's domain is too wide for the marginal family ({width} values over all columns): "
                             "use fewer --bins or merge rare categories.")
        self.latent_dim = 2 * len(self.sizes) + 1  # one uniform for the component, two per column (value, within bin)
        self.fit_steps = fit_steps
        self.learning_rate = learning_rate
        self.independence = independence
        init = tf.random.stateless_normal([components, width], seed=[0 if seed is None else seed, 7])
        self.logits = tf.Variable(0.5 * init, name="logits")
        self.weight_logits = tf.Variable(tf.zeros([components]), name="weight_logits")
        self._optimizer = keras.optimizers.legacy.Adam(learning_rate)
        variables = [self.logits, self.weight_logits]
        signature = [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64),  # cells, segments
                     tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.float32),  # targets, weights
                     tf.TensorSpec([], tf.float32)]  # the independence penalty's weight

        def fit_step(cells, segments, targets, weights, penalty):
            with tf.GradientTape() as tape:
                fitted = tf.math.unsorted_segment_sum(tf.gather(self.answers(), cells), segments, tf.size(targets))
                loss = tf.reduce_sum(weights * tf.square(fitted - targets)) + penalty * self.component_information()
            self._optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        self._fit_step = tf.function(fit_step, input_signature=signature)
        self._gather = tf.function(lambda cells: tf.gather(self.answers(), cells),
                                   input_signature=[tf.TensorSpec([None], tf.int64)])

    samples_joint = True  # serving_default draws the condition from the model, not uniformly

    @property
    def generator_networks(self):
        """What an export saves: the mixture's two variables. Not the model itself, which also holds its fitting
        step and optimizer (saved with it, they made every load warn of "unsaved custom gradients") and is never
        built as a Keras layer (Keras warned "Skipping full serialization")."""
        parameters = tf.Module(name="mixture")
        parameters.logits, parameters.weight_logits = self.logits, self.weight_logits
        return [parameters]
    private_networks = property(lambda self: [])

    def column_probabilities(self, column):
        start, end = self.offsets[column], self.offsets[column + 1]
        return tf.nn.softmax(self.logits[:, start:end], axis=-1)

    def component_information(self):
        """sum_j I(component; column j) in nats: 0 exactly when the components agree on every column."""
        pi = tf.nn.softmax(self.weight_logits)
        information = 0.0
        for column in range(len(self.sizes)):
            log_p = tf.nn.log_softmax(self.logits[:, self.offsets[column]:self.offsets[column + 1]], -1)
            p = tf.exp(log_p)
            log_marginal = tf.math.log(tf.linalg.matvec(p, pi, transpose_a=True) + 1e-30)
            information += tf.reduce_sum(pi[:, None] * p * (log_p - log_marginal[None, :]))
        return information

    def answers(self):
        """[one-way (W), with the condition (V x W), A (V x W x W)] flattened, W values over all columns, V the
        condition's: every marginal the model answers is a gather from it (`cells`)."""
        pi = tf.nn.softmax(self.weight_logits)
        probabilities = tf.concat([self.column_probabilities(c) for c in range(len(self.sizes))], 1)
        condition = pi[:, None] * self.column_probabilities(self.condition_index)  # [K, V]
        pairs = tf.einsum("kv,ka,kb->vab", condition, probabilities, probabilities)
        return tf.concat([tf.linalg.matvec(probabilities, pi, transpose_a=True),
                          tf.reshape(tf.matmul(condition, probabilities, transpose_a=True), [-1]),
                          tf.reshape(pairs, [-1])], 0)

    def cells(self, clique) -> np.ndarray:
        """Where the cells of the marginal over `clique` (increasing column indices) lie in `answers()`, C order."""
        clique = tuple(clique)
        width, classes, target = self.offsets[-1], self.num_classes, self.condition_index
        grids = np.meshgrid(*[np.arange(self.sizes[c]) for c in clique], indexing="ij")
        value = {c: self.offsets[c] + grid.ravel() for c, grid in zip(clique, grids)}  # position among all W values
        others = [c for c in clique if c != target]
        if target in clique:
            label = value[target] - self.offsets[target]
        if len(clique) == 1:
            return value[clique[0]]
        if len(clique) == 2 and target in clique:
            return width + label * width + value[others[0]]
        if len(clique) == 2:  # summed over the condition's values: the indices of every v, added in `marginal`
            return np.stack([width + classes * width + v * width * width + value[others[0]] * width + value[others[1]]
                             for v in range(classes)])
        if len(clique) == 3 and target in clique:
            return width + classes * width + label * width * width + value[others[0]] * width + value[others[1]]
        raise ValueError(f"the marginal family answers marginals of up to two columns, or three with the condition "
                         f"column; got columns {clique}.")

    def marginal(self, clique) -> np.ndarray:
        return self.marginals([clique])[0]

    def marginals(self, cliques) -> list:
        """Several marginals (probabilities, flattened in C order) from one evaluation of the model."""
        cells = [self.cells(clique) for clique in cliques]
        flat = self._gather(tf.constant(np.concatenate([c.ravel() for c in cells]), tf.int64)).numpy()
        out, start = [], 0
        for c in cells:
            part = flat[start:start + c.size].astype(np.float64).reshape(c.shape)
            out.append(part.sum(0) if c.ndim == 2 else part)
            start += c.size
        return out

    def fit(self, measurements, total, steps=None):
        """Weighted least squares of the measurements, sum_r ||p_r - y_r / N||^2 / (sigma_r / N)^2, plus the
        independence penalty (module docstring), `steps` Adam steps (post-processing of the releases). Warm-starts from
        the current parameters, so each AIM round only adjusts the fit. Returns the last loss."""
        total = float(total)
        # the squared errors below are 2 / len(measurements) times the measurements' negative log-likelihood
        penalty = 2 * self.independence * total / len(measurements)
        cells, segments, targets, weights, count = [], [], [], [], 0
        for m in measurements:
            index = self.cells(m.clique)
            cells.append(index.ravel())  # a 2-way marginal sums its cells over the condition's values
            segments.append(np.tile(np.arange(count, count + m.values.size), index.size // m.values.size))
            count += m.values.size
            targets.append(m.values / total)
            variance = (max(m.stddev, 1.0) / total) ** 2 * len(measurements)
            weights.append(np.full(m.values.size, 1 / variance))
        arguments = [tf.constant(np.concatenate(cells), tf.int64), tf.constant(np.concatenate(segments), tf.int64),
                     tf.constant(np.concatenate(targets), tf.float32), tf.constant(np.concatenate(weights), tf.float32),
                     tf.constant(penalty, tf.float32)]
        for _ in range(steps or self.fit_steps):
            loss = self._fit_step(*arguments)
        return float(loss)

    def record_log_likelihood(self, codes) -> tf.Tensor:
        """log p(x) of records given as codes [N, columns] (for membership audits)."""
        codes = tf.convert_to_tensor(codes, tf.int32)
        log_joint = tf.nn.log_softmax(self.weight_logits)[None, :]
        for column in range(len(self.sizes)):
            log_p = tf.nn.log_softmax(self.logits[:, self.offsets[column]:self.offsets[column + 1]], -1)
            log_joint += tf.transpose(tf.gather(log_p, codes[:, column], axis=1))
        return tf.reduce_logsumexp(log_joint, 1)

    def record_losses(self, features, labels) -> np.ndarray:
        """-log p(record) of encoded records (data.tables' encoding): the loss a membership attack thresholds."""
        codes = table_codes(TableData.from_features(np.asarray(features), labels, self.schema), self.bins)
        return -self.record_log_likelihood(codes).numpy()

    def generate(self, z, labels=None):
        """One output per original column (categories as their declared strings, numbers within their bin) for
        standard-normal `z` [n, latent_dim]; with `labels`, the condition column is those labels."""
        uniforms = 0.5 * (1 + tf.math.erf(tf.cast(z, tf.float32) / np.sqrt(2)))
        columns = len(self.sizes)
        log_weights = tf.nn.log_softmax(self.weight_logits)[None, :]
        if labels is not None:  # the posterior of the component given the label
            labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
            log_condition = tf.math.log(self.column_probabilities(self.condition_index) + 1e-30)
            log_weights = log_weights + tf.transpose(tf.gather(log_condition, labels, axis=1))
        posterior = tf.exp(log_weights - tf.reduce_logsumexp(log_weights, 1, keepdims=True))
        posterior = tf.broadcast_to(posterior, [tf.shape(z)[0], self.components])
        component = inverse_cdf(posterior, uniforms[:, 0])
        codes = [labels if index == self.condition_index and labels is not None else
                 inverse_cdf(tf.gather(self.column_probabilities(index), component), uniforms[:, 1 + index])
                 for index in range(columns)]
        return self.decode(tf.stack([tf.cast(c, tf.int32) for c in codes], 1), uniforms[:, 1 + columns:])

    def decode(self, codes, within):
        """The schema's columns from codes [n, columns] (a category's index, a number's bin) and uniforms [n, columns]
        placing each number within its bin."""
        out = {}
        for index, column in enumerate(self.schema.columns):
            if column.type == "categorical":
                out[column.name] = tf.gather(tf.constant(column.values), codes[:, index])
            else:
                width = (column.max - column.min) / self.bins
                out[column.name] = column.min + (tf.cast(codes[:, index], tf.float32) + within[:, index]) * width
        return out

    def sample(self, num_samples: int, seed: int = 0, labels=None):
        """A table of `num_samples` rows from the joint, or from p(x | label) for given `labels`, stratified: how many
        rows each component gets (given the label), and how many of them take each value of a column, follow the
        model by systematic sampling (every count within one of its expectation, unbiased), and each column's values
        are shuffled within the component, so columns stay independent given the component as the model says. The
        table carries far less sampling noise than independent draws (`generate`, the export's), as Private-PGM's
        rounding does for MST's and AIM's tables."""
        rng = np.random.default_rng(seed)
        pi = tf.nn.softmax(self.weight_logits).numpy().astype(np.float64)
        probabilities = [self.column_probabilities(c).numpy().astype(np.float64) for c in range(len(self.sizes))]
        if labels is None:
            groups = [(np.arange(num_samples), pi)]
        else:
            labels = np.asarray(labels).reshape(-1).astype(np.int64)
            if len(labels) != num_samples or labels.min(initial=0) < 0 or labels.max(initial=0) >= self.num_classes:
                raise ValueError(f"labels must be {num_samples} class indices in [0, {self.num_classes}).")
            condition = probabilities[self.condition_index]
            groups = [(np.flatnonzero(labels == v), pi * condition[:, v]) for v in np.unique(labels)]
        codes = np.zeros([num_samples, len(self.sizes)], np.int64)
        for rows, weights in groups:
            rows, start = rng.permutation(rows), 0
            for component, count in enumerate(systematic_counts(weights, len(rows), rng)):
                members, start = rows[start:start + count], start + count
                for column, p in enumerate(probabilities):
                    values = np.repeat(np.arange(len(p[component])), systematic_counts(p[component], count, rng))
                    codes[members, column] = rng.permutation(values)
        if labels is not None:
            codes[:, self.condition_index] = labels
        within = rng.uniform(size=codes.shape).astype(np.float32)
        return {name: values.numpy() for name, values in self.decode(tf.constant(codes, tf.int32), within).items()}

    release_stream = ()  # AIM's noise stream under the run's secret key
    method = "AIM selection (McKenna et al. 2022) of noisy marginals; a mixture of products fitted to them"

    def check_release(self, max_cells=MAX_CELLS) -> None:
        """Refuse, before anything is written or released, settings AIM cannot run with."""
        check_workload(self.sizes, self.condition_index, max_cells, [column.name for column in self.schema.columns])

    def release_and_fit(self, data, train, budget, rng, ledger, seed=0, max_cells=MAX_CELLS, verbose=1):
        """The run's only access to the private rows `data`[train]: AIM's measurements and selections spending the
        zCDP budget of `budget` (a privacy.accounting.ReleaseBudget; None: every candidate measured exactly, a
        non-private run), then the last fit. Returns report fields."""
        codes = table_codes(data, self.bins)[train]
        names = [column.name for column in self.schema.columns]
        if budget is not None:
            log = print if verbose else (lambda line: None)
            measurements = run_aim(codes, self.sizes, self.condition_index, budget.rho, self, rng, ledger, names,
                                   max_cells, log=log, delta=budget.delta)
        else:
            measurements = measure_exactly(codes, self.sizes, self.condition_index, max_cells)
        self.fit(measurements, estimate_total(measurements), steps=FINAL_FIT_STEPS)
        return {"measured_marginals": [" x ".join(names[i] for i in m.clique) for m in measurements]}

    def describe_release(self, options) -> str:
        return f"AIM selection, mixture of {self.components} products"

    @staticmethod
    def privacy_text(report: dict) -> str:
        if report["epsilon"] is None:
            return "No noise was added (--noise-multiplier 0): no differential privacy statement applies.\n"
        counts = report["mechanisms"]
        return (f"This run made {counts.get('gaussian', 0)} Gaussian releases of marginal counts (L2 sensitivity 1 "
                f"each) and {counts.get('exponential', 0)} exponential-mechanism choices of which marginal to "
                f"measure, from {report['dataset_size']} private records, spending rho = {report['rho']:.6g} "
                f"(zero-concentrated DP) in all. Composed by dp_accounting's {report['composed_by'].upper()} "
                f"accountant, the run satisfies ({report['epsilon']:.6g}, {report['delta']:.0e})-differential "
                f"privacy for adding or removing one record (target epsilon {report['target_epsilon']}). The schema "
                "(columns, categories, numeric bounds and bins) is public and not protected. privacy.json lists every "
                "release.\n")

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "schema": TableSchema.from_dict(config["schema"])})

    def get_config(self):
        return {"schema": self.schema.to_dict(), "components": self.components, "bins": self.bins,
                "independence": self.independence}
