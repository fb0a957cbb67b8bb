"""Store-level failures; the API maps them to HTTP statuses."""

from __future__ import annotations


class StoreError(Exception):
    """Base of store failures."""


class NotFoundError(StoreError):
    """No such row for this account (other accounts' rows are indistinguishable from absent)."""


class NameTakenError(StoreError):
    """The account already has a resource of this kind with this name."""
