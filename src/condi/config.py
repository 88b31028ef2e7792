"""Loading and validating ``params.yaml`` against ``workflow/schemas/params.schema.yaml``.

The same JSON schema is used by Snakemake's ``validate`` and by every ``condi`` command, so a
wrong value stops a run before any work starts, with a message naming the key. The allowed
student methods are the registry's (:mod:`condi.methods`): :func:`load_schema` adds them (the
workflow validates again with :func:`validate`, so Snakemake's check of the file alone, which
accepts any method name, is not the last word).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from condi.methods import METHODS

# libyaml's parser where PyYAML was built with it (the wheels are): the same safe subset as
# ``yaml.safe_load``, several times faster on a long file such as dvc.lock, read by every job.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# and its emitter: the same text as ``yaml.safe_dump`` (tests/pipeline/test_dag.py), five
# times faster on a large dvc.yaml
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_yaml(stream) -> Any:
    """``yaml.safe_load`` of an open file or a string, with libyaml's parser when available."""
    return yaml.load(stream, Loader=_SAFE_LOADER)  # noqa: S506 (a safe loader)


def dump_yaml(data: Any, **kwargs: Any) -> str:
    """``yaml.safe_dump(data, **kwargs)`` as text, with libyaml's emitter when available."""
    return yaml.dump(data, Dumper=_SAFE_DUMPER, **kwargs)


SCHEMA_RELPATH = Path("workflow") / "schemas" / "params.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file and the key."""


def schema_path() -> Path:
    """The schema file: ``$CONDI_SCHEMA``, else the repository's, else the working directory's."""
    env = os.environ.get("CONDI_SCHEMA")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[2] / SCHEMA_RELPATH,
        Path.cwd() / SCHEMA_RELPATH,
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"cannot find the params schema {SCHEMA_RELPATH} (set CONDI_SCHEMA)")


def load_schema() -> dict[str, Any]:
    """The params schema, with the allowed student methods (``$defs.method``) taken from the
    registry (:data:`condi.methods.METHODS`)."""
    with open(schema_path()) as f:
        schema = read_yaml(f)
    schema["$defs"]["method"]["enum"] = list(METHODS)
    return schema


def _extend_with_defaults(validator_class):
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = _copy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _copy(value):
    return copy.deepcopy(value)


_Validator = _extend_with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _error_lines(error: jsonschema.ValidationError, source: str) -> list[str]:
    """One line per problem; an unknown key is named by its own dotted path (with the keys
    allowed there), e.g. ``training.teacher.epoch: unknown key (allowed: batch_size, ...)``."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = [k for k in error.instance if k not in known]
        if extra and error.schema.get("additionalProperties") is False:
            where = [str(p) for p in error.absolute_path]
            allowed = ", ".join(sorted(known))
            return [
                f"{source}: {'.'.join([*where, str(k)])}: unknown key (allowed: {allowed})"
                for k in extra
            ]
    return [f"{source}: {_key_path(error)}: {error.message}"]


def validate(params: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """Validate ``params`` in place (filling schema defaults) and return it.

    Raises :class:`ConfigError` listing every offending key, e.g.
    ``params.yaml: evaluation.K: [] should be non-empty``.
    """
    if not isinstance(params, dict):
        raise ConfigError(
            f"{source}: expected a mapping at the top level, got {type(params).__name__}"
        )
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [line for e in errors for line in _error_lines(e, source)]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_semantics(params, source)
    return params


def _check_semantics(params: dict[str, Any], source: str) -> None:
    ev = params["evaluation"]
    if ev["Ks_K"] < max(ev["Ks"]):
        raise ConfigError(
            f"{source}: evaluation.Ks: every Ks must be <= evaluation.Ks_K ({ev['Ks_K']}), got {ev['Ks']}"
        )
    _check_protocol(params, source)
    for name in params.get("tables", {}).get("table3_columns", {}):
        if name not in params["datasets"]:
            raise ConfigError(
                f"{source}: tables.table3_columns.{name}: no such dataset in datasets"
            )


def _check_protocol(params: dict[str, Any], source: str) -> None:
    """protocol transfer needs a ``pretrain`` section whose dataset is a one-fold dataset
    beside at least one target dataset (docs/method.md, section 2.5)."""
    pre = params.get("pretrain")
    if params["protocol"] != "transfer":  # scratch: the pretrain section is not used
        return
    if not pre:
        raise ConfigError(
            f"{source}: protocol: transfer needs a pretrain section (dataset, teacher, student)"
        )
    name = pre["dataset"]
    if name not in params["datasets"]:
        known = ", ".join(params["datasets"])
        raise ConfigError(f"{source}: pretrain.dataset: {name!r} is not in datasets ({known})")
    folds = params["datasets"][name].get("folds", [1])
    if len(folds) != 1:
        raise ConfigError(
            f"{source}: pretrain.dataset: {name} must have exactly one fold (its training split "
            f"pre-trains the models), got folds {folds}"
        )
    if not target_datasets(params):
        raise ConfigError(
            f"{source}: pretrain.dataset: {name} is the only dataset; add a target dataset"
        )


def source_dataset(params: dict[str, Any]) -> str | None:
    """The dataset teacher and students are pre-trained on (``pretrain.dataset``) under
    ``protocol: transfer``; ``None`` under ``scratch`` (docs/method.md, section 2.5)."""
    if params.get("protocol", "scratch") != "transfer" or not params.get("pretrain"):
        return None
    return str(params["pretrain"]["dataset"])


def target_datasets(params: dict[str, Any]) -> list[str]:
    """The datasets the methods are trained and evaluated on: every dataset except
    ``pretrain.dataset`` (which only ever serves pre-training, whatever the protocol)."""
    pre = (params.get("pretrain") or {}).get("dataset")
    return [d for d in params["datasets"] if d != pre]


def pipeline_datasets(params: dict[str, Any]) -> list[str]:
    """The datasets the pipeline generates, indexes and caches: the targets, and the source
    under ``protocol: transfer`` (in ``datasets`` order)."""
    keep = {*target_datasets(params), source_dataset(params)}
    return [d for d in params["datasets"] if d in keep]


def apply_overrides(
    params: dict[str, Any], overrides: list[str] | None, source: str
) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (dotted keys, YAML values), e.g. ``condi.lam=0.5`` or
    ``evaluation.K=[1,5]``, before validation (as ``dvc exp run -S`` does for params.yaml)."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source}: override {item!r}: expected KEY=VALUE")
        node = params
        *parents, last = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{source}: override {key}: {part} is not a section")
            node = node[part]
        node[last] = yaml.safe_load(raw)
    return params


def load_params(
    path: str | os.PathLike = "params.yaml",
    check_roots: bool = False,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Read and validate a params file, after ``overrides`` (``KEY=VALUE`` strings).

    With ``check_roots``, every dataset root without a ``synth`` block must exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        with open(path) as f:
            params = read_yaml(f)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if overrides:
        apply_overrides(params, overrides, str(path))
    params = validate(params, source=str(path) + (" (with overrides)" if overrides else ""))
    if check_roots:
        check_dataset_roots(params, source=str(path), base=path.resolve().parent)
    return params


def check_dataset_roots(
    params: dict[str, Any], source: str = "params.yaml", base: Path | None = None
) -> None:
    """Every real (non-synthetic) dataset root must exist before any work starts."""
    base = base or Path.cwd()
    missing = []
    for name, ds in params["datasets"].items():
        if "synth" in ds or name not in pipeline_datasets(params):
            continue
        root = Path(ds["root"])
        root = root if root.is_absolute() else base / root
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            missing.append(f"{source}: datasets.{name}.root: directory {root} {what}")
    if missing:
        raise ConfigError("\n".join(missing))
