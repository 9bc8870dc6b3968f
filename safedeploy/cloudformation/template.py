"""A CloudFormation template as a plain dict, and the intrinsic functions the stacks use.

Request strings may carry template parameters as ``${Name}`` tokens (a deployment's names contain
``${ModelVersion}``): :func:`parameterize` turns such strings into ``Fn::Sub`` (or ``Ref`` when the string is
the token alone), so the same request builder serves both the local backend and the templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]

KMS_KEY_PARAMETER = "KmsKeyArn"
"""ARN of the pipeline's KMS key (``naming.kms_alias``): log groups and Lambda need a key ARN, not an alias."""
MODEL_VERSION_PARAMETER = "ModelVersion"
"""The registry version the deploy stacks serve: an SSM parameter the training state machine writes after it
registers the model (``naming.model_version_parameter``), resolved by CloudFormation when the stack deploys."""
BLUE_ENDPOINT_PARAMETER = "BlueEndpoint"
"""The endpoint production serves when the deploy-prd stack's update begins (blue): the SSM parameter
``naming.production_endpoint_parameter`` (``none`` before the first deployment)."""
AUC_THRESHOLD_PARAMETER = "AucThreshold"
"""The served version's model-quality AUC threshold when the spec sets none: the SSM parameter the training state
machine writes from its baseline's ``constraints.json`` (``naming.auc_threshold_parameter``)."""
TEMPLATE_PARAMETERS = (KMS_KEY_PARAMETER, MODEL_VERSION_PARAMETER, BLUE_ENDPOINT_PARAMETER)
_TOKEN = re.compile(r"\$\{(" + "|".join(TEMPLATE_PARAMETERS) + r")\}")


def token(parameter: str) -> str:
    """The ``${Name}`` token of a template parameter, to put inside a request string."""
    if parameter not in TEMPLATE_PARAMETERS:
        raise ValueError(f"unknown template parameter {parameter!r}")
    return "${" + parameter + "}"


def ref(name: str) -> Json:
    """``Ref``: a parameter's value, or a resource's primary identifier."""
    return {"Ref": name}


def get_att(resource: str, attribute: str) -> Json:
    """``Fn::GetAtt``: an attribute of a resource in the same template."""
    return {"Fn::GetAtt": [resource, attribute]}


def sub(text: str) -> Json:
    """``Fn::Sub``: ``${Name}`` placeholders replaced by parameters, resources or pseudo parameters."""
    return {"Fn::Sub": text}


def parameterize(value: Any) -> Any:
    """Replace strings holding template-parameter tokens by ``Ref``/``Fn::Sub``, recursively.

    Strings without a token (every string of the local backend's requests) pass through unchanged.
    """
    if isinstance(value, str):
        if _TOKEN.fullmatch(value):
            return ref(value[2:-1])
        return sub(value) if _TOKEN.search(value) else value
    if isinstance(value, Mapping):
        return {key: parameterize(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [parameterize(item) for item in value]
    return value


def checkov_skips(*skips: tuple[str, str]) -> Json:
    """Resource ``Metadata`` that skips checkov checks, each with the reason it does not apply."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in skips]}}


class Template:
    """A template under construction: parameters, resources and outputs, with duplicate ids refused."""

    def __init__(self, description: str, *, serverless: bool = False) -> None:
        self.description = description
        self.serverless = serverless
        self.parameters: Json = {}
        self.resources: Json = {}
        self.outputs: Json = {}

    def parameter(self, name: str, description: str, *, pattern: str | None = None) -> Json:
        """Declare a String parameter; return its ``Ref``."""
        declared: Json = {"Type": "String", "Description": description}
        if pattern is not None:
            declared["AllowedPattern"] = pattern
        self.parameters[name] = declared
        return ref(name)

    def kms_key_parameter(self, alias: str) -> Json:
        """Declare :data:`KMS_KEY_PARAMETER`; return its ``Ref``."""
        return self.parameter(
            KMS_KEY_PARAMETER,
            f"ARN of the pipeline's KMS key ({alias}); model/run.py resolves the alias.",
            pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[a-zA-Z0-9-]+$",
        )

    def model_version_parameter(self) -> Json:
        """Declare :data:`MODEL_VERSION_PARAMETER` (an SSM parameter's value); return its ``Ref``."""
        self.parameters[MODEL_VERSION_PARAMETER] = {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Description": "SSM parameter holding the Model Registry version to serve (written by the training "
            "state machine once the version is registered).",
        }
        return ref(MODEL_VERSION_PARAMETER)

    def auc_threshold_parameter(self) -> Json:
        """Declare :data:`AUC_THRESHOLD_PARAMETER` (an SSM parameter's value); return its ``Ref``."""
        self.parameters[AUC_THRESHOLD_PARAMETER] = {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Description": "SSM parameter holding the served version's model-quality AUC threshold (written by the "
            "training state machine from its baseline's constraints.json).",
        }
        return ref(AUC_THRESHOLD_PARAMETER)

    def blue_endpoint_parameter(self) -> Json:
        """Declare :data:`BLUE_ENDPOINT_PARAMETER` (an SSM parameter's value); return its ``Ref``."""
        self.parameters[BLUE_ENDPOINT_PARAMETER] = {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Description": "SSM parameter naming the endpoint production serves (blue; none before the first "
            "deployment), recorded by the post-traffic hook.",
        }
        return ref(BLUE_ENDPOINT_PARAMETER)

    def add(
        self,
        logical_id: str,
        resource_type: str,
        properties: Mapping[str, Any],
        *,
        depends_on: Sequence[str] = (),
        metadata: Json | None = None,
        deletion_policy: str | None = None,
    ) -> str:
        """Add a resource; return its logical id (for ``Ref``/``Fn::GetAtt``).

        ``deletion_policy`` (``Retain``/``Delete``) applies on deletion and on replacement alike.
        """
        if logical_id in self.resources:
            raise ValueError(f"resource {logical_id} is already in the template")
        resource: Json = {"Type": resource_type, "Properties": dict(properties)}
        if depends_on:
            resource["DependsOn"] = list(depends_on)
        if metadata:
            resource["Metadata"] = metadata
        if deletion_policy is not None:
            resource["DeletionPolicy"] = deletion_policy
            resource["UpdateReplacePolicy"] = deletion_policy
        self.resources[logical_id] = resource
        return logical_id

    def output(self, name: str, value: Any, description: str) -> None:
        """Add a stack output."""
        self.outputs[name] = {"Description": description, "Value": value}

    def to_dict(self) -> Json:
        """The template document."""
        document: Json = {"AWSTemplateFormatVersion": "2010-09-09"}
        if self.serverless:
            document["Transform"] = "AWS::Serverless-2016-10-31"
        document["Description"] = self.description
        if self.parameters:
            document["Parameters"] = self.parameters
        document["Resources"] = self.resources
        if self.outputs:
            document["Outputs"] = self.outputs
        return document


def log_group(template: Template, logical_id: str, name: str, kms_key: Json, retention_days: int) -> str:
    """A KMS-encrypted log group with a retention; return its logical id.

    Deleted with its stack: the names are fixed, so a retained group would block the stack's re-creation.
    """
    return template.add(
        logical_id,
        "AWS::Logs::LogGroup",
        {"LogGroupName": name, "KmsKeyId": kms_key, "RetentionInDays": retention_days},
        deletion_policy="Delete",
    )
