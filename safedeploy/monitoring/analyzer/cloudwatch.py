"""Publishing the job's metrics to CloudWatch (``PutMetricData``), for a Processing job outside Model Monitor.

Model Monitor's platform read ``/opt/ml/output/metrics/cloudwatch`` and published it; a plain Processing job
has nobody to do that, so with ``metrics_publisher=cloudwatch`` the job publishes the same lines itself, in
batches of at most 1,000 data (the API's limit). The client is passed in (boto3's on AWS, a stub in tests);
boto3 is imported only when the job publishes (it is in SageMaker's framework images).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from safedeploy.monitoring.analyzer import formats as F

BATCH = 1000


def put_metric_data(client: Any, lines: Sequence[dict[str, Any]], namespace: str = F.METRIC_NAMESPACE_ENDPOINT) -> int:
    """Publish metric lines (the container contract's JSON objects); return how many data were sent."""
    data = [
        {
            "MetricName": line["MetricName"],
            "Dimensions": line["Dimensions"],
            "Timestamp": datetime.fromisoformat(line["Timestamp"].replace("Z", "+00:00")),
            "Value": float(line["Value"]),
            "Unit": line.get("Unit", "None"),
        }
        for line in lines
    ]
    for start in range(0, len(data), BATCH):
        client.put_metric_data(Namespace=namespace, MetricData=data[start : start + BATCH])
    return len(data)


def cloudwatch_client() -> Any:
    """boto3's CloudWatch client in the job's region (the Processing job's role grants PutMetricData)."""
    import boto3

    return boto3.client("cloudwatch")
