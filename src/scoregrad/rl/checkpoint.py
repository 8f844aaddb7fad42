"""Checkpoints: tensors in safetensors, everything else in JSON, crash-safe, never pickled.

A checkpoint is a directory holding ``model.safetensors`` (weights, optimiser moments, RNG state,
the current observation) and ``checkpoint.json`` (format tag, config, architecture, normaliser
statistics, counters, env state, and the SHA-256 of the tensor file, so a torn or mismatched pair
is detected).

**Crash safety.** Each file is atomic on its own, but the *pair* must be too, so a run directory
keeps versioned checkpoints::

    RUN/checkpoints/000007/{model.safetensors, checkpoint.json}
    RUN/checkpoints/000008/{model.safetensors, checkpoint.json}

A save writes both files into a hidden temporary directory, fsyncs them and the directory, and
then renames the directory to the next number: one atomic step, after which the new checkpoint is
complete, and before which the previous one is untouched. Only then are older versions removed
(the newest ``keep`` stay). A kill at any moment therefore leaves the newest complete checkpoint
loadable; leftover temporary directories are ignored by readers and removed by the next save.
Loading takes the newest version that passes every check and warns when it had to fall back to
an older one. Directories written by older scoregrad versions (the pair directly in RUN/) still
load.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

__all__ = [
    "CheckpointError",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "checkpoint_versions",
    "atomic_write",
    "check_schema",
    "optimizer_state",
    "restore_optimizer_state",
]

FORMAT = "scoregrad.rl.checkpoint"
VERSION = 1
TENSORS = "model.safetensors"
METADATA = "checkpoint.json"
VERSIONS_DIR = "checkpoints"
_TMP_PREFIX = ".tmp-"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or not a scoregrad.rl checkpoint."""


def _fsync_dir(path: Path) -> None:
    try:  # make renames and new entries durable (not supported on every platform/filesystem)
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write_synced(Path(tmp), data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def checkpoint_versions(directory: str | os.PathLike) -> list[Path]:
    """The complete versioned checkpoints under ``directory/checkpoints``, oldest first."""
    root = Path(directory) / VERSIONS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def save_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, Tensor], metadata: dict[str, Any], keep: int = 2
) -> Path:
    """Save a new checkpoint version under ``directory`` (created if needed).

    Args:
        directory: the run (or agent) directory.
        tensors: name -> tensor, written with safetensors.
        metadata: JSON-able dict; the format tag, version and tensor hash are added.
        keep: how many complete versions to keep (at least 1); older ones are removed only after the
            new one is complete.

    Returns:
        The new version's directory, ``directory/checkpoints/NNNNNN``.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    root = Path(directory) / VERSIONS_DIR
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(_TMP_PREFIX + "*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    existing = checkpoint_versions(directory)
    number = int(existing[-1].name) + 1 if existing else 1
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **metadata,
    }
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=_TMP_PREFIX))
    try:
        _write_synced(tmp / TENSORS, blob)
        _write_synced(tmp / METADATA, json.dumps(meta, indent=1).encode())
        _fsync_dir(tmp)
        final = root / f"{number:06d}"
        os.rename(tmp, final)  # the one atomic step: the version appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    for old in existing[: max(len(existing) + 1 - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read_version(directory: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and check one checkpoint directory (a version, or an old-style run directory)."""
    meta_path, tensor_path = directory / METADATA, directory / TENSORS
    if not meta_path.exists():
        raise CheckpointError(f"{directory} has no {METADATA}")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{meta_path} is not valid JSON (corrupt checkpoint?): {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{meta_path} is not a scoregrad.rl checkpoint (format tag missing or different)"
        )
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{meta_path} has checkpoint version {meta.get('version')!r}; this scoregrad reads {VERSION}"
        )
    if not tensor_path.exists():
        raise CheckpointError(f"checkpoint {directory} has {METADATA} but no {TENSORS}")
    blob = tensor_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != meta.get("tensors_sha256"):
        raise CheckpointError(
            f"{tensor_path} does not match {METADATA} (SHA-256 differs): the checkpoint is "
            "corrupt or its files come from different saves"
        )
    try:
        tensors = st_load(blob)
    except (SafetensorError, Exception) as err:  # noqa: BLE001 - any parse failure is a corrupt file
        raise CheckpointError(f"{tensor_path} is not a readable safetensors file: {err}") from err
    return tensors, meta


Validator = Callable[[dict[str, Tensor], dict[str, Any]], None]


def load_checkpoint(
    path: str | os.PathLike, validate: Validator | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load ``(tensors, metadata)`` from a run directory, a version directory or its ``checkpoint.json``.

    For a run directory, the newest version that passes every check (files present, JSON valid,
    hashes equal, and ``validate(tensors, meta)`` if given, which raises :class:`CheckpointError`)
    is returned; falling back to an older version emits a warning that says why.
    """
    path = Path(path)
    directory = path.parent if path.is_file() else path
    versions = checkpoint_versions(directory)
    if not versions:
        if not (directory / METADATA).exists():
            raise CheckpointError(
                f"no scoregrad checkpoint at {str(path)!r}: expected {VERSIONS_DIR}/NNNNNN/ "
                f"(or {METADATA} and {TENSORS}) in that directory"
            )
        versions = [directory]  # a version directory given directly, or an old-style run directory
    failures: list[str] = []
    for candidate in reversed(versions):
        try:
            tensors, meta = _read_version(candidate)
            if validate is not None:
                validate(tensors, meta)
        except CheckpointError as err:
            failures.append(str(err))
            continue
        if failures:
            warnings.warn(
                f"newest checkpoint unusable ({failures[0]}); fell back to {candidate}",
                RuntimeWarning,
                stacklevel=2,
            )
        return tensors, meta
    if len(failures) == 1:
        raise CheckpointError(failures[0])
    raise CheckpointError(f"no usable checkpoint in {directory}: " + "; ".join(failures))


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete version directory under ``directory`` (not validated), or None."""
    versions = checkpoint_versions(directory)
    if versions:
        return versions[-1]
    return Path(directory) if (Path(directory) / METADATA).exists() else None


def optimizer_state(
    state_dict: dict[str, Any], prefix: str = "optim"
) -> tuple[dict[str, Tensor], list[dict]]:
    """Split a ``torch.optim`` state dict into tensors (``{prefix}.{i}.{name}``) and JSON param groups.

    The one way the trainers (policy gradients, ES, sequences) checkpoint an optimiser without pickle;
    :func:`restore_optimizer_state` reverses it.
    """
    import torch

    tensors = {
        f"{prefix}.{i}.{k}": v.clone() if isinstance(v, Tensor) else torch.tensor(v)
        for i, s in state_dict["state"].items()
        for k, v in s.items()
    }
    groups = [{k: v for k, v in g.items() if k != "params"} for g in state_dict["param_groups"]]
    return tensors, groups


def restore_optimizer_state(
    state_dict: dict[str, Any], tensors: dict[str, Tensor], groups: list[dict], prefix: str = "optim"
) -> dict[str, Any]:
    """Fill a fresh optimiser's ``state_dict()`` from what :func:`optimizer_state` saved; returns it."""
    for i in range(len(state_dict["param_groups"][0]["params"])):
        keys = [k for k in tensors if k.startswith(f"{prefix}.{i}.")]
        if keys:
            state_dict["state"][i] = {k[len(f"{prefix}.{i}.") :]: tensors[k].clone() for k in keys}
    for group, saved in zip(state_dict["param_groups"], groups, strict=True):
        group.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})
    return state_dict


def check_schema(value: Any, schema: dict[str, Any], where: str) -> None:
    """Check that ``value`` is a dict holding each key of ``schema`` with a value of the given type(s).

    ``schema`` maps key -> a type, a tuple of types, or a nested schema dict. Raises
    :class:`CheckpointError` naming the first key that is missing or has the wrong type.
    """
    if not isinstance(value, dict):
        raise CheckpointError(f"{where} must be a JSON object, got {type(value).__name__}")
    for key, kind in schema.items():
        if key not in value:
            raise CheckpointError(f"{where} lacks the key {key!r} (edited or incomplete checkpoint?)")
        item = value[key]
        if isinstance(kind, dict):
            check_schema(item, kind, f"{where}.{key}")
            continue
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # JSON has one number type: an int where a float is expected is fine; a bool is not a number.
        ok = isinstance(item, kinds) and not (isinstance(item, bool) and bool not in kinds)
        if not ok and float in kinds and isinstance(item, int) and not isinstance(item, bool):
            ok = True
        if not ok:
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise CheckpointError(f"{where}.{key} must be {names}, got {type(item).__name__}")
