"""Local serving: SageMaker-compatible endpoints, the InvokeEndpoint API, data capture and the REST API."""
