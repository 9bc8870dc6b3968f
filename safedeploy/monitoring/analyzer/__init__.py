"""The data-quality analyzer: the code a monitoring or baseline Processing job runs, locally or on SageMaker.

It follows SageMaker Model Monitor's bring-your-own-container contract (inputs from the environment, outputs
``statistics.json``, ``constraints.json``, ``constraint_violations.json``, CloudWatch metric files and
``/opt/ml/output/message``) and writes Model Monitor's file formats, so its reports are interchangeable with
the (closed) Model Monitor analyzer's.

This room ships into a framework container as a Processing job's code input: it imports only the standard
library, numpy, its own modules and ``safedeploy.features`` (orjson is used when the container has it). Nothing
here imports the pipeline, the runtime or boto3.
"""
