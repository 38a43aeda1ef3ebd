"""The shipped configs, importable as `ragtune.configs` so the default tiers file travels inside
the wheel as package data (`ragtune.cluster.tiers.tiers_file`)."""
