"""AWS-shaped API errors: each carries its HTTP status, its AWS error code and the fields AWS adds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ApiError(Exception):
    """An error answered the way the AWS service answers it (status, ``x-amzn-ErrorType``, JSON body)."""

    status: int
    code: str
    message: str
    fields: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"

    def body(self) -> dict[str, object]:
        """The JSON body, as the JSON and REST-JSON protocols carry it."""
        return {"__type": self.code, "message": self.message, **self.fields}

    def boto_response(self, request_id: str) -> dict[str, object]:
        """What botocore parses this error into (the dict of ``ClientError.response``)."""
        return {
            "Error": {"Code": self.code, "Message": self.message},
            "ResponseMetadata": {
                "RequestId": request_id,
                "HTTPStatusCode": self.status,
                "HTTPHeaders": {"x-amzn-errortype": self.code},
                "RetryAttempts": 0,
            },
            **self.fields,
        }


def validation(message: str) -> ApiError:
    """SageMaker's control-plane ``ValidationException`` (400)."""
    return ApiError(400, "ValidationException", message)


def resource_not_found(message: str) -> ApiError:
    """SageMaker's ``ResourceNotFound`` (400), e.g. for a missing model package."""
    return ApiError(400, "ResourceNotFound", message)
