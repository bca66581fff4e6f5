"""The project's own exception types: messages a user can act on, printed without a traceback."""

from __future__ import annotations


class CiqError(Exception):
    """Base class of every error ciq reports to a user."""

    exit_code = 2


class ContractError(CiqError):
    """A contract file is missing, malformed or inconsistent."""


class LoadError(CiqError):
    """A raw file cannot be loaded (unreadable, wrong columns, leakage column, ...)."""


class RejectsExceeded(CiqError):
    """More rows were rejected than the contract tolerates."""

    exit_code = 1


class BuildError(CiqError):
    """dbt reported errors or failing gates."""

    exit_code = 1


class ReportError(CiqError):
    """The diagnostics report cannot be written (nothing built yet, unreadable artifacts, ...)."""


class PublishError(CiqError):
    """PostgreSQL cannot be reached, or a table cannot be published (the previous version stays)."""
