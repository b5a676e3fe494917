"""The root of tune-grid's exceptions (dependency-free, so ``analysis/`` can derive from it too).

Every error tune-grid raises for bad input or a bad file derives from :class:`TuneGridError`:
``ConfigError``, ``SpaceFileError``, ``ResultsSchemaError`` (and ``AnalysisError``),
``CheckpointError``, ``SearchError``, ``ResumeStateError``. The command line catches it once and
prints ``error: <message>`` on one line with exit status 2.
"""

from __future__ import annotations


class TuneGridError(Exception):
    """Something tune-grid was asked to do cannot be done as given; the message says why."""
