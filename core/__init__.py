"""The core every stage shares: config loading, errors, atomic writes, artifact manifests,
tracking settings and the prompt format. It imports nothing else of ragtune."""
