"""Use cases. Each takes its dependencies (a session or session factory, providers, a clock)."""
