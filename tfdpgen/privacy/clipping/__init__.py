"""Per-example clipping engines. `fast`: per-layer norms from stored activations (one module per layer type);
`vectorized`: TensorFlow Privacy's vectorized optimizer, the reference."""
