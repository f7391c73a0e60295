"""Strategy agents: pure strategies, per-user managers (desired state), the runtime that drives them."""
