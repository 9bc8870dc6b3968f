"""The serving instance process: SageMaker's inference container contract (python -m safedeploy.instance.worker)."""
