"""Persistence: SQLAlchemy models and the database engine. The schema is owned by Alembic."""
