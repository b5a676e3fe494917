"""Running a search's trials on Ray Tune: the Tuner (``tuner``), the multi-seed trainable, the
Parquet mirror callbacks, ``--resume`` state repair, per-trial resources and oracle Ray tasks."""
