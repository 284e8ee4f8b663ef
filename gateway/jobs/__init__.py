"""Background jobs: plain task functions, run by Celery (``BROKER_URL`` set) or an in-process scheduler."""
