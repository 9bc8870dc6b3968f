"""The project's SageMaker notebook instance, which clones the CodeCommit repository and installs the project."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn
from cdktf_cdktf_provider_aws.sagemaker_notebook_instance import (
    SagemakerNotebookInstance,
    SagemakerNotebookInstanceInstanceMetadataServiceConfiguration,
)
from cdktf_cdktf_provider_aws.sagemaker_notebook_instance_lifecycle_configuration import (
    SagemakerNotebookInstanceLifecycleConfiguration,
)
from constructs import Construct

from cdktf_app.checks import skip_checks
from cdktf_app.names import TerraformNames
from cdktf_app.variables import NotebookNetwork
from safedeploy import naming

PLATFORM = "notebook-al2-v3"
HOME = "/home/ec2-user/SageMaker"
"""The notebook's persistent volume, where the clone lives across stops and starts."""
KERNEL_PYTHON = "/home/ec2-user/anaconda3/envs/python3/bin/python"

_SETUP = """#!/bin/bash
# Clone the project into the persistent volume (once) and install it into the python3 kernel's environment
# (on every start: environments outside the volume are reset when the instance stops).
set -eu
sudo -u ec2-user -i <<'SETUP'
set -eu
git config --global credential.helper '!aws codecommit credential-helper $@'
git config --global credential.UseHttpPath true
cd {home}
if [ ! -d {repository}/.git ]; then
  git clone {clone_url} {repository} || echo 'clone failed (is the repository still empty?): retried at the next start'
fi
if [ -f {repository}/pyproject.toml ]; then
  nohup {python} -m pip install --quiet --editable {repository} > {home}/.safedeploy-install.log 2>&1 &
fi
SETUP
"""


@dataclass(frozen=True, kw_only=True)
class NotebookConfig:
    """The notebook instance.

    Attributes:
        names: The environment's names.
        key_arn: Encrypts the instance's volume.
        role_arn: The notebook role.
        instance_type: Instance type (a Terraform expression).
        volume_size_gb: Volume size.
        repository: The CodeCommit repository name.
        clone_url: Its HTTPS clone URL.
        network: VPC mode: the private subnet and security groups (``DirectInternetAccess`` disabled); ``None``:
            SageMaker's direct internet access (dev, which has no VPC of its own).
    """

    names: TerraformNames
    key_arn: str
    role_arn: str
    instance_type: str
    volume_size_gb: int
    repository: str
    clone_url: str
    network: NotebookNetwork | None = None


def setup_script(*, repository: str, clone_url: str) -> str:
    """The lifecycle script (run as root at create and start, in under SageMaker's five minutes).

    It has no double quotes: it is passed to Terraform's ``base64encode`` as a string literal.
    """
    return _SETUP.format(home=HOME, repository=repository, clone_url=clone_url, python=KERNEL_PYTHON)


class Notebook(Construct):
    """Notebook instance: KMS-encrypted volume, root access off, IMDSv2, lifecycle configuration."""

    def __init__(self, scope: Construct, id_: str, *, config: NotebookConfig) -> None:
        super().__init__(scope, id_)
        name = config.names.name(naming.notebook_instance_name)
        network = config.network
        script = Fn.base64encode(setup_script(repository=config.repository, clone_url=config.clone_url))
        self.lifecycle = SagemakerNotebookInstanceLifecycleConfiguration(
            self, "lifecycle", name=name, on_create=script, on_start=script
        )
        self.instance = SagemakerNotebookInstance(
            self,
            "instance",
            name=name,
            role_arn=config.role_arn,
            instance_type=config.instance_type,
            platform_identifier=PLATFORM,
            volume_size=config.volume_size_gb,
            kms_key_id=config.key_arn,
            root_access="Disabled",
            direct_internet_access="Enabled" if network is None else "Disabled",
            subnet_id=None if network is None else network.subnet_id,
            security_groups=None if network is None else network.security_group_ids,
            lifecycle_config_name=self.lifecycle.name,
            instance_metadata_service_configuration=SagemakerNotebookInstanceInstanceMetadataServiceConfiguration(
                minimum_instance_metadata_service_version="2"
            ),
        )
        if network is not None:
            return  # VPC mode, no direct internet access: CKV_AWS_122 and CKV_AWS_306 pass
        no_vpc = (
            "Dev only (prod runs the notebook in a private subnet, DirectInternetAccess disabled: "
            "cdktf_app/config.py notebook_in_vpc). The dev base infrastructure has no VPC; the notebook reaches "
            "CodeCommit and PyPI directly to clone and install the project. It accepts no inbound connections (users "
            "open it through IAM-authorized presigned URLs), root access is disabled, IMDSv2 is required and its "
            "volume is KMS-encrypted."
        )
        skip_checks(
            self.instance,
            {
                "CKV_AWS_122": f"{no_vpc} Direct internet access is how it reaches them without a VPC.",
                "CKV_AWS_306": f"{no_vpc} A private subnet with VPC endpoints (CodeCommit, S3, SageMaker, a PyPI "
                "mirror) would replace direct access; the pipeline itself needs no VPC.",
            },
        )

    @property
    def name(self) -> str:
        """The notebook instance name."""
        return self.instance.name
