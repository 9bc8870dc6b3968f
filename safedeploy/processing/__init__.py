"""Processing jobs: SageMaker ``CreateProcessingJob`` requests, run locally or by SageMaker."""
