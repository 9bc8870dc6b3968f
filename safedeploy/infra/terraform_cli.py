"""Find and run the terraform CLI: binary, provider mirror, CLI configuration, working copies.

Nothing here needs AWS. A machine without the CLI gets :class:`TerraformUnavailableError` naming what is missing; the
callers decide whether that is an error (``make plan`` only synthesizes) or a reasoned skip (tests).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from safedeploy.errors import SafeDeployError

MIRROR_ENV = "SAFEDEPLOY_TF_PLUGIN_MIRROR"
"""Environment variable naming a terraform provider filesystem mirror (``<dir>/registry.terraform.io/...``)."""
_MIRROR_CANDIDATES = (Path("/opt/tf-plugins"), Path.home() / ".terraform.d" / "plugins")
PROVIDER_SOURCE = "registry.terraform.io/hashicorp/aws"


class TerraformUnavailableError(SafeDeployError):
    """The terraform CLI (or, offline, a provider mirror) is not on this machine."""


class TerraformFailedError(SafeDeployError):
    """A terraform command exited non-zero; the message carries its output."""


def find_terraform() -> Path:
    """The terraform binary on PATH (or ``$TERRAFORM``); raise :class:`TerraformUnavailableError` if none."""
    explicit = os.environ.get("TERRAFORM")
    found = explicit if explicit and Path(explicit).is_file() else shutil.which("terraform")
    if not found:
        raise TerraformUnavailableError(
            "the terraform CLI is not installed (not on PATH, $TERRAFORM unset): install terraform >= 1.5 "
            "(https://developer.hashicorp.com/terraform/install) to validate and plan"
        )
    return Path(found)


def find_provider_mirror() -> Path | None:
    """A filesystem mirror holding hashicorp/aws, if this machine has one (``$SAFEDEPLOY_TF_PLUGIN_MIRROR`` first)."""
    explicit = os.environ.get(MIRROR_ENV)
    candidates = [Path(explicit)] if explicit else list(_MIRROR_CANDIDATES)
    for root in candidates:
        if (root / PROVIDER_SOURCE).is_dir() and any((root / PROVIDER_SOURCE).iterdir()):
            return root
    return None


def write_cli_config(path: Path, mirror: Path | None) -> Path:
    """Write a CLI configuration that installs hashicorp providers from ``mirror`` (else from the registry)."""
    if mirror is None:
        text = "# providers come from the public registry\n"
    else:
        text = (
            "provider_installation {\n"
            f"  filesystem_mirror {{\n    path    = {json.dumps(str(mirror))}\n"
            '    include = ["registry.terraform.io/hashicorp/*"]\n  }\n'
            '  direct {\n    exclude = ["registry.terraform.io/hashicorp/*"]\n  }\n'
            "}\n"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@dataclass(frozen=True)
class Terraform:
    """One terraform binary run in one working directory with a fixed environment."""

    binary: Path
    workdir: Path
    env: Mapping[str, str]

    def run(self, *args: str, timeout_s: float = 600) -> str:
        """Run ``terraform <args>``; return stdout, or raise :class:`TerraformFailedError` with the output."""
        argv: Sequence[str] = [str(self.binary), *args]
        try:
            done = subprocess.run(
                argv,
                cwd=self.workdir,
                env={**os.environ, **self.env},
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TerraformFailedError(f"terraform {' '.join(args)} did not finish in {timeout_s:.0f} s") from None
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise TerraformFailedError(f"terraform {' '.join(args)} failed (exit {done.returncode}):\n{output[-4000:]}")
        return done.stdout


def working_copy(source: Path, dest: Path, extra_files: Mapping[str, object] | None = None) -> Path:
    """Copy a root configuration's files (not ``.terraform``) into ``dest``, adding JSON ``extra_files``.

    ``dest`` keeps its ``.terraform`` directory between runs so providers are not reinstalled.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.tf.json"):
        stale.unlink()
    for item in source.iterdir():
        if item.is_file() and not item.name.startswith("."):
            shutil.copy2(item, dest / item.name)
    for name, document in (extra_files or {}).items():
        (dest / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return dest


def terraform_env(workdir: Path, mirror: Path | None) -> dict[str, str]:
    """Environment for offline-friendly, non-interactive runs in ``workdir``."""
    config = write_cli_config(workdir / ".terraformrc", mirror)
    return {
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
