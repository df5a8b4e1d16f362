"""The registry: the only place that speaks SQL to the registry's tables (see ``database``)."""
from kb.registry.database import ChunkRow, Registry, VersionRow

__all__ = ["ChunkRow", "Registry", "VersionRow"]
