"""The local runtime process.

One package per AWS service it speaks, state apart from protocol (sagemaker, sagemaker_runtime, apigateway,
codedeploy, cloudwatch); the router (api), authentication, the supervisor, and its files (paths, state).
"""
