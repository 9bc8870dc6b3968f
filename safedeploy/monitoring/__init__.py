"""Data-quality monitoring: Model Monitor's formats and semantics, built in this project."""
