"""Where a runtime keeps its files: the contract between the runtime process and the pipeline side that finds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safedeploy.reserve import reserve_path


@dataclass(frozen=True)
class RuntimePaths:
    """Where a runtime keeps its files, under the pipeline's state directory."""

    state_dir: Path

    @property
    def root(self) -> Path:
        """``<state>/runtime``."""
        return self.state_dir / "runtime"

    @property
    def info(self) -> Path:
        """Connection info: pid and URLs, written once the runtime listens."""
        return self.root / "runtime.json"

    @property
    def state(self) -> Path:
        """Control-plane state."""
        return self.root / "state.json"

    @property
    def credentials(self) -> Path:
        """The access key pair every runtime API request is signed with (mode 0600)."""
        return self.root / "credentials.json"

    @property
    def lock(self) -> Path:
        """Held by the running runtime for its whole life."""
        return self.root / "runtime.lock"

    @property
    def log(self) -> Path:
        """The runtime's own log."""
        return self.root / "runtime.log"

    @property
    def ports(self) -> Path:
        """The ports the runtime API and the gateway listen on, kept across restarts."""
        return self.root / "ports.json"

    @property
    def leases(self) -> Path:
        """Production deployments' leases on their routes."""
        return self.root / "leases.json"

    @property
    def reserve(self) -> Path:
        """The state directory's disk reserve for critical writes."""
        return reserve_path(self.state_dir)

    @property
    def store_root(self) -> Path:
        """The artifact store (the pipeline's ``s3``)."""
        return self.state_dir / "s3"
