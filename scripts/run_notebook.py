"""Execute a notebook headless on the project's registered kernel and save it with its outputs.

``make notebook`` runs ``notebooks/pipeline.ipynb`` this way into ``build/notebook/pipeline.ipynb``, so a run can
be looked at without Jupyter. The kernel is ``safedeploy`` (``make venv`` registers it inside ``.venv``); the
notebook's own folder is its working directory, as in Jupyter. A failing cell still saves the notebook up to and
including its error, and the exit status is 1.

Usage: python scripts/run_notebook.py NOTEBOOK.ipynb OUTPUT.ipynb [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from safedeploy.atomic import atomic_write_text

KERNEL = "safedeploy"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one cell may take (default 600)")
    args = parser.parse_args(argv)
    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=args.timeout,
        resources={"metadata": {"path": str(args.notebook.resolve().parent)}},
    )
    status = 0
    try:
        client.execute()
    except NoSuchKernel:
        print(f"error: the Jupyter kernel {KERNEL!r} is not registered: run `make venv`", file=sys.stderr)
        return 2
    except CellExecutionError as exc:
        print(f"error: a cell failed (saved with its error in {args.output}):\n{exc}", file=sys.stderr)
        status = 1
    atomic_write_text(args.output, nbformat.writes(notebook))
    if status == 0:
        print(f"executed {args.notebook} -> {args.output}")
    return status


if __name__ == "__main__":
    sys.exit(main())
