"""Typed config of the autoscaling cluster (`configs/cluster.yaml`): where it runs, its tiers, the
ragtune artifact its nodes run (image or wheel) and its control-plane token."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from ragtune.cluster.tiers import load_tiers
from ragtune.core.config import StrictModel
from ragtune.core.errors import ConfigError

BASE_IMAGE = "rayproject/ray:2.60.0-py311"  # the Ray image a wheel is installed on (launcher nodes)
GPU_BASE_IMAGE = f"{BASE_IMAGE}-gpu"
BUILD_HINT = (
    "build it with `make dist` (the wheel) or `make image IMAGE=REGISTRY/ragtune:VERSION` (the image)"
)


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _absolute_unless_url(location: str) -> str:
    """A wheel location: a URL as given, a local path made absolute (as the shell saw it)."""
    return location if is_url(location) else str(Path(location).expanduser().resolve())


class ClusterConfig(StrictModel):
    """Where the cluster runs, which tiers it is made of, and what its nodes run."""

    kind: Literal["cluster"] = "cluster"
    cluster_name: str = Field(
        "ragtune", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Cluster name."
    )
    provider: Literal["aws", "gcp", "kubernetes"] = Field(description="Cloud or Kubernetes.")
    region: str | None = Field(None, description="Cloud region (aws, gcp).")
    availability_zone: str | None = Field(None, description="Zone(s), comma-separated.")
    project_id: str | None = Field(None, description="GCP project.")
    namespace: str = Field("default", description="Kubernetes namespace.")
    head_tier: str = Field(description="Tier of the head node (runs no work itself).")
    worker_tiers: list[str] = Field(min_length=1, description="Tiers the autoscaler may add.")
    image: str | None = Field(
        None,
        description="Image with ragtune installed (`make image`): what KubeRay pods run, and what "
        "launcher nodes run under Docker. Needed for kubernetes.",
    )
    gpu_image: str | None = Field(
        None, description="Image for tiers with GPUs (`make image-gpu`); default `image`."
    )
    wheel: Annotated[str, AfterValidator(_absolute_unless_url)] | None = Field(
        None,
        description="ragtune wheel the launcher installs on every node (on the Ray image, or on "
        "`image`): a file from `make dist`, or the folder holding one, uploaded to the nodes; or "
        "an https URL.",
    )
    auth_token_file: Annotated[Path, AfterValidator(lambda p: p.expanduser().resolve())] | None = Field(
        None,
        description="Launcher: file holding the Ray token all nodes share (token auth is on). "
        "Make one: python -c 'import secrets; print(secrets.token_hex(32))' > FILE; chmod 600 FILE",
    )
    auth_token_secret: str | None = Field(
        None,
        description="KubeRay: Secret holding the Ray token under key auth_token; default: the one "
        "the operator generates, named after the cluster.",
    )
    idle_timeout_minutes: float = Field(10, gt=0, description="Idle nodes go after this.")
    ssh_user: str = Field("ubuntu", description="SSH user for cloud VMs.")
    setup_commands: list[str] = Field(
        default_factory=list, description="Commands run on every launcher node before ragtune is installed."
    )
    tiers_file: Path | None = Field(
        None, description="Tiers file; default the one in effect (--tiers, RAGTUNE_TIERS, else shipped)."
    )

    @model_validator(mode="after")
    def _cloud_needs_region(self) -> ClusterConfig:
        if self.provider in ("aws", "gcp") and not self.region:
            raise ValueError(f"provider {self.provider} needs a region")
        if self.provider == "gcp" and not self.project_id:
            raise ValueError("provider gcp needs project_id")
        tiers = load_tiers(self.tiers_file)
        for name in [self.head_tier, *self.worker_tiers]:
            tiers.get(name)
        return self

    @property
    def _source(self) -> str:
        """How render errors name this config."""
        return f"cluster '{self.cluster_name}'"

    def node_image(self, gpus: int) -> str | None:
        """The ragtune image for a node with `gpus` GPUs, if one is configured."""
        return (self.gpu_image or self.image) if gpus else self.image

    def required_image(self, gpus: int) -> str:
        """The ragtune image a pod runs; a config error, saying how to build one, when unset."""
        image = self.node_image(gpus)
        if image is None:
            field = "gpu_image" if gpus and self.image is None else "image"
            raise ConfigError(
                self._source,
                field,
                "pods run ragtune from an image, and none is set: build one with `make image "
                "IMAGE=REGISTRY/ragtune:VERSION` (GPU tiers: `make image-gpu`), push it, and set "
                "it here or with --set image=...",
            )
        return image

    def wheel_file(self) -> str | None:
        """The wheel to install (a URL, or a local file found in a folder), or None when the
        image carries ragtune; a config error when neither says where ragtune comes from."""
        if self.wheel is None:
            if self.image is None:
                raise ConfigError(self._source, "wheel", f"nodes need ragtune: {BUILD_HINT}")
            return None
        if is_url(self.wheel):
            return self.wheel
        location = Path(self.wheel)
        wheels = sorted(location.glob("ragtune-*.whl")) if location.is_dir() else [location]
        if len(wheels) != 1 or not wheels[0].is_file():
            found = f"{len(wheels)} ragtune wheels" if len(wheels) > 1 else "no ragtune wheel"
            raise ConfigError(self._source, "wheel", f"{found} at {location}: {BUILD_HINT}")
        return str(wheels[0])

    def token_file(self) -> Path:
        """The launcher's shared Ray token file; a config error when unset or missing."""
        path = self.auth_token_file
        if path is None or not path.is_file():
            where = "is not set" if path is None else f"{path} does not exist"
            raise ConfigError(
                self._source,
                "auth_token_file",
                f"{where}; every node needs the same Ray token. Make one: python -c 'import "
                "secrets; print(secrets.token_hex(32))' > FILE && chmod 600 FILE",
            )
        return path
