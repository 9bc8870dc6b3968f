"""The AWS backend's per-model CloudFormation stacks, rendered from the spec and the shared request builders.

``model/run.py`` (CodeBuild) renders ``<model>-training-job``, ``<model>-suggest-baseline``,
``<model>-deploy-dev`` and ``<model>-deploy-prd`` as plain JSON templates plus CodePipeline template
configurations (:func:`~safedeploy.cloudformation.stacks.render_stacks`). Every SageMaker request inside them
comes from the builders the local backend executes (:mod:`safedeploy.sagemaker_requests`: training, processing,
serving), so the two backends cannot drift apart.
"""
