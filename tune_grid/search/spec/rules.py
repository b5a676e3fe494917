"""The exception the registries' checks raise; the search-file model turns it into an error
that names the file and the key path."""

from __future__ import annotations

from tune_grid.errors import TuneGridError


class RuleBroken(TuneGridError):
    """A setting breaks one of its type's rules; ``key`` is relative to the setting."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
