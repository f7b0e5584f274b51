"""stageroute: plan LLM deployments and routing tables from request/feedback logs (StageRoute)."""

__version__ = "0.1.0"
