"""Where the project's REST API handler lives, and the route names and paths of a model's REST APIs."""

from __future__ import annotations

from pathlib import Path

from safedeploy import constants as C

PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_HANDLER = PROJECT_ROOT / "lambdas" / "api" / "app.py"


def api_route(model_name: str, stage: str) -> tuple[str, str]:
    """A model's REST API route for a stage: (name, path); ``/<model>/api`` for prd, ``/<model>/dev/api``."""
    if stage == C.PRD_STAGE:
        return f"{model_name}-{C.API_ROUTE_SUFFIX}", f"/{model_name}/{C.API_ROUTE_SUFFIX}"
    return f"{model_name}-{stage}-{C.API_ROUTE_SUFFIX}", f"/{model_name}/{stage}/{C.API_ROUTE_SUFFIX}"
