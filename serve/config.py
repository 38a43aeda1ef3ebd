"""Typed config of `ragtune serve`: the graph's deployments, their scaling, the API's limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ragtune.cluster.tiers import TierName
from ragtune.core.config import ModelName, StrictModel
from ragtune.retrieval.config import RerankConfig


def torch_threads_field():
    """A replica's torch thread count (`ragtune.cluster.resources.torch_threads`): by default the
    CPUs it reserves, at least one, so a replica reserving a fraction of a core computes on one
    thread unless told more."""
    return Field(
        None, ge=1, description="torch threads per replica; default the CPUs it reserves (at least 1)."
    )


class ScalingConfig(StrictModel):
    """Replicas and resources of one deployment (Serve autoscaling when min < max)."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(1, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(2, gt=0, description="Autoscaling target per replica.")
    max_ongoing_requests: int = Field(8, ge=1, description="Requests a replica takes at once.")
    num_cpus: float = Field(0.25, gt=0, description="CPUs per replica (fractions on small nodes).")
    num_gpus: float = Field(0, ge=0, description="GPUs per replica.")
    health_check_period_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How often Serve checks each replica; a killed replica is noticed and replaced "
        "within this (Serve's own default is 10 s).",
    )
    surge_percent: int = Field(
        0,
        ge=0,
        le=100,
        description="Extra replicas a redeploy may start, as a percentage of the replica count "
        "(rounded up), so replacements are ready before the replicas they replace stop: no pause "
        "in answering. They need room (or an autoscaler to add it): a redeploy waits, with no "
        "time limit, until they fit. 0 (Serve's default) stops old replicas first, a fifth of them "
        "at a time: a one-replica deployment pauses and requests wait for its replacement.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> ScalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) > max_replicas ({self.max_replicas})")
        return self

    def deployment_options(self) -> dict:
        """`num_replicas` or `autoscaling_config`, `max_ongoing_requests`, the health check
        period and the rollout surge, for Serve."""
        options: dict = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "health_check_period_s": self.health_check_period_s,
            "max_surge_percent": self.surge_percent,
        }
        if self.min_replicas == self.max_replicas:
            options["num_replicas"] = self.max_replicas
        else:
            options["autoscaling_config"] = {
                "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": 2.0,
                "downscale_delay_s": 30.0,
            }
        return options


class RetrieverDeploymentConfig(StrictModel):
    """The retriever: which index, how it searches, how many chunks a request may ask for."""

    index_dir: Path = Field(description="Index directory from `ragtune index`.")
    mode: Literal["dense", "bm25", "hybrid"] = Field("dense", description="Default search mode.")
    k: int = Field(4, ge=1, description="Chunks retrieved per question by default.")
    max_k: int = Field(20, ge=1, description="Largest k a request may ask for.")
    rerank: RerankConfig | None = Field(
        None, description="Rerank each query's candidates with a cross-encoder (batched per replica)."
    )
    server_paths: bool = Field(
        False,
        description="Sources as the index stores them (server paths); by default relative to "
        "the folder the indexed documents share.",
    )
    torch_threads: int | None = torch_threads_field()
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)

    @field_validator("index_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.resolve()  # replicas may run in another directory


class GeneratorDeploymentConfig(StrictModel):
    """The generator: base causal LM, optional LoRA adapters, generation limits."""

    base_model: ModelName = Field(description="HF model name or folder (e.g. an imported SmolLM2).")
    gguf_file: str | None = Field(None, description="GGUF file inside base_model.")
    model_name: str = Field("base", description="Name of the base model in the API's `model`.")
    adapters: dict[str, Path] = Field(
        default_factory=dict, description="API model name → adapter folder (a run's model/)."
    )
    default_model: str | None = Field(None, description="Model used when a request names none.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Weights and activations: auto is bfloat16 on a GPU, float32 on CPU "
        "(bfloat16 on a CPU with AVX-512 BF16 or AMX reads prompts about twice as fast).",
    )
    max_new_tokens: int = Field(256, ge=1, description="Upper bound of max_tokens.")
    max_input_tokens: int = Field(1536, ge=16, description="Prompt tokens kept (oldest cut).")
    system_prompt: str | None = Field(
        None, description="System prompt; default the one the adapter was trained with."
    )
    batch_size: int = Field(
        8, ge=1, description="Concurrent completions, and concurrent streams, decoded as one batch (1: none)."
    )
    batch_wait_s: float = Field(
        0.0,
        ge=0,
        le=5,
        description="How long a batch waits for more requests before decoding "
        "(0: a lone request starts at once; requests arriving meanwhile form the next batch).",
    )
    batch_invariant: bool = Field(
        True,
        description="A prompt's answer does not depend on the requests decoded beside it (each row "
        "attends over its own tokens; a lone row runs as two). Faster on long, uneven prompts (no "
        "padding read), ~20% slower decoding at batch 16 on short ones, a lone fp32 request about half "
        "as fast; false: the model's own attention and kernels.",
    )
    torch_threads: int | None = torch_threads_field()
    scaling: ScalingConfig = Field(default_factory=lambda: ScalingConfig(num_cpus=1))

    @field_validator("adapters")
    @classmethod
    def _adapters_absolute(cls, adapters: dict[str, Path]) -> dict[str, Path]:
        return {name: path.resolve() for name, path in adapters.items()}

    @model_validator(mode="after")
    def _default_known(self) -> GeneratorDeploymentConfig:
        names = {self.model_name, *self.adapters}
        if self.default_model is not None and self.default_model not in names:
            raise ValueError(f"default_model '{self.default_model}' is not one of {sorted(names)}")
        return self

    @property
    def model_names(self) -> list[str]:
        """Names a request's `model` may take: the base, then each adapter."""
        return [self.model_name, *self.adapters]

    @property
    def served_default(self) -> str:
        return self.default_model or next(iter(self.adapters), self.model_name)


class QueryConfig(StrictModel):
    """Query processing before retrieval: the intent check of `retrieval: auto`, follow-up
    rewriting and normalisation of the search text."""

    rewrite: Literal["none", "recent_turns", "condense"] = Field(
        "recent_turns",
        description="Follow-up → standalone query: recent user turns combined, or the generator condenses.",
    )
    recent_turns: int = Field(2, ge=1, description="User turns the recent_turns rewrite combines.")
    max_query_chars: int = Field(500, ge=16, description="Longest search query after normalisation.")
    max_messages: int = Field(64, ge=1, description="Most messages one conversation may hold.")


class ServeJobConfig(StrictModel):
    """`ragtune serve`: Ingress → Retriever → Generator on a tier, OpenAI-compatible HTTP."""

    kind: Literal["serve"] = "serve"
    app_name: str = Field("ragtune", description="Serve application name.")
    tier: TierName = Field("local", description="Tier all replicas run on.")
    host: str = Field("127.0.0.1", description="HTTP host of Serve's proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port.")
    route_prefix: str = Field("/", description="Route prefix of the app.")
    api_keys_file: Path | None = Field(None, description="File with one accepted API key per line.")
    api_keys_env: str | None = Field(None, min_length=1, description="Env var holding comma-separated keys.")
    auth: Literal["api_keys", "none"] | None = Field(
        None,
        description="api_keys: every route but /healthz needs a key (from api_keys_file / "
        "api_keys_env, which must hold one); none: an open app, which a non-loopback host must say "
        "explicitly. Default: api_keys when a key source is set, else none on a loopback host.",
    )
    max_request_chars: int = Field(20_000, ge=100, description="Largest total message text.")
    body_timeout_s: float = Field(
        10, gt=0, le=600, description="A request body not received within this gets a 408."
    )
    request_timeout_s: float = Field(
        300,
        gt=0,
        description="Longest a request may take, body to last token: a 504, or a stream ended "
        "with an error event.",
    )
    access_log: bool = Field(
        True,
        description="A log line per request in each replica (Serve's metrics count requests "
        "either way); off saves ~2 ms per /v1/retrieve on a 2-core machine.",
    )
    retriever: RetrieverDeploymentConfig
    generator: GeneratorDeploymentConfig
    ingress: ScalingConfig = Field(
        default_factory=lambda: ScalingConfig(num_cpus=0.1, max_ongoing_requests=64),
        description="Ingress replicas; max_ongoing_requests is the user requests each takes at "
        "once (reading, waiting or streaming), more get a 503; /healthz always has room.",
    )
    query: QueryConfig = Field(default_factory=QueryConfig)

    @model_validator(mode="after")
    def _auth_fails_closed(self) -> ServeJobConfig:
        sources = self.api_keys_file is not None or self.api_keys_env is not None
        if self.auth == "api_keys" and not sources:
            raise ValueError("auth: api_keys needs api_keys_file or api_keys_env")
        if self.auth == "none" and sources:
            raise ValueError("auth: none, yet api_keys_file / api_keys_env are set; drop one or the other")
        if self.auth is None and not sources and not _loopback(self.host):
            raise ValueError(
                f"serving on {self.host} with no API keys: set api_keys_file or api_keys_env, "
                "or auth: none to serve openly"
            )
        return self


def _loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
