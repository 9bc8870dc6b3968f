"""SageMaker Runtime: InvokeEndpoint, the connections to serving instances, data capture."""
