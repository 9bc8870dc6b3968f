"""Data stage: the raw churn table contract and dataset preparation."""
