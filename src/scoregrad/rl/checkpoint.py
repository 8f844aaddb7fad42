"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically, never pickled.

A checkpoint is a directory with ``model.safetensors`` (weights, optimiser moments, RNG state,
the current observation) and ``checkpoint.json`` (format tag, config, architecture, normaliser
statistics, counters, env state, and the SHA-256 of the tensor file, so a torn or mismatched
pair is detected). Each file is written to a temporary file in the same directory, fsynced, then
``os.replace``-d over the old one; the tensor file goes first, so the JSON never points at tensors
that are not there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

__all__ = ["CheckpointError", "FORMAT", "save_checkpoint", "load_checkpoint", "atomic_write"]

FORMAT = "scoregrad.rl.checkpoint"
VERSION = 1
TENSORS = "model.safetensors"
METADATA = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or not a scoregrad.rl checkpoint."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(
    directory: str | os.PathLike, tensors: dict[str, Tensor], metadata: dict[str, Any]
) -> Path:
    """Save a checkpoint into ``directory`` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    atomic_write(directory / TENSORS, blob)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        **metadata,
    }
    atomic_write(directory / METADATA, json.dumps(meta, indent=1).encode())
    return directory


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Load ``(tensors, metadata)`` from a checkpoint directory (or its ``checkpoint.json``)."""
    path = Path(path)
    directory = path.parent if path.is_file() else path
    meta_path, tensor_path = directory / METADATA, directory / TENSORS
    if not meta_path.exists():
        raise CheckpointError(
            f"no scoregrad checkpoint at {str(path)!r}: expected {METADATA} and {TENSORS} in that directory"
        )
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
            f"{meta_path} has checkpoint version {meta.get('version')}; this scoregrad reads {VERSION}"
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
