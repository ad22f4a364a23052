"""tfdpgen: differentially private generative models for TensorFlow/Keras, and serving them."""
from tfdpgen import _compat  # noqa: F401  (must run before TensorFlow is imported anywhere else)

__version__ = "0.1.0"

from tfdpgen.privacy.settings import PrivacySettings  # noqa: E402
from tfdpgen.privacy.budget import PrivacyBudget  # noqa: E402
from tfdpgen.models.vae import DPVAE  # noqa: E402
from tfdpgen.runs import evaluate_run, export_run, load_trained, train_run  # noqa: E402

__all__ = ["PrivacySettings", "PrivacyBudget", "DPVAE", "train_run", "evaluate_run", "export_run", "load_trained",
           "__version__"]
