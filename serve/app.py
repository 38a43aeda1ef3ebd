"""The Serve application: Ingress → Retriever → Generator, built from a serve config and its tier
(`build_app`), checked and deployed (`deploy`), or built by `serve run` / a RayService
(`app_builder`)."""

from __future__ import annotations

from pathlib import Path

from ray import serve

from ragtune.cluster.resources import serve_actor_options, torch_threads
from ragtune.cluster.tiers import get_tier
from ragtune.core.artifacts import IndexManifest
from ragtune.core.config import load_config, require_model
from ragtune.core.errors import ConfigError, InputError
from ragtune.serve.admission import HEALTH_SLOTS
from ragtune.serve.api import load_api_key_hashes
from ragtune.serve.config import (
    GeneratorDeploymentConfig,
    RetrieverDeploymentConfig,
    ScalingConfig,
    ServeJobConfig,
)
from ragtune.serve.ingress import Ingress
from ragtune.serve.replicas import Generator, RetrieverDeployment

SHUTDOWN_MARGIN_S = 5  # past the request deadline: time for the 504 (or the stream's error) to go out


def build_app(config: ServeJobConfig) -> serve.Application:
    """The typed builder: each deployment's replicas and resources from the config and tier. A
    replica being replaced or scaled down finishes what it holds: every request ends by its
    deadline, so Serve waits that long before force-killing one (its default is 20 s)."""
    tier = get_tier(config.tier)

    def options(scaling: ScalingConfig) -> dict:
        return {
            **scaling.deployment_options(),
            "ray_actor_options": serve_actor_options(tier, scaling.num_cpus, scaling.num_gpus),
            "logging_config": {"enable_access_log": config.access_log},
            "graceful_shutdown_timeout_s": config.request_timeout_s + SHUTDOWN_MARGIN_S,
        }

    def threads(settings: RetrieverDeploymentConfig | GeneratorDeploymentConfig) -> int | None:
        return torch_threads(tier, settings.scaling.num_cpus, settings.torch_threads)

    retriever_settings, generator_settings = config.retriever, config.generator
    retriever = RetrieverDeployment.options(**options(retriever_settings.scaling)).bind(
        str(retriever_settings.index_dir),
        threads(retriever_settings),
        retriever_settings.server_paths,
        retriever_settings.rerank,
    )
    generator = Generator.options(**options(generator_settings.scaling)).bind(
        generator_settings, threads(generator_settings)
    )
    keys = load_api_key_hashes(config.api_keys_file, config.api_keys_env)
    ingress = options(config.ingress)  # Serve's slots: the user requests, plus room for health checks
    ingress["max_ongoing_requests"] += HEALTH_SLOTS
    return Ingress.options(**ingress).bind(config, retriever, generator, keys)


def app_builder(args: dict[str, str]) -> serve.Application:
    """Serve application builder for `serve run` / RayService: args {"config": path}. Serve's
    proxy there listens on every interface, whatever `host` says, so an open app must say so."""
    config = load_config(ServeJobConfig, args["config"])
    require_auth_choice(config, args["config"])
    return build_app(config)


def require_auth_choice(config: ServeJobConfig, source: str) -> None:
    """Refuse an app served beyond this host (RayService, `serve run`) that does not say how
    requests are authenticated."""
    if config.auth is None and config.api_keys_file is None and config.api_keys_env is None:
        raise ConfigError(
            source,
            "auth",
            "a RayService app is reachable beyond this host: set api_keys_file "
            "or api_keys_env, or auth: none to serve openly",
        )


def check_inputs(config: ServeJobConfig) -> None:
    """Fail before deploying when the index, the base model, an adapter folder or the API keys
    file is missing (on this machine: the replicas of a remote cluster read their own disks)."""
    IndexManifest.read(config.retriever.index_dir)
    require_model(config.generator.base_model, "generator.base_model")
    if config.retriever.rerank is not None:
        require_model(config.retriever.rerank.model, "retriever.rerank.model")
    for name, folder in config.generator.adapters.items():
        if not Path(folder).is_dir():
            raise InputError(f"adapter '{name}': folder {folder} not found", "fix generator.adapters")
    if config.api_keys_file is not None and not config.api_keys_file.is_file():
        raise InputError(f"api_keys_file {config.api_keys_file} not found", "fix api_keys_file")


def deploy(config: ServeJobConfig, blocking: bool = False) -> str:
    """Start Serve's HTTP proxy on the configured host/port and (re)deploy the app; its URL."""
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_app(config), name=config.app_name, route_prefix=config.route_prefix, blocking=blocking)
    return f"http://{config.host}:{config.port}{config.route_prefix.rstrip('/')}"
