"""Everything that makes training private: settings, accounting, the private gradient, DP optimizers, the budget."""
