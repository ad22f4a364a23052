"""Exporting trained generators as SavedModels that TensorFlow Serving and plain TensorFlow can load."""
