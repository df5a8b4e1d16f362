"""Ingestion: sources.yaml -> fetch -> extract -> language -> dedup -> chunk -> embed -> store."""
