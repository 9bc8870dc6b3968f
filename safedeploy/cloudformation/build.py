"""One build of the stacks (what ``model/run.py`` runs in CodeBuild): read, resolve, upload, render, write.

Order matters for "nothing half-written": the contract is validated and every template rendered in memory
before anything is uploaded or written; the Lambda bundle, the training code and the monitor's code (the
Processing jobs' code input, content-addressed like the Lambda bundle) are uploaded before the templates that
reference them are written; each file is replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from safedeploy import constants as C
from safedeploy import naming, shipping
from safedeploy.atomic import atomic_write_text
from safedeploy.cloudformation.context import BuildContext, ReusedVersion, resolve_images
from safedeploy.cloudformation.contract import read_contract
from safedeploy.cloudformation.lambda_bundle import build_lambda_bundle
from safedeploy.cloudformation.stacks import render_stacks
from safedeploy.cloudformation.template import Json
from safedeploy.cloudformation.training_job import inputs_digest
from safedeploy.errors import ConfigError, SafeDeployError
from safedeploy.revision import code_revision
from safedeploy.shipping import analyzer_files, analyzer_prefix
from safedeploy.spec import PipelineSpec
from safedeploy.store import S3Uri
from safedeploy.training.production import Production

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client


MAX_TEMPLATE_BYTES = 51_200
"""CloudFormation's limit on a template sent in the request body: under it, a template deploys however it is passed."""


def document_text(document: Json) -> str:
    """A template or configuration as the build writes it: compact JSON, keys sorted.

    Compact, because the production stack (two monitoring state machines, hooks, canary, API) does not fit
    :data:`MAX_TEMPLATE_BYTES` indented; the snapshots in ``tests/snapshots/templates`` are the readable form.
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"


class BuildError(SafeDeployError):
    """An AWS look-up or upload the build needs failed; the message names it."""


class AwsApis(Protocol):
    """The clients a build may use (created by the caller, on first use)."""

    @property
    def s3(self) -> S3Client:
        """S3: the Lambda bundle and the training code."""
        ...

    @property
    def codepipeline(self) -> CodePipelineClient:
        """CodePipeline: the running execution's id."""
        ...

    @property
    def kms(self) -> KMSClient:
        """KMS: the key ARN behind ``naming.kms_alias``."""
        ...


@dataclass(frozen=True)
class BuildOptions:
    """What the caller decided."""

    data_source: Path
    out_dir: Path
    project_root: Path
    execution_id: str | None = None
    kms_key_arn: str | None = None
    upload: bool = True
    pipeline_name: str | None = None
    """Defaults to ``naming.codepipeline_name(spec)``."""
    vendor: Path | None = None
    """Third-party packages installed for the Lambda platform (``pip install --target``), zipped with the code."""
    production: Production | None = None
    """The version serving production (the comparative quality gate's reference); None: none yet."""
    reuse: Callable[[str], ReusedVersion | None] | None = None
    """Given the training-inputs digest, the registered version to reuse (``model/run.py``'s registry look-up,
    :func:`safedeploy.cloudformation.reuse.find_reusable`); None: never reuse (e.g. offline)."""


@dataclass(frozen=True)
class BuildResult:
    """What the build wrote and uploaded."""

    execution_id: str
    files: tuple[Path, ...]
    uploads: tuple[str, ...]
    """``s3://`` URIs put in this build (an existing content-addressed object is not put again)."""
    lambda_code: S3Uri
    third_party: tuple[str, ...]
    analyzer_code: S3Uri | None = None
    """The monitor's code prefix (the Processing jobs' code input)."""
    reused: ReusedVersion | None = None
    """The version this execution reuses (identical training inputs); None: it trains."""
    inputs_sha256: str = ""
    """The training inputs' digest (``InputsSha256``)."""


def pipeline_execution_id(codepipeline: CodePipelineClient, pipeline: str) -> str:
    """The execution the Build stage is running now (``GetPipelineState``).

    Raises:
        BuildError: no such pipeline, no Build stage, or it is not running (then the id would be a stale one).
    """
    try:
        state = codepipeline.get_pipeline_state(name=pipeline)
    except (ClientError, BotoCoreError) as exc:
        raise BuildError(f"cannot read the state of pipeline {pipeline}: {exc}") from None
    for stage in state.get("stageStates", []):
        if stage.get("stageName") != C.STAGE_BUILD:
            continue
        latest = stage.get("latestExecution")
        if latest is None:
            break
        if latest.get("status") != "InProgress":
            raise BuildError(
                f"pipeline {pipeline}'s {C.STAGE_BUILD} stage is not running (latest execution "
                f"{latest.get('pipelineExecutionId')} is {latest.get('status')}): pass --execution-id"
            )
        return latest["pipelineExecutionId"]
    raise BuildError(f"pipeline {pipeline} has no running {C.STAGE_BUILD} stage: pass --execution-id")


def kms_key_arn(kms: KMSClient, alias: str) -> str:
    """The ARN of the key behind ``alias``."""
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except (ClientError, BotoCoreError) as exc:
        raise BuildError(f"cannot resolve the KMS key {alias}: {exc}") from None


def _exists(s3: S3Client, uri: S3Uri) -> bool:
    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise BuildError(f"cannot check {uri}: {exc}") from None
    return True


def put_object(s3: S3Client, uri: S3Uri, content: bytes, content_type: str, kms_key: str) -> None:
    """Put one object, encrypted with the pipeline's key."""
    try:
        s3.put_object(
            Bucket=uri.bucket,
            Key=uri.key,
            Body=content,
            ContentType=content_type,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=kms_key,
        )
    except (ClientError, BotoCoreError) as exc:
        raise BuildError(f"cannot upload {uri}: {exc}") from None


def _source_dir(spec: PipelineSpec, project_root: Path) -> Path:
    source = spec.training.source_dir
    source = source if source.is_absolute() else project_root / source
    if not (source / spec.training.entry_point).is_file():
        raise ConfigError(f"training entry point {source / spec.training.entry_point} not found")
    return source


def build(spec: PipelineSpec, options: BuildOptions, apis: AwsApis, now: datetime) -> BuildResult:
    """Render the four stacks for ``spec`` and the contract, upload what they reference, write the files.

    Raises:
        ContractError: the data-source contract is missing or invalid (nothing uploaded or written).
        ConfigError: the spec cannot be rendered (e.g. a schedule CodeDeploy cannot express).
        BuildError: an AWS look-up or upload failed.
    """
    contract = read_contract(options.data_source, spec)
    images = resolve_images(spec)
    source_archive = shipping.source_archive(_source_dir(spec, options.project_root))
    bundle = build_lambda_bundle(options.project_root, options.vendor)
    if options.upload and bundle.third_party:
        raise BuildError(
            f"the Lambda code imports {', '.join(bundle.third_party)}, which the Lambda runtime lacks: install "
            "lambdas/requirements.txt for the Lambda platform into a directory and pass it as --vendor "
            "(model/buildspec.yml does)"
        )
    execution_id = options.execution_id or pipeline_execution_id(
        apis.codepipeline, options.pipeline_name or naming.codepipeline_name(spec)
    )
    key_arn = options.kms_key_arn or kms_key_arn(apis.kms, naming.kms_alias(spec))
    ctx = BuildContext(
        spec=spec,
        execution_id=execution_id,
        started=now,
        contract=contract,
        images=images,
        code_revision=code_revision(options.project_root),
        lambda_code=naming.lambda_code_uri(spec, bundle.sha256),
        analyzer_code=analyzer_prefix(spec, options.project_root),
        production=options.production,
        source_archive_sha256=hashlib.sha256(source_archive).hexdigest(),
    )
    digest = inputs_digest(ctx)
    reused = options.reuse(digest) if options.reuse is not None else None
    if reused is not None:
        ctx = replace(ctx, reused=reused)
    stacks = render_stacks(ctx, key_arn)
    rendered = {
        f"{kind}.{suffix}.json": document_text(document)
        for kind, stack in stacks.items()
        for suffix, document in (("template", stack.template), ("config", stack.configuration))
    }
    for name, text in rendered.items():
        if len(text.encode()) > MAX_TEMPLATE_BYTES:
            raise BuildError(f"{name} is {len(text.encode())} bytes; CloudFormation takes at most {MAX_TEMPLATE_BYTES}")

    uploads: list[str] = []
    if options.upload:
        if not _exists(apis.s3, ctx.lambda_code):
            put_object(apis.s3, ctx.lambda_code, bundle.content, "application/zip", key_arn)
            uploads.append(str(ctx.lambda_code))
        if reused is None:  # a reused version serves its own source archive, never overwritten
            put_object(apis.s3, ctx.source_archive, source_archive, "application/gzip", key_arn)
            uploads.append(str(ctx.source_archive))
        for name, path in analyzer_files(options.project_root).items():  # the monitor's code, content-addressed
            uri = ctx.analyzer_code.join(name)
            if not _exists(apis.s3, uri):
                put_object(apis.s3, uri, path.read_bytes(), "text/x-python", key_arn)
                uploads.append(str(uri))

    files = []
    for name, text in rendered.items():
        path = options.out_dir / name
        atomic_write_text(path, text)
        files.append(path)
    return BuildResult(
        execution_id,
        tuple(files),
        tuple(uploads),
        ctx.lambda_code,
        bundle.third_party,
        ctx.analyzer_code,
        reused=reused,
        inputs_sha256=digest,
    )
