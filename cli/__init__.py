"""The `ragtune` command, split by verb group; every verb is a thin call into a package."""
