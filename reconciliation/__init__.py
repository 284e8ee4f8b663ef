"""Reconciliation: statement importers, matching and runs (issue 6; not built yet)."""
