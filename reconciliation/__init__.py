"""Reconciliation (issue 6): statement and settlement importers; matching and runs build on them.

Public surface of the importers (see reconciliation/README.md)::

    from reconciliation.importing import detect_format, file_sha256, read_settlement, read_statement
    from reconciliation.records import StatementLine, StatementHeader, ImportResult, RowError, FileRejected
"""
