"""The app the Serve benchmarks drive: an embedded Ray, a small index (the Python-docs corpus if
`make python-docs` ran, else generated text), a tiny generator, deployed on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # for tests.helpers; an installed ragtune comes first

QUESTIONS = [
    "How do I read a file line by line?",
    "What is a list comprehension?",
    "How do I sort a dictionary by value?",
    "What does the with statement do?",
    "How are exceptions raised?",
    "What is a generator?",
]


def corpus(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir()
    source = ROOT / "data" / "python-docs" / "corpus.jsonl"
    if source.is_file():
        lines = source.read_text().splitlines()[:400]
        (docs / "python.jsonl").write_text("\n".join(lines) + "\n")
    else:
        for i in range(200):
            (docs / f"doc{i}.md").write_text(f"# Topic {i}\n\n" + " ".join(QUESTIONS) * 3)
    return docs


def deploy_bench_app(
    tmp: Path,
    port: int,
    access_log: bool = True,
    replicas: int = 1,
    rerank: dict | None = None,
    threads: int | None = None,
    fast_path: bool = True,
):
    """Start Ray, index the corpus, deploy the app (`replicas`: the fewest of the retriever and of
    the generator; `rerank`: the retriever's rerank section; `threads`: each replica's torch
    threads, by default the resource policy's: one for these fractional-CPU replicas;
    `fast_path`: Ray started as ragtune starts it, with Serve's fast path, else with Serve's
    defaults); its config and URL."""
    from contextlib import nullcontext

    import ray

    from ragtune.cluster.serve_env import node_processes_env
    from ragtune.retrieval.config import IndexJobConfig
    from ragtune.retrieval.job import run_index_job
    from ragtune.serve.app import deploy
    from ragtune.serve.config import ServeJobConfig
    from tests.helpers import tiny_model

    with node_processes_env() if fast_path else nullcontext():
        ray.init(
            address="local",
            num_cpus=2,
            resources={"tier:local": 1000},
            include_dashboard=False,
            configure_logging=False,
        )
    run_index_job(IndexJobConfig(documents=[str(corpus(tmp))], output_dir=tmp / "index"))
    config = ServeJobConfig.model_validate(
        {
            "port": port,
            "retriever": {
                "index_dir": str(tmp / "index"),
                "k": 3,
                "rerank": rerank,
                "torch_threads": threads,
                "scaling": {
                    "min_replicas": replicas,
                    "max_replicas": max(2, replicas),
                    "num_cpus": 0.2,
                    "target_ongoing_requests": 2,
                    "max_ongoing_requests": 16,
                },
            },
            "generator": {
                "base_model": str(tiny_model(tmp)),
                "max_new_tokens": 16,
                "torch_threads": threads,
                "scaling": {
                    "min_replicas": replicas,
                    "max_replicas": replicas,
                    "num_cpus": 0.5,
                    "max_ongoing_requests": 16,
                },
            },
            "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 64},
            "access_log": access_log,
        }
    )
    return config, deploy(config)
