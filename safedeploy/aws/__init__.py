"""The AWS side of the pipeline: typed clients, CodePipeline queries and approvals, S3 artifacts, cleanup.

Nothing here creates an AWS client at import: every function takes its clients (or a
:class:`~safedeploy.aws.clients.AwsClients` built from an injected ``boto3.Session``).
"""
