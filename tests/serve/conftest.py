"""The Serve app every tests/serve module talks to: deployed once, with a tiny model, an index of
three documents and one LoRA adapter."""

from __future__ import annotations

import pytest

from ragtune.retrieval.config import IndexJobConfig
from ragtune.retrieval.job import run_index_job
from ragtune.serve.config import ServeJobConfig
from tests.helpers import make_adapter, tiny_model
from tests.serve.http import PORT

DOCS = {
    "tea.md": "# Tea\n\nSteep green tea for two minutes in water below boiling.\n",
    "roses.md": "# Roses\n\nPrune roses in late winter, just before new growth starts.\n",
    "ray.md": "# Ray\n\nRay Serve deploys Python models behind HTTP endpoints.\n",
}


@pytest.fixture(scope="package")
def served(ray_cluster, tmp_path_factory):
    from ray import serve

    from ragtune.serve.app import deploy

    root = tmp_path_factory.mktemp("serve")
    (root / "docs").mkdir()
    for name, text in DOCS.items():
        (root / "docs" / name).write_text(text)
    run_index_job(IndexJobConfig(documents=[str(root / "docs")], output_dir=root / "index"))
    model = tiny_model(root)
    config = ServeJobConfig.model_validate(
        {
            "port": PORT,
            "retriever": {
                "index_dir": str(root / "index"),
                "k": 2,
                "max_k": 3,
                "torch_threads": 1,
                "scaling": {"min_replicas": 1, "max_replicas": 2, "num_cpus": 0.1},
            },
            "generator": {
                "base_model": str(model),
                "max_new_tokens": 8,
                "adapters": {"qa": str(make_adapter(model, root / "adapter"))},
                "scaling": {"num_cpus": 0.2},
            },
            "max_request_chars": 500,
            "body_timeout_s": 3,
            "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 8},
            "access_log": False,
        }
    )
    deploy(config)
    yield config, root
    serve.delete(config.app_name)
