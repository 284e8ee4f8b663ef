"""Pure business rules: no Flask, no SQLAlchemy, no HTTP (checked by tests/unit/test_layers.py)."""
