"""Provider plugin tests: one module per provider, the contract, and end to end."""
