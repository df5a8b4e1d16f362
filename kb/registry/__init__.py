"""The registry: the only place that speaks SQL to the registry's tables (see ``database``)."""
from kb.registry.database import ChunkRow, Registry, VersionRow, open_registry, redact_url, registry_exists

__all__ = ["ChunkRow", "Registry", "VersionRow", "open_registry", "redact_url", "registry_exists"]
