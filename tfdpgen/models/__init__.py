"""Generator families, one file each; every one trains its private networks through privacy.private_gradients."""
