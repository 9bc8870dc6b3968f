"""API Gateway: the REST API routes, their per-model keys, and the Lambda proxy integration."""
