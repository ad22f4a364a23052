"""The generator families, one record each: the only list of them. The run wing builds, trains and rebuilds a family
from its record, and the CLI reads its choices, flags and help from here.

A new family is one model file and one `register(Family(...))`: its class builds from the data's shape
(`image_shape`, `num_classes` or `schema`) and rebuilds from its `get_config()` by `from_config`; a DP-SGD family's
train_step asks privacy/ for its private gradient, a one-shot family's `release_and_fit` calls privacy/ mechanisms.
"""
import dataclasses
from typing import Dict, Tuple

from tfdpgen.models.diffusion import DPDiffusion
from tfdpgen.models.gan import DPGAN
from tfdpgen.models.marginal import DEFAULT_BINS, DEFAULT_COMPONENTS, DEFAULT_INDEPENDENCE, MAX_CELLS, DPMarginalTable
from tfdpgen.models.merf import DEFAULT_FIT_STEPS, DEFAULT_FREQUENCIES, DPMERF
from tfdpgen.models.sinkhorn import DPSinkhorn
from tfdpgen.models.tabular_gan import DPTableGAN
from tfdpgen.models.vae import DPVAE

IMAGES, TABLE = "images", "table"
DP_SGD, ONE_SHOT = "dp-sgd", "one-shot"
# What a DP-SGD run uses for a setting neither given nor in its family's recipe.
DEFAULTS = {"batch_size": 64, "epochs": 30, "l2_norm_clip": 1.0}


@dataclasses.dataclass(frozen=True)
class Option:
    """A family's own setting (a constructor or release argument), offered as the flag --NAME."""
    name: str
    default: object
    help: str
    kind: type = int
    least: float = 1
    release: bool = False  # an argument of release_and_fit, not of the constructor


@dataclasses.dataclass(frozen=True)
class Family:
    """What a family is. `recipe` (and `recipe_28x28`, on top for 28x28 images) holds the settings a DP-SGD run uses
    where none is given, each chosen on public data as the comment at its record says; `network` in a recipe holds
    constructor settings."""
    name: str
    cls: type
    data: str  # IMAGES or TABLE
    mechanism: str  # DP_SGD (noised per-example gradients in train_step) or ONE_SHOT (releases, then a fit)
    summary: str  # one line for --help
    conditional: bool = False  # takes the labels (an image family; tables are always conditional on their target)
    adversarial: bool = False  # a DP discriminator, with --discriminator-steps per generator step
    latent: bool = True  # takes --latent-dim
    pretrainable: bool = False  # takes --pretrain (public images fitted without DP before DP step 0)
    default_dataset: str = "digits"
    recipe: dict = dataclasses.field(default_factory=dict)
    recipe_28x28: dict = dataclasses.field(default_factory=dict)
    options: Tuple[Option, ...] = ()
    accountant: str = "rdp"  # what composes its mechanisms where --accountant is not given
    title: str = None  # how errors name it (default: "the NAME family")

    @property
    def called(self) -> str:
        return self.title or f"the {self.name} family"

    def settings(self, record_shape=None) -> dict:
        """The settings this family trains with where none is given (`record_shape`: one record's)."""
        settings = {**DEFAULTS, **self.recipe}
        if tuple(record_shape or ()) == (28, 28, 1):
            settings.update(self.recipe_28x28)
        return settings

    def build(self, data, seed=None, latent_dim=None, **settings):
        """The family's model for `data` (images.Images or tables.Table); the label set is schema, not protected."""
        kwargs = {key: value for key, value in settings.items() if value is not None}
        if seed is not None:
            kwargs["seed"] = seed
        if latent_dim is not None:
            kwargs["latent_dim"] = latent_dim
        if self.data == TABLE:
            return self.cls(schema=data.schema, **kwargs)
        if self.conditional:
            kwargs["num_classes"] = data.num_classes
        return self.cls(image_shape=data.images.shape[1:], **kwargs)

    def rebuild(self, config: dict):
        """The network from the `get_config()` an export holds (weights come from the run's checkpoint)."""
        return self.cls.from_config(config)


FAMILIES: Dict[str, Family] = {}


def register(family: Family) -> Family:
    if family.name in FAMILIES:
        raise ValueError(f"a family named {family.name!r} is registered already.")
    FAMILIES[family.name] = family
    return family


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}: choose one of {sorted(FAMILIES)}.")
    return FAMILIES[name]


# Recipes chosen on scikit-learn's public digits (the default data), by the train-on-synthetic accuracy on its
# held-out digits at epsilon 3: the conditional VAE reaches 0.86-0.89 with batch 256 for 120 epochs at 1e-2 (0.66 with
# batch 64 for 30 epochs at 5e-3). On 28x28 images its convolutional networks diverged at 1e-2 (0.13 at epsilon 10 on
# MNIST); on the public digits placed in 28x28 (1,438 train, 359 held out), latent 4, epsilon 10: 0.58 at 1e-3, 0.79 at
# 3e-3, 0.66 at 1e-2; without noise 0.86.
register(Family("vae", DPVAE, IMAGES, DP_SGD, "conditional DP-VAE", conditional=True,
                recipe={"batch_size": 256, "epochs": 120, "learning_rate": 1e-2},
                recipe_28x28={"learning_rate": 3e-3}))
# The GANs need many steps: without noise the conditional GAN reached 0.40 in 30 epochs, 0.68 in 60, 0.91 in 150 (0.65
# and 0.69 in two runs at epsilon 3); on the digits placed in 28x28 at epsilon 10, DP-GAN's several discriminator steps
# per generator step (5, in the same 150 epochs) gave 0.652 against 0.744 at 1 (one seed each), so they keep 1.
# Discriminators learn slower than their generators so that the generators keep up.
register(Family("gan", DPGAN, IMAGES, DP_SGD, "DP-GAN (unconditional)", adversarial=True,
                recipe={"epochs": 150, "learning_rate": 5e-4}))
register(Family("cgan", DPGAN, IMAGES, DP_SGD, "conditional DP-GAN", conditional=True, adversarial=True,
                recipe={"epochs": 150, "learning_rate": 5e-4}))
# The DP-GAN recipe (5 discriminator steps per generator step, as DPImageBench's DP-GAN configs; batch 256) with
# marginal anchoring (models/tabular_gan.py); without noise 1-way TV 0.049 and boosted-trees AUC 0.890 on Adult (rows
# 0..31999 trained, 32000..39999 scored; batch 64 with one step each: 0.033 and 0.898 in twice the time).
register(Family("tabgan", DPTableGAN, TABLE, DP_SGD, "tabular DP-GAN anchored on noisy marginals", adversarial=True,
                default_dataset="breast_cancer",
                recipe={"learning_rate": 5e-4, "batch_size": 256, "discriminator_steps": 5}))
# The denoiser costs about 2 s a step for 512 images on 28x28 (2 CPU cores): 30 epochs of the 8,000-image split at
# batch 512 are 470 steps, about 16 minutes. Spent as batch 512 with one noise draw each (K = 1) rather than batch 128
# with K = 4, the DP noise on the mean gradient, sigma / B at epsilon 10 and delta 1e-5, falls from 0.0051 to 0.0020.
register(Family("diffusion", DPDiffusion, IMAGES, DP_SGD, "DPDM diffusion (conditional)", conditional=True,
                latent=False, pretrainable=True, recipe={"learning_rate": 2e-3},
                recipe_28x28={"batch_size": 512, "epochs": 30, "network": {"multiplicity": 1}}))
# Per-record gradients with respect to the generated batch have norms near 0.05: clipped at 1 the noise drowns them
# (0.18), at 0.05 it reaches 0.82; with a sharper transport plan (models/sinkhorn.py) and clipped at 0.01: 0.86. On the
# digits placed in 28x28 the same change took it from 0.90 to 0.94 without noise and from 0.63 to 0.90 at epsilon 10.
register(Family("sinkhorn", DPSinkhorn, IMAGES, DP_SGD, "DP-Sinkhorn (conditional)", conditional=True,
                recipe={"learning_rate": 5e-3, "l2_norm_clip": 0.01}))
register(Family("marginal", DPMarginalTable, TABLE, ONE_SHOT,
                "AIM-selected noisy marginals and a mixture of products", latent=False,
                default_dataset="breast_cancer", options=(
                    Option("components", DEFAULT_COMPONENTS, "components of the mixture of products"),
                    Option("bins", DEFAULT_BINS, "equal bins per numeric column over its declared bounds", least=2),
                    Option("independence", DEFAULT_INDEPENDENCE,
                           "weight of the fit's pull towards independence where no measurement shows dependence "
                           "(maximum entropy; 0 turns it off)", kind=float, least=0),
                    Option("max_cells", MAX_CELLS, "the largest marginal AIM may measure, in cells", least=2,
                           release=True))))
# A single Gaussian release: PLD calibrates it exactly, with 5-9% less noise than through RDP for the same
# (epsilon, delta).
register(Family("merf", DPMERF, IMAGES, ONE_SHOT,
                "DP-MERF: one noisy release of random-feature mean embeddings", conditional=True,
                title="DP-MERF (--model merf)", accountant="pld", options=(
                    Option("frequencies", DEFAULT_FREQUENCIES, "random frequencies of the kernel's features"),
                    Option("fit_steps", DEFAULT_FIT_STEPS, "steps fitting the generator to the release",
                           release=True))))
