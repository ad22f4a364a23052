"""What the synthetic data is worth: metrics and pictures."""
