"""`server.json`, the MCP Registry entry, names every variable the server reads and agrees with pyproject.toml.

The variables come from the settings models themselves (each model's `env_prefix` and its fields, the
providers' nested models included), so a setting added in `server/settings.py` without its registry
entry fails here. The entry is validated against the registry's own JSON Schema, a copy of
https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json kept in
`tests/contracts/registry/` (see its README for where it was taken from).
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from contacts_mcp.server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_JSON = ROOT / "server.json"
REGISTRY_SCHEMA = Path(__file__).parent / "contracts" / "registry" / "server.schema.json"

READ_OUTSIDE_SETTINGS = {"CONTACTS_MCP_LOG_LEVEL": ROOT / "server" / "cli.py"}
"""Variables the server reads from the environment itself, not through a settings model, and where."""


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def server_json() -> dict[str, Any]:
    return json.loads(SERVER_JSON.read_text(encoding="utf-8"))


def _settings_model(field: FieldInfo) -> type[BaseSettings] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
        return annotation
    return None


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return SecretStr in typing.get_args(annotation)
    return annotation is SecretStr


def setting_variables(model: type[BaseSettings] = Settings) -> dict[str, FieldInfo]:
    """Every environment variable `model` reads, with its field: prefix + field name, nested models' own."""
    prefix = model.model_config.get("env_prefix", "")
    found: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        nested = _settings_model(field)
        if nested is not None:
            found |= setting_variables(nested)
        else:
            found[f"{prefix}{name}".upper()] = field
    return found


def secret_variables() -> set[str]:
    """The variables whose field is a `SecretStr`: the providers' keys, the HTTP token, the Redis URL."""
    return {name for name, field in setting_variables().items() if _is_secret(field)}


def as_text(value: object) -> str:
    """A default as an environment variable spells it: booleans as true/false, whole floats without `.0`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def environment_variables() -> list[dict[str, Any]]:
    [package] = server_json()["packages"]
    return package["environmentVariables"]


def test_server_json_names_exactly_the_variables_the_server_reads() -> None:
    names = [variable["name"] for variable in environment_variables()]

    assert len(names) == len(set(names))
    assert set(names) == set(setting_variables()) | set(READ_OUTSIDE_SETTINGS)
    for name, module in READ_OUTSIDE_SETTINGS.items():
        assert f'"{name}"' in module.read_text(encoding="utf-8"), f"{module.name} no longer reads {name}"


def test_server_json_marks_exactly_the_secret_settings_as_secret() -> None:
    secret = {variable["name"] for variable in environment_variables() if variable["isSecret"]}

    assert secret == secret_variables()
    assert {"COMETLY_API_KEY", "HIGHLEVEL_API_KEY", "CLEMTA_API_KEY"} <= secret


def test_every_variable_is_described_optional_and_its_default_is_the_settings_default() -> None:
    fields = setting_variables()
    for variable in environment_variables():
        assert variable["description"].strip(), variable["name"]
        assert variable["isRequired"] is False, variable["name"]  # any one provider's key is enough
        field = fields.get(variable["name"])
        if "default" in variable and field is not None:
            assert variable["default"] == as_text(field.get_default(call_default_factory=True)), variable["name"]
        if field is not None and field.annotation is bool:
            assert variable.get("format") == "boolean", variable["name"]


def test_server_json_agrees_with_pyproject() -> None:
    project = pyproject()
    entry = server_json()
    [package] = entry["packages"]

    assert entry["version"] == package["version"] == project["version"]
    assert package["identifier"] == project["name"]
    assert (package["registryType"], package["transport"]) == ("pypi", {"type": "stdio"})
    assert entry["repository"] == {"url": project["urls"]["Repository"], "source": "github"}
    owner = project["urls"]["Repository"].removeprefix("https://github.com/").split("/")[0]
    assert entry["name"] == f"io.github.{owner}/{project['name']}"  # the registry checks the GitHub namespace


def test_server_json_validates_against_the_registry_schema() -> None:
    schema = json.loads(REGISTRY_SCHEMA.read_text(encoding="utf-8"))
    entry = server_json()

    assert entry["$schema"] == schema["$id"]
    jsonschema.Draft7Validator.check_schema(schema)
    validator: Validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = validator.iter_errors(entry)  # pyright: ignore[reportUnknownMemberType]  # jsonschema's overloads
    assert [error.message for error in errors] == []
