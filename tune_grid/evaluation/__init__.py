"""Evaluating trained policies on whole days: a checkpoint against the baselines
(``checkpoints``, used by ``tune-grid train`` and ``evaluate``) and a search's trials by behaviour
(``outcomes``)."""
