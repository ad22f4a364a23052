"""A run's configuration: frozen, and checked where it is built, before anything is read, written or trained.

Privacy and training settings (what run.json records, and a resumed run must repeat) are kept apart from the
performance settings (engine, strategy, devices, checkpoint interval), which change how fast a run goes, never what it
releases, as jax-privacy's execution plan keeps its PerformanceFlags.
"""
import dataclasses
import math
import os
from typing import Optional

from tfdpgen.data.tables import DATAFRAME, TABLES, TableSchema, is_frame, table_name
from tfdpgen.models.diffusion import PRETRAIN_EPOCHS
from tfdpgen.models.registry import DP_SGD, FAMILIES, TABLE, Family, family as find_family
from tfdpgen.privacy.ledger import ACCOUNTANTS
from tfdpgen.privacy.optimizers import canonical_name

DEFAULT_EPSILON = 3.0
# DP-SGD settings: a one-shot family refuses them when given (None, or the default below, counts as not given).
DP_SGD_ONLY = ("epochs", "batch_size", "l2_norm_clip", "learning_rate", "latent_dim", "dp2_learning_rate",
               "discriminator_steps", "pretrain", "pretrain_epochs")
DP_SGD_CHOICES = {"sampling": "poisson", "optimizer": "dp-adam", "clipping": "fixed", "engine": "fast",
                  "strategy": "default"}


@dataclasses.dataclass(frozen=True)
class Performance:
    engine: str = "fast"
    strategy: str = "default"
    devices: Optional[int] = None
    checkpoint_every: int = 100


@dataclasses.dataclass(frozen=True)
class RunConfig:
    family: Family
    dataset: str
    data_dir: Optional[str] = None  # resolved: the run evaluates and exports from any directory
    schema: Optional[dict] = None
    num_classes: Optional[int] = None  # an image set's declared classes (None: data.images.DECLARED_CLASSES)
    frame: object = None  # a DataFrame (never recorded)
    epsilon: Optional[float] = None
    delta: Optional[float] = None
    noise_multiplier: Optional[float] = None
    l2_norm_clip: Optional[float] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    sampling: str = "poisson"
    accountant: Optional[str] = None  # None: the family's (models.registry)
    optimizer: str = "dp-adam"
    learning_rate: Optional[float] = None
    latent_dim: Optional[int] = None
    seed: Optional[int] = None
    clipping: str = "fixed"
    target_quantile: float = 0.5
    dp2_delay: int = 100
    dp2_learning_rate: Optional[float] = None
    holdout: object = 0.2
    holdout_order: str = "random"
    insecure_noise_seed: Optional[int] = None  # never recorded, only whether it was given
    discriminator_steps: Optional[int] = None
    pretrain: Optional[str] = None
    pretrain_epochs: Optional[int] = None
    options: dict = dataclasses.field(default_factory=dict)  # the family's own (registry Option) settings
    performance: Performance = Performance()
    verbose: int = 1

    @classmethod
    def build(cls, model="vae", dataset=None, engine="fast", strategy="default", devices=None, checkpoint_every=100,
              **settings) -> "RunConfig":
        family = find_family(model)
        for name in [name for name in settings if name in FAMILIES and isinstance(settings[name], dict)]:
            settings.update(settings.pop(name))  # the earlier form, marginal={"components": 16}, still taken
        own = {option.name for option in family.options}
        for name in settings:
            if name in own or name in {f.name for f in dataclasses.fields(cls)} - {"family", "options", "performance",
                                                                                    "frame", "dataset"}:
                continue
            owners = [f.called for f in FAMILIES.values() if name in {o.name for o in f.options}]
            if owners:
                raise ValueError(f"--{name.replace('_', '-')} is one of the settings of {owners[0]}, not of {model}.")
            raise TypeError(f"train_run() got an unknown setting {name!r}.")
        options = {name: settings.pop(name) for name in own & set(settings) if settings[name] is not None}
        frame = None
        if is_frame(dataset):
            frame, dataset = dataset, DATAFRAME
            if family.data != TABLE:
                tables = " or ".join(f.name for f in FAMILIES.values() if f.data == TABLE)
                raise ValueError(f"a DataFrame is a table: train it with --model {tables}, not {model}.")
        if isinstance(settings.get("schema"), TableSchema):
            settings["schema"] = settings["schema"].to_dict()  # run.json records the schema as given
        if settings.get("data_dir") is not None:
            settings["data_dir"] = os.path.abspath(settings["data_dir"])
        if dataset is None and family.data == TABLE and settings.get("schema") is not None and settings.get("data_dir"):
            dataset = table_name(settings["data_dir"])  # the user's table, named as the user gave it
        config = cls(family=family, dataset=dataset or family.default_dataset, frame=frame, options=options,
                     performance=Performance(engine, strategy, devices, checkpoint_every), **settings)
        config.check()
        if config.accountant is None:
            config = dataclasses.replace(config, accountant=family.accountant)
        if config.epsilon is None and config.noise_multiplier != 0 and (
                config.noise_multiplier is None or family.mechanism != DP_SGD):
            config = dataclasses.replace(config, epsilon=DEFAULT_EPSILON)
        if family.mechanism == DP_SGD:
            config = dataclasses.replace(config, optimizer=canonical_name(config.optimizer))
            if config.pretrain is not None and config.pretrain_epochs is None:
                config = dataclasses.replace(config, pretrain_epochs=PRETRAIN_EPOCHS)
        return config

    @property
    def private(self) -> bool:
        return self.noise_multiplier != 0

    def check(self) -> None:
        family, name = self.family, self.family.name
        for option in family.options:
            value = self.options.get(option.name)
            if value is None:
                continue
            flag = f"--{option.name.replace('_', '-')}"
            if option.kind is int and not (isinstance(value, int) and value >= option.least):
                raise ValueError(f"{flag} must be a whole number of at least {option.least:g}, got {value!r}.")
            if option.kind is float and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                             and value >= option.least):
                raise ValueError(f"{flag} must be a number of at least {option.least:g}, got {value!r}.")
        if self.accountant not in (None, *ACCOUNTANTS):
            raise ValueError(f"--accountant must be one of {', '.join(ACCOUNTANTS)}, got {self.accountant!r}.")
        if self.delta is not None and not 0 < self.delta < 1:
            raise ValueError(f"--delta must be in (0, 1), got {self.delta!r}.")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be a whole number in [0, 2**32), got {self.seed}.")
        if self.insecure_noise_seed is not None and not 0 <= self.insecure_noise_seed < 2**61:
            raise ValueError(f"--insecure-noise-seed must be a whole number in [0, 2**61), got "
                             f"{self.insecure_noise_seed}.")
        if self.num_classes is not None:
            if family.data == TABLE:
                raise ValueError("--num-classes is for images; a table declares its classes in its schema.")
            if not (isinstance(self.num_classes, int) and not isinstance(self.num_classes, bool)
                    and self.num_classes >= 2):
                raise ValueError(f"--num-classes must be a whole number of at least 2, got {self.num_classes!r}.")
        if family.data == TABLE and self.schema is None and self.dataset not in TABLES + (DATAFRAME,):
            raise ValueError(f"{family.called} takes tables: --dataset {' or '.join(TABLES)}, or a CSV with "
                             "--data-dir and --schema.")
        if family.mechanism == DP_SGD:
            self.check_dp_sgd()
        else:
            self.check_one_shot()

    def check_one_shot(self) -> None:
        name = self.family.name
        for setting in DP_SGD_ONLY:
            if getattr(self, setting) is not None:
                raise ValueError(f"--{setting.replace('_', '-')} is a DP-SGD setting; the {name} family has no "
                                 "training steps (it releases noisy statistics once and fits to them): leave it out.")
        for setting, default in DP_SGD_CHOICES.items():
            value = getattr(self.performance, setting, None) if setting in ("engine", "strategy") else getattr(
                self, setting)
            if value != default:
                raise ValueError(f"--{setting} is a DP-SGD setting; the {name} family does not use it: leave it out.")
        if self.noise_multiplier not in (None, 0):
            raise ValueError(f"the {name} family calibrates its noise from --epsilon; --noise-multiplier takes only 0 "
                             "there (a non-private run, for sanity checks).")
        if self.noise_multiplier == 0 and self.epsilon is not None:
            raise ValueError("--noise-multiplier 0 is a non-private run: leave --epsilon out.")
        if self.epsilon is not None and not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"--epsilon must be a positive number, got {self.epsilon!r}.")

    def check_dp_sgd(self) -> None:
        family, performance = self.family, self.performance
        if performance.checkpoint_every < 1:
            raise ValueError(f"--checkpoint-every must be at least 1 step, got {performance.checkpoint_every}.")
        for flag, rate in (("--learning-rate", self.learning_rate), ("--dp2-learning-rate", self.dp2_learning_rate)):
            if rate is not None and not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"{flag} must be a positive number (a negative one climbs the loss), got {rate!r}; "
                                 "leave it unset for the model's default.")
        if self.pretrain is None and self.pretrain_epochs is not None:
            raise ValueError("--pretrain-epochs is a setting of --pretrain: name the public data set too.")
        if self.pretrain is not None and not family.pretrainable:
            able = ", ".join(f.name for f in FAMILIES.values() if f.pretrainable)
            raise ValueError(f"--pretrain is available for {able}, not {family.name}.")
        if self.pretrain_epochs is not None and not (isinstance(self.pretrain_epochs, int) and self.pretrain_epochs >= 1):
            raise ValueError(f"--pretrain-epochs must be a whole number of at least 1, got {self.pretrain_epochs!r}.")
        if self.discriminator_steps is not None:
            if not family.adversarial:
                gans = ", ".join(f.name for f in FAMILIES.values() if f.adversarial)
                raise ValueError(f"--discriminator-steps is a setting of the GANs ({gans}), not of {family.name}.")
            if not (isinstance(self.discriminator_steps, int) and self.discriminator_steps >= 1):
                raise ValueError("--discriminator-steps must be a whole number of at least 1, got "
                                 f"{self.discriminator_steps!r}.")
        if self.latent_dim is not None and not family.latent:
            raise ValueError(f"--latent-dim is not a setting of {family.name}: it has no latent space of its own.")

    def with_recipe(self, record_shape) -> "RunConfig":
        """A DP-SGD run's settings with its family's recipe wherever none was given."""
        recipe = self.family.settings(record_shape)
        given = {key: getattr(self, key) for key in ("learning_rate", "epochs", "batch_size", "l2_norm_clip",
                                                     "discriminator_steps")}
        filled = {key: recipe.get(key, 1 if key == "discriminator_steps" else None) if value is None else value
                  for key, value in given.items()}
        if not self.family.adversarial:
            filled["discriminator_steps"] = None
        return dataclasses.replace(self, **filled)

    def network_settings(self, record_shape) -> dict:
        return dict(self.family.settings(record_shape).get("network", {}))

    def to_json(self, record_shape=None) -> dict:
        """run.json: what a resumed run must repeat (no performance setting, no secret)."""
        common = {"model": self.family.name, "dataset": self.dataset, "data_dir": self.data_dir}
        if self.family.data != TABLE:
            common["num_classes"] = self.num_classes
        tail = {"insecure_noise_seed_given": self.insecure_noise_seed is not None}
        if self.family.mechanism != DP_SGD:
            table = {"schema": self.schema} if self.family.data == TABLE else {}
            return {**common, **table, "epsilon": self.epsilon, "delta": self.delta,
                    "noise_multiplier": self.noise_multiplier, "accountant": self.accountant, "seed": self.seed,
                    "holdout": self.holdout, "holdout_order": self.holdout_order, **self.resolved_options(), **tail}
        config = {**common, **{key: getattr(self, key) for key in (
            "epsilon", "delta", "noise_multiplier", "l2_norm_clip", "epochs", "batch_size", "sampling", "accountant",
            "optimizer", "learning_rate", "latent_dim", "seed", "clipping", "target_quantile", "dp2_delay",
            "dp2_learning_rate", "schema", "holdout", "holdout_order")}, **tail}
        if self.discriminator_steps is not None:
            config["discriminator_steps"] = self.discriminator_steps
        network = self.network_settings(record_shape)
        if network:
            config["network"] = network
        if self.pretrain is not None:
            config["pretrain"] = {"dataset": self.pretrain, "epochs": self.pretrain_epochs}
        return config

    def resolved_options(self) -> dict:
        """The family's own settings, defaults filled in."""
        return {option.name: self.options.get(option.name, option.default) for option in self.family.options}
