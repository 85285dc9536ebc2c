"""A model folder checked before transformers reads it, and the weights checked against the model after.

Before (`check_folder`, local folders and the zoo; `check_hub_config` for hub ids, on config.json alone):
every file in the folder is a regular file (a FIFO named
model.safetensors would block forever, a link to /dev/zero would never end); config.json is small, shallow and
its sizes are plausible integers; the number of layers it claims is the number the safetensors headers hold
(a config claiming 10⁹ layers otherwise hangs inside transformers' config parsing).

After (`check_loading_info`): transformers fills weights missing from the checkpoint with random values and
drops unexpected ones with only a log line; an attribution of a half-random model is worthless, so either is
an error naming the keys.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any, Iterable, Optional

from engine import files
from engine.records import FailureLensError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
MAX_HEADER_BYTES = 100 * files.MiB  # the safetensors format's own limit
# config sizes far above any real model; a larger value is a broken or hostile config
LIMITS = {"num_hidden_layers": 1024, "n_layer": 1024, "num_layers": 1024, "hidden_size": 1 << 17,
          "n_embd": 1 << 17, "intermediate_size": 1 << 20, "num_attention_heads": 4096, "num_key_value_heads": 4096,
          "vocab_size": 1 << 23, "max_position_embeddings": 1 << 25, "n_positions": 1 << 25, "head_dim": 1 << 14}
_LAYER_KEY = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)\.")


def _configs(config: dict) -> Iterable[tuple[str, dict]]:
    yield "", config
    for key in ("text_config", "language_config"):
        if isinstance(config.get(key), dict):
            yield f"{key}.", config[key]


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a .safetensors header (8-byte length + JSON), without reading the tensors."""
    with open(path, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= MAX_HEADER_BYTES:
            raise FailureLensError(f"{path} is not a readable safetensors file (header size {n}); the files may be "
                                   "corrupted or incomplete: re-download them or pick another model.")
        header = f.read(n)
    try:
        meta = json.loads(header)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise FailureLensError(f"{path} has a damaged safetensors header; the files may be corrupted or "
                               "incomplete: re-download them or pick another model.") from None
    return [k for k in meta if k != "__metadata__"] if isinstance(meta, dict) else []


def weight_layers(folder: Path) -> Optional[int]:
    """Number of layers the safetensors files hold (highest layer index + 1), or None without safetensors."""
    keys = [k for p in sorted(folder.glob("*.safetensors")) for k in safetensors_keys(p)]
    if not keys:
        return None
    found = [int(m.group(1)) for k in keys for m in [_LAYER_KEY.search(k)] if m]
    return max(found) + 1 if found else 0


def check_config(path: Path) -> Optional[tuple[str, int]]:
    """A config.json that is small, shallow and holds plausible sizes; returns the layer count it claims
    (key, value), or None. Raised errors name the file and the value."""
    text = files.read_text(path, files.MAX_CONFIG_BYTES, "model config")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise FailureLensError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}); the files "
                               "may be corrupted or incomplete: re-download them or pick another model.") from None
    except RecursionError:
        raise files.depth_error(str(path)) from None
    files.check_depth(config, str(path))
    if not isinstance(config, dict):
        raise FailureLensError(f"{path} is not a JSON object; is this a model folder?")
    layers = None
    for prefix, cfg in _configs(config):
        for key, limit in LIMITS.items():
            value = cfg.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
                raise FailureLensError(f"{path}: {prefix}{key} is {value!r}; it must be a whole "
                                       f"number from 1 to {limit:,}. The config is damaged: re-download the model.")
            if key in ("num_hidden_layers", "n_layer", "num_layers") and layers is None:
                layers = (f"{prefix}{key}", value)
    return layers


OFFLINE = ("Could not reach {ref!r} on the Hugging Face hub: this machine seems offline, or the id is wrong. "
           "Download the model elsewhere and pass its local folder, or use a zoo model.")


def check_hub_config(repo_id: str, revision: Optional[str]) -> None:
    """A hub model's config.json checked like a local folder's before transformers parses it and before any
    weights come down: its size from the hub's file metadata first, then the file alone. An unknown id, revision
    or gated repository is named at once; where the hub cannot be reached the cached copy is checked, and without
    one the offline message comes now (transformers would retry for about half a minute first)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub import errors as hub

    meta = None
    if not constants.HF_HUB_OFFLINE:
        try:
            meta = get_hf_file_metadata(hf_hub_url(repo_id, "config.json", revision=revision), timeout=10)
        except hub.RevisionNotFoundError:
            raise FailureLensError(f"Revision {revision!r} was not found for {repo_id!r}. Check the branch, tag or "
                                   "commit name.") from None
        except hub.GatedRepoError:
            raise FailureLensError(f"{repo_id!r} is gated on the hub: accept its licence on the model page and log "
                                   "in (`hf auth login`), or pass a local folder.") from None
        except hub.RepositoryNotFoundError:
            raise FailureLensError(f"{repo_id!r} was not found on the Hugging Face hub (or it is private). Check the "
                                   "id, or pass a local folder.") from None
        except hub.EntryNotFoundError:
            raise FailureLensError(f"{repo_id!r} has no config.json: it is not a transformers model. Pick another "
                                   "model.") from None
        except (hub.HFValidationError, ValueError):
            raise FailureLensError(f"{repo_id!r} is not a valid hub id (owner/name) and no such folder exists. "
                                   "Check the spelling, or pass a local folder.") from None
        except Exception:  # noqa: BLE001 - no connection: the cached copy below, or the offline message
            meta = None
    if meta is not None and meta.size is not None and meta.size > files.MAX_CONFIG_BYTES:
        raise FailureLensError(f"The config.json of {repo_id!r} is {meta.size:,} bytes; a model config is at most "
                               f"{files.MAX_CONFIG_BYTES:,}. It is not a usable model config: pick another model.")
    try:
        path = hf_hub_download(repo_id, "config.json", revision=revision, local_files_only=meta is None)
    except Exception:  # noqa: BLE001
        raise FailureLensError(OFFLINE.format(ref=repo_id)) from None
    check_config(Path(path))


def check_folder(folder: Path) -> None:
    """Refuse a model folder whose files or config would hang, exhaust memory or load half-random weights."""
    for p in sorted(folder.iterdir()):
        if not p.is_dir():  # (follows links: the Hugging Face cache links every file to a blob)
            files.regular_file(p, "model file")
    layers = check_config(folder / "config.json")
    held = weight_layers(folder)
    if layers is not None and held is not None and held < layers[1]:  # more held: the loading report names them
        raise FailureLensError(f"{folder / 'config.json'} claims {layers[0]} = {layers[1]}, but the weights hold "
                               f"{held} layers; the config does not belong to these weights. Fix {layers[0]} or "
                               "re-download the model.")


def _names(keys: Iterable[str], n: int = 6) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_loading_info(info: dict[str, Any], source: str) -> None:
    """Missing, unexpected or mis-shaped weights (transformers' output_loading_info) are an error naming them."""
    problems = []
    for key, what in (("missing_keys", "missing from the weights (they would be random)"),
                      ("unexpected_keys", "in the weights but not in the model"),
                      ("mismatched_keys", "of the wrong shape")):
        keys = [k[0] if isinstance(k, tuple) else k for k in info.get(key) or ()]
        if keys:
            problems.append(f"{len(keys)} tensors {what}: {_names(keys)}")
    if problems:
        raise FailureLensError(f"The weights of {source!r} do not match its config: {'; '.join(problems)}. "
                               "The config or the weights are from another model, or the download is incomplete; "
                               "re-download the model or fix its config.json.")
