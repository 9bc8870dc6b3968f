"""CloudWatch: the endpoints' per-second metrics and GetMetricStatistics."""
