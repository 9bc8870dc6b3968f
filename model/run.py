"""Render the per-model CloudFormation stacks (CodePipeline's Build stage runs this via ``model/buildspec.yml``).

Inputs: the data-source contract (``$CODEBUILD_SRC_DIR_DataSourceOutput``, or ``--data-source DIR|ZIP``), the
spec (``pipeline.toml`` and ``SAFEDEPLOY_*`` variables, as everywhere), and the pipeline execution
(``--execution-id``, else ``$PIPELINE_EXECUTION_ID``, else the Build stage's running execution from
``GetPipelineState``). Uploads the Lambda bundle and the monitor's code (both content-addressed) and the training
code to the artifact bucket, then writes ``<kind>.template.json`` and ``<kind>.config.json`` for the four stacks
to ``--out``.

The version serving production (the SSM parameter ``naming.production_endpoint_parameter`` -> its version -> the
registry's ``ModelDataUrl``) becomes the training job's ``production`` channel, and the state machine's quality gate
compares the candidate with it on the same held-out rows (:func:`safedeploy.aws.registry.resolve_production`).

Duplicate versions: the training inputs' digest (data, code, hyperparameters, image: what the local Train stage
computes) is looked up in the registry (``InputsSha256``); a reusable version with identical inputs renders the
training stack's reuse variant (no training job, no new version: :mod:`safedeploy.cloudformation.reuse`). The
Build action exports ``REUSED_MODEL_VERSION`` and ``VERSION_SERVES_PRODUCTION`` (written to ``--variables-file``,
sourced by ``model/buildspec.yml``): the pipeline skips the approval and DeployPrd for a version production
already serves.

Offline: ``--no-upload --execution-id ID --kms-key-arn ARN`` touches no AWS API at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from safedeploy.atomic import atomic_write_text
from safedeploy.cloudformation.build import AwsApis, BuildOptions, build
from safedeploy.cloudformation.context import ReusedVersion
from safedeploy.cloudformation.reuse import pipeline_variables
from safedeploy.errors import SafeDeployError
from safedeploy.spec import PipelineSpec, load_spec
from safedeploy.training.production import Production

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_SOURCE_ENV = "CODEBUILD_SRC_DIR_DataSourceOutput"
EXECUTION_ID_ENV = "PIPELINE_EXECUTION_ID"
PIPELINE_NAME_ENV = "PIPELINE_NAME"
DEFAULT_OUT = Path("build/templates")
VARIABLES_FILE = "pipeline-variables.env"
"""The Build action's exported variables, ``export NAME=value`` lines the buildspec sources."""


class SessionApis:
    """boto3 clients in the spec's region, each created when first used (never at import)."""

    def __init__(self, region: str) -> None:
        self.region = region

    @cached_property
    def _session(self) -> boto3.Session:
        import boto3

        return boto3.Session(region_name=self.region)

    @cached_property
    def s3(self) -> S3Client:
        """S3."""
        return self._session.client("s3")

    @cached_property
    def codepipeline(self) -> CodePipelineClient:
        """CodePipeline."""
        return self._session.client("codepipeline")

    @cached_property
    def kms(self) -> KMSClient:
        """KMS."""
        return self._session.client("kms")

    @cached_property
    def sagemaker(self) -> SageMakerClient:
        """SageMaker (the model registry)."""
        return self._session.client("sagemaker")

    def production(self, spec: PipelineSpec) -> Production | None:
        """The version serving production, its model archive (None before a first deployment)."""
        from safedeploy.aws.registry import AwsModelRegistry, resolve_production

        registry = AwsModelRegistry(self.sagemaker, spec.region, spec.account_id)
        return resolve_production(self._session.client("ssm"), registry, spec)

    def reusable(self, spec: PipelineSpec, inputs_sha256: str, production: Production | None) -> ReusedVersion | None:
        """The registered version with these training inputs that this build may reuse (None: train)."""
        from safedeploy.aws.registry import AwsModelRegistry
        from safedeploy.cloudformation.reuse import find_reusable

        registry = AwsModelRegistry(self.sagemaker, spec.region, spec.account_id)
        return find_reusable(spec, registry, self.s3, inputs_sha256, production)


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """The command line (defaults from CodeBuild's environment)."""
    parser = argparse.ArgumentParser(prog="model/run.py", description=(__doc__ or "").split("\n\n")[0])
    data_source = environ.get(DATA_SOURCE_ENV)
    parser.add_argument(
        "--data-source",
        type=Path,
        default=Path(data_source) if data_source else None,
        help=f"the data-source contract: its unpacked directory or the zip (default ${DATA_SOURCE_ENV})",
    )
    parser.add_argument("--config", type=Path, default=None, help="pipeline config file (default ./pipeline.toml)")
    parser.add_argument(
        "--execution-id",
        default=environ.get(EXECUTION_ID_ENV) or None,
        help=f"pipeline execution id (default ${EXECUTION_ID_ENV}, else the Build stage's, from CodePipeline)",
    )
    parser.add_argument(
        "--pipeline", default=environ.get(PIPELINE_NAME_ENV) or None, help=f"CodePipeline name (${PIPELINE_NAME_ENV})"
    )
    parser.add_argument("--kms-key-arn", default=None, help="the pipeline key's ARN (default: resolve its alias)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--no-upload", action="store_true", help="upload nothing (the templates still name the keys)")
    parser.add_argument(
        "--variables-file",
        type=Path,
        default=None,
        help=f"the Build action's exported variables as shell exports (default OUT/{VARIABLES_FILE})",
    )
    parser.add_argument(
        "--vendor",
        type=Path,
        default=None,
        help="lambdas/requirements.txt installed for the Lambda platform (pip install --target DIR), bundled",
    )
    args = parser.parse_args(argv)
    if args.data_source is None:
        parser.error(f"no data-source contract: pass --data-source DIR|ZIP or set ${DATA_SOURCE_ENV}")
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    apis: AwsApis | None = None,
    environ: Mapping[str, str] | None = None,
    now: Callable[[], datetime] | None = None,
    production: Callable[[PipelineSpec], Production | None] | None = None,
    reusable: Callable[[PipelineSpec, str, Production | None], ReusedVersion | None] | None = None,
) -> int:
    """Run one build; return the exit status (errors are printed, naming the problem)."""
    args = parse_args(argv, os.environ if environ is None else environ)
    try:
        spec = load_spec(args.config)
        session = SessionApis(spec.region) if apis is None else None
        online = session is not None and not args.no_upload
        lookup = production or (session.production if online and session is not None else None)
        try:  # the comparing gate's reference, and whether a reused version already serves production
            served = lookup(spec) if lookup is not None else None
            print(f"production: v{served.version} ({served.model_data_url})" if served else "production: none yet")
        except SafeDeployError as exc:
            if spec.gate.compare_with_production:
                raise  # the gate must not silently become absolute
            print(f"production: unknown ({exc}); a reused version is deployed as any other")
            served = None
        find = reusable or (session.reusable if online and session is not None else None)
        result = build(
            spec,
            BuildOptions(
                data_source=args.data_source,
                out_dir=args.out,
                project_root=PROJECT_ROOT,
                execution_id=args.execution_id,
                kms_key_arn=args.kms_key_arn,
                upload=not args.no_upload,
                pipeline_name=args.pipeline,
                vendor=args.vendor,
                production=served if spec.gate.compare_with_production else None,
                reuse=(lambda digest: find(spec, digest, served)) if find is not None else None,
            ),
            apis or session or SessionApis(spec.region),
            (now or (lambda: datetime.now(UTC)))(),
        )
    except SafeDeployError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"pipeline execution {result.execution_id}")
    print(f"training inputs {result.inputs_sha256}")
    if result.reused is not None:
        print(f"{result.reused.describe()}: the training stack's reuse variant (no training job, no registration)")
    variables = pipeline_variables(result.reused)
    variables_file = args.variables_file or args.out / VARIABLES_FILE
    atomic_write_text(variables_file, "".join(f"export {name}={value}\n" for name, value in variables.items()))
    print(f"pipeline variables {' '.join(f'{k}={v}' for k, v in variables.items())} ({variables_file})")
    for uri in result.uploads:
        print(f"uploaded {uri}")
    missing = f" (not vendored: {', '.join(result.third_party)})" if result.third_party else ""
    print(f"Lambda code {result.lambda_code}{missing}")
    if result.analyzer_code is not None:
        print(f"monitor code {result.analyzer_code}/")
    for path in result.files:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
