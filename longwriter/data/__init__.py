"""Data: the one sample schema, loaders, and verl parquet export/import."""
