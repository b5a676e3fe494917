"""After the trials: the held-out test days (``heldout``), the fresh-seed confirmation and its
race (``confirmation``, ``racing``), and the answer as text (``summary``)."""
