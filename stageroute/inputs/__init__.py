"""Loading and validation: request logs, Parquet footers, the model catalog, outcome tables."""
