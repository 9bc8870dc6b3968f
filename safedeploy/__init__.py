"""safedeploy: a safe ML deployment pipeline for the customer-churn model.

One typed pipeline spec drives two backends: the embedded local backend (the default, no AWS account
and no Docker) and AWS. See ``docs/architecture.md`` for the stages and where each lives.
"""

__version__ = "0.1.0"
