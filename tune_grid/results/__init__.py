"""The Parquet results format (schema.py, no Ray) and the export from Tune (export.py)."""
