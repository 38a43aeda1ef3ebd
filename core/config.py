"""Load typed YAML configs: `--set` overrides, validation at the edge, one-line errors."""

from __future__ import annotations

import difflib
import glob
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from ragtune.core.errors import ConfigError, InputError

Model = TypeVar("Model", bound=BaseModel)
HUB_NAME = re.compile(r"[\w.-]+(/[\w.-]+)?")  # `name` or `org/name`, as Hugging Face repo ids are


class StrictModel(BaseModel):
    """Base of every config model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def absolute_if_local(name: str) -> str:
    """A model name that is a local folder, made absolute (Ray workers may run elsewhere);
    a hub name unchanged."""
    return str(Path(name).resolve()) if Path(name).is_dir() else name


ModelName = Annotated[str, AfterValidator(absolute_if_local)]
"""A config field naming a model: a hub name as given, a local folder made absolute."""


def is_hub_name(name: str) -> bool:
    """Whether a model name that is no local folder can still be a hub repo id; otherwise it
    can only have meant a folder that is missing."""
    return not Path(name).is_dir() and HUB_NAME.fullmatch(name) is not None


def require_model(name: str, field: str) -> None:
    """Refuse a model name that can only mean a local folder, when that folder is missing."""
    if not is_hub_name(name) and not Path(name).is_dir():
        raise InputError(
            f"{field}: model folder {name} not found",
            "make it first (ragtune model tiny / model import / tune-embedder) or name a hub model",
        )


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning I/O and syntax problems into a ConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", "cannot read: not UTF-8 text") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "the top level must be a mapping of fields")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b.c=value` applied; values are parsed as YAML."""
    result = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(source, item, "an override must look like key.path=value")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(source, key, f"the value is not valid YAML ({problem}); quote it") from None
        set_field(result, key, value, source)
    return result


def set_field(data: dict[str, Any], key: str, value: Any, source: str) -> None:
    """Set the field at the dotted `key` of `data` in place, making the mappings on the way."""
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(source, key, f"'{part}' is not a mapping, cannot set inside it")
        node = child
    node[leaf] = value


def validate_data(model: type[Model], data: dict[str, Any], source: str) -> Model:
    """Validate `data` against `model`, raising a ConfigError for the first problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A typo shows up as an unknown field and a missing one; the unknown one explains both.
        error = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(error["loc"])
        field = ".".join(str(part) for part in loc)
        suggestion = None
        if error["type"] == "extra_forbidden":
            known = _field_names_at(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
            reason = f"unknown field; known fields: {', '.join(sorted(known))}"
        else:
            reason = error["msg"].removeprefix("Value error, ")
        raise ConfigError(source, field, reason, suggestion) from exc


def load_config(model: type[Model], path: str | Path, overrides: list[str] = ()) -> Model:
    """Read, override and validate one YAML config file."""
    data = apply_overrides(read_yaml(path), list(overrides), str(path))
    return validate_data(model, data, str(path))


def _field_names_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the model found by following `loc` through nested annotations."""
    annotation: Any = model
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else None
        else:  # a dict key or list index: step into the container's element model
            annotation = _model_in(annotation)
    final = _model_in(annotation)
    return list(final.model_fields) if final is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (itself, or in Optional/list/dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in reversed(typing.get_args(annotation)):
            found = _model_in(arg)
            if found is not None:
                return found
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    return None


def relative_paths(model: type[BaseModel], data: Any) -> list[str]:
    """`field: value` for each value of a raw config that is a relative path: in a field typed
    as a path, or a `a/b` naming something that exists relative to the current directory. A job
    run on a cluster runs in a folder of its own, where such a path means something else."""
    found: list[str] = []
    _collect_relative(model, data, "", found)
    return found


def _collect_relative(annotation: Any, value: Any, where: str, found: list[str]) -> None:
    if isinstance(value, str):
        local = "://" not in value and value.strip() and not Path(value).expanduser().is_absolute()
        here = "/" in value and (Path(value).exists() or glob.glob(value))
        if local and (_mentions_path(annotation) or here):
            found.append(f"{where}: {value}")
        return
    model = _model_in(annotation)
    if isinstance(value, dict):
        for key, item in value.items():
            if model is not None and typing.get_origin(annotation) is not dict:
                field = model.model_fields.get(str(key))
                inner = field.annotation if field else None
            else:
                inner = _dict_values(annotation)
            _collect_relative(inner, item, f"{where}.{key}" if where else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _collect_relative(_list_items(annotation), item, f"{where}[{index}]", found)


def _mentions_path(annotation: Any) -> bool:
    """Whether a Path is anywhere in an annotation."""
    if annotation is Path:
        return True
    return any(_mentions_path(arg) for arg in typing.get_args(annotation))


def _dict_values(annotation: Any) -> Any:
    """The value type of the dict in an annotation (through Optional), if any."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is dict:
            return typing.get_args(arg)[1]
    return None


def _list_items(annotation: Any) -> Any:
    """The element type of the list in an annotation (through Optional), if any."""
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is list:
            return typing.get_args(arg)[0]
    return None
