"""tfdpgen: differentially private generative models for TensorFlow/Keras, and serving them.

The names below are imported when first used, so that `import tfdpgen` (and the `tfdpgen` command, before it sets
TensorFlow's log level) does not start TensorFlow."""
import importlib

__version__ = "0.1.0"

_NAMES = {
    "PrivacySettings": "tfdpgen.privacy.settings",
    "PrivacyBudget": "tfdpgen.privacy.budget",
    "DPVAE": "tfdpgen.models.vae",
    "train_run": "tfdpgen.runs",
    "evaluate_run": "tfdpgen.runs",
    "export_run": "tfdpgen.runs",
    "load_trained": "tfdpgen.runs",
}
__all__ = [*_NAMES, "__version__"]


def __getattr__(name):
    if name not in _NAMES:
        raise AttributeError(f"module 'tfdpgen' has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
