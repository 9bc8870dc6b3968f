"""What a model version is trained from, as one digest: identical inputs make no new version.

Data (the Data stage's sha256), code (the revision the registry records), hyperparameters and the training image
determine the model (training is seeded). Their digest is recorded in the registry (``InputsSha256``) when a
version is registered; the Train stage looks it up first and reuses the version instead of training a twin.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

INPUTS_METADATA_KEY = "InputsSha256"
"""The ``CustomerMetadataProperties`` key of a version's inputs digest."""


@dataclass(frozen=True)
class TrainingInputs:
    """The four inputs of a training run."""

    data_sha256: str
    code_revision: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)
    image: str = ""

    def canonical(self) -> str:
        """Canonical JSON of the four (sorted keys, no whitespace): what the digest is over."""
        return json.dumps(
            {
                "code": self.code_revision,
                "data": self.data_sha256,
                "hyperparameters": {str(k): str(v) for k, v in self.hyperparameters.items()},
                "image": self.image,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @property
    def digest(self) -> str:
        """sha256 (hex) of :meth:`canonical`."""
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()

    def describe(self) -> str:
        """``data 1a2b3c4d5e6f, code 0123456789ab, hyperparameters, image`` (short forms, for summaries)."""
        return f"data {self.data_sha256[:12]}, code {self.code_revision[:12]}, hyperparameters, image"


def code_identity(revision: str, source_archive_sha256: str) -> str:
    """The code part of the inputs: the revision, plus the shipped source's sha256 when the tree is not clean.

    A ``+dirty`` (or unknown) revision does not say what the code was: two different edits share it.
    """
    if revision.endswith("+dirty") or revision == "unknown":
        return f"{revision}:{source_archive_sha256}"
    return revision
