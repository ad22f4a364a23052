"""tfdpgen: differentially private generative models for TensorFlow/Keras, and serving them."""
from tfdpgen import _compat  # noqa: F401  (must run before TensorFlow is imported anywhere else)

from tfdpgen.privacy.settings import PrivacySettings
from tfdpgen.privacy.budget import PrivacyBudget
from tfdpgen.models.vae import DPVAE

__version__ = "0.1.0"
__all__ = ["PrivacySettings", "PrivacyBudget", "DPVAE", "__version__"]
