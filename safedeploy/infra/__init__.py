"""Base-infrastructure tooling around the synthesized Terraform: CLI discovery, offline planning, plan summaries."""
