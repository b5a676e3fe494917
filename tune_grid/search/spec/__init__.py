"""The search file: its pydantic model and checks (``space_file``), and one registry per
distribution type, searcher and scheduler, which validate their entries' keys and build the
Tune/Optuna objects (lazily: importing this package imports neither Ray nor Optuna)."""
