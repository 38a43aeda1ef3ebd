"""ragtune: Ray-native retrieval-augmented generation and fine-tuning on hardware tiers.

Layers, each importing only those before it: `core` ← `cluster` ← `retrieval`, `train` ←
`serve` ← `eval` ← `demo` ← `cli`. Each maps onto a folder at the repository root.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ragtune")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
