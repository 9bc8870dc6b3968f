"""The Lambda functions' code bundle: ``lambdas/`` plus the ``safedeploy`` modules it imports, reproducibly.

The first-party closure is found by reading imports (``ast``, nothing is executed): starting from every
module under ``lambdas/``, each ``import``/``from ... import`` of ``lambdas.*`` or ``safedeploy.*`` pulls in
that module (and its package ``__init__``), transitively. boto3/botocore come with the Lambda runtime; the
other third-party packages (``lambdas/requirements.txt``, pinned to ``uv.lock``) are installed for the Lambda
platform into a vendor directory by ``model/buildspec.yml`` and zipped at the bundle's root.

The zip is deterministic (sorted members, fixed timestamps and permissions), so the same sources give the
same sha256, which names the object (``naming.lambda_code_uri``): uploading is idempotent.
"""

from __future__ import annotations

import ast
import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

FIRST_PARTY = ("lambdas", "safedeploy")
LAMBDA_RUNTIME_PROVIDES = frozenset({"boto3", "botocore"})
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaBundle:
    """The bundle's bytes, its sha256 and what went in."""

    content: bytes
    sha256: str
    files: tuple[str, ...]
    third_party: tuple[str, ...]
    """Top-level third-party packages the bundled code imports that the Lambda runtime does not provide."""


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


class _ImportVisitor(ast.NodeVisitor):
    """Collects imported module names, skipping ``if TYPE_CHECKING:`` blocks (typing-only imports)."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        self.found.add(target)
        self.found.update(f"{target}.{alias.name}" for alias in node.names)  # ``from pkg import module``


def _imports(path: Path, module: str) -> set[str]:
    """Absolute module names ``path`` imports at run time (relative imports resolved against ``module``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    visitor = _ImportVisitor(module if path.name == "__init__.py" else module.rpartition(".")[0])
    visitor.visit(tree)
    return visitor.found


def _packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def first_party_closure(root: Path) -> tuple[dict[str, Path], set[str]]:
    """``(archive name -> file, third-party top-level imports)`` of ``lambdas/`` and what it imports."""
    pending = [
        ".".join(path.relative_to(root).with_suffix("").parts)
        for path in sorted((root / "lambdas").rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    seen: set[str] = set()
    files: dict[str, Path] = {}
    third_party: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:
            continue  # ``from pkg import name`` where name is not a module
        files[path.relative_to(root).as_posix()] = path
        pending.extend(_packages(module))
        for imported in _imports(path, module):
            top = imported.split(".")[0]
            if top in FIRST_PARTY:
                pending.append(imported)
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    return files, third_party


def _vendored(vendor: Path) -> tuple[dict[str, Path], set[str]]:
    """Files of an installed vendor directory (``pip install --target``) and the top-level names they provide."""
    files: dict[str, Path] = {}
    for path in sorted(vendor.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(vendor).as_posix()] = path
    tops = [p for p in vendor.iterdir() if not p.name.endswith("-info")]
    provided = {p.name if p.is_dir() else p.stem.split(".")[0] for p in tops}
    return files, provided


def build_lambda_bundle(root: Path, vendor: Path | None = None) -> LambdaBundle:
    """Zip the Lambda code under project ``root`` (deterministically), with the packages installed in ``vendor``."""
    files, third_party = first_party_closure(root)
    if not any(name.startswith("lambdas/") for name in files):
        raise FileNotFoundError(f"no Lambda code under {root / 'lambdas'}")
    if vendor is not None:
        if not vendor.is_dir():
            raise FileNotFoundError(f"vendor directory {vendor} does not exist")
        vendored, provided = _vendored(vendor)
        clash = sorted(set(vendored) & set(files))
        if clash:
            raise ValueError(f"vendored files would overwrite the project's: {', '.join(clash[:5])}")
        files = {**files, **vendored}
        third_party -= provided
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name].read_bytes())
    content = buffer.getvalue()
    return LambdaBundle(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        files=tuple(sorted(files)),
        third_party=tuple(sorted(third_party - LAMBDA_RUNTIME_PROVIDES)),
    )
