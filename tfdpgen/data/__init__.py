"""Loading private data sets and turning them into DP-ready tf.data pipelines."""
