"""Train stage: the training-job request, the local job runner, and the quality gate."""
