"""Train stage: the local training-job runner and the quality gate (the request: ``sagemaker_requests.training``)."""
