"""Loading models (zoo name, local folder, Hugging Face hub id) into a `ModelHandle`."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from .checkpoint import WEIGHT_SUFFIXES, check_folder, check_hub_config, check_loading_info
from .files import regular_file
from .lrp.architectures import ARCHITECTURES, supported_names
from .lrp.context import RULES
from .records import FailureLensError, Fingerprint

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LOADING = threading.Lock()  # one from_pretrained at a time in this process (see load_model)
_HASH_FULL_LIMIT = 64 << 20  # files below this size are hashed whole; larger ones by size + head + tail


@dataclass
class ModelHandle:
    """A loaded model ready for attribution. Hold `lock` around anything that runs the model."""

    model: Any
    tokenizer: Any
    arch: str
    family: str
    n_layers: int
    fingerprint: Fingerprint
    device: torch.device
    dtype: torch.dtype
    rule: str
    context_length: int
    label: str
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    gradient_checkpointing: bool = False

    @property
    def key(self) -> str:
        return self.fingerprint.key()

    def memory_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in list(self.model.parameters()) + list(self.model.buffers()))


def resolve_source(source: str) -> tuple[str, Path | None]:
    """Returns (kind, folder): kind is "zoo", "local" or "hub"; folder is None for hub ids."""
    source = (source or "").strip()
    if not source:
        raise FailureLensError("No model given. Pick a zoo model (e.g. 'zoo:s'), a local folder, or a hub id.")
    if source.startswith("zoo:"):
        from .zoo import zoo_path

        return "zoo", zoo_path(source[4:])
    path = Path(os.path.expanduser(source))
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FailureLensError(
                f"{source!r} exists but is not a model folder (no config.json). "
                "Point to the folder that holds config.json and the weights."
            )
        return "local", path
    if source.startswith(("/", "./", "../", "~")) or source.count("/") > 1 or os.sep + os.sep in source:
        raise FailureLensError(f"Model folder {source!r} does not exist. Check the path, or use a zoo model.")
    return "hub", None


def weights_hash(folder: Path) -> str:
    """Content hash of the weight files (whole files up to 64 MiB; size + first/last MiB beyond)."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FailureLensError(
            f"{str(folder)!r} holds no weight files (*.safetensors / *.bin). Is the download complete?")
    for p in files:
        size = regular_file(p, "weight file").st_size  # never read a FIFO or a device named like weights
        h.update(f"{p.name}:{size}".encode())
        with open(p, "rb") as f:
            if size <= _HASH_FULL_LIMIT:
                h.update(f.read(size))
            else:
                h.update(f.read(1 << 20))
                f.seek(size - (1 << 20))
                h.update(f.read())
    return h.hexdigest()[:16]


def _pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise FailureLensError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise FailureLensError("No CUDA GPU is available on this machine. Use device 'cpu' or 'auto'.")
    return dev


def bf16_is_fast() -> bool:
    """True on CPUs with native bfloat16 matrix units (AMX or AVX512-BF16): there bfloat16 halves the memory and
    runs faster than float32 (measured 0.57x the float32 time on an AMX CPU). Elsewhere it is emulated and slow.
    Checked against float32 on the trained zoo in tests/test_bf16_zoo.py."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def _pick_dtype(dtype: str, device: torch.device, config: Any) -> torch.dtype:
    """'auto': float32 on CPU (exact, and fast there); bfloat16 on GPU for 16-bit checkpoints.

    float16 is never picked automatically: LRP gradients overflow in it.
    """
    if dtype == "auto":
        stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        low = stored in (torch.float16, torch.bfloat16, "float16", "bfloat16")
        return torch.bfloat16 if (device.type == "cuda" and low) else torch.float32
    if dtype not in DTYPES:
        raise FailureLensError(f"Unknown dtype {dtype!r}. Use one of: auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def _load_config(ref: str, kind: str, revision: Optional[str], trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - translated into a user-facing message
        msg = str(e)
        if kind != "hub":
            raise FailureLensError(f"Could not read the model config in {ref!r}: {msg.splitlines()[0]}") from e
        if "revision" in msg.lower() or type(e).__name__ == "RevisionNotFoundError":
            raise FailureLensError(
                f"Revision {revision!r} was not found for {ref!r}. Check the branch, tag or commit name."
            ) from e
        if "trust_remote_code" in msg:
            raise FailureLensError(
                f"{ref!r} needs custom code from its repository. Turn on 'trust remote code' for this model "
                "only if you trust its authors."
            ) from e
        raise FailureLensError(
            f"Could not reach {ref!r} on the Hugging Face hub: this machine seems offline, or the id is wrong. "
            "Download the model elsewhere and pass its local folder, or use a zoo model."
        ) from e


def _check_architecture(config: Any, ref: str) -> str:
    archs = list(getattr(config, "architectures", None) or [])
    for name in archs:
        if name in ARCHITECTURES:
            return name
    raise FailureLensError(
        f"{ref!r} is a {', '.join(archs) or getattr(config, 'model_type', 'unknown')} model, which is not supported. "
        f"Supported families: {', '.join(supported_names())}."
    )


def _quantization(quantize: Optional[str], device: torch.device):
    if quantize in (None, "", "none"):
        return None
    if quantize != "4bit":
        raise FailureLensError(f"Unknown quantization {quantize!r}. Use None or '4bit'.")
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except Exception as e:  # noqa: BLE001
        raise FailureLensError(
            f"4-bit loading is not possible on this machine ({type(e).__name__}: {e}). "
            "Load the model without 4-bit, or install bitsandbytes and accelerate."
        ) from e
    compute = torch.bfloat16 if device.type == "cuda" else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)


def load_model(
    source: str,
    revision: Optional[str] = None,
    dtype: str = "auto",
    quantize: Optional[str] = None,
    rule: str = "attnlrp",
    device: str = "auto",
    trust_remote_code: bool = False,
    gradient_checkpointing: bool = False,
) -> ModelHandle:
    """Load a causal LM for attribution. Parameters never require gradients; the model is in eval mode.

    gradient_checkpointing=True: always attribute with per-layer recompute (`trace.recomputed_layers`);
    otherwise the memory guard picks it per run, when kept activations would not fit.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars clutter the CLI and server logs

    if rule not in RULES:
        raise FailureLensError(f"Unknown rule {rule!r}. Use one of: {', '.join(RULES)}.")
    kind, folder = resolve_source(source)
    if revision and kind != "hub":
        raise FailureLensError(
            f"A revision ({revision!r}) applies to hub ids only; {source!r} is a {kind} model with no revisions. "
            "Leave the revision empty, or give a hub id."
        )
    ref = str(folder) if folder is not None else source.strip()
    dev = _pick_device(device)
    if folder is not None:
        check_folder(folder)
    else:
        check_hub_config(ref, revision)
    config = _load_config(ref, kind, revision, trust_remote_code)
    arch = _check_architecture(config, source)
    torch_dtype = _pick_dtype(dtype, dev, config)
    qconf = _quantization(quantize, dev)
    kwargs: dict[str, Any] = dict(revision=revision, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    if qconf is not None:
        kwargs.update(quantization_config=qconf, device_map={"": str(dev) if dev.type != "cuda" else dev.index or 0})
    try:
        with _LOADING:  # from_pretrained is not thread-safe: concurrent loads of a tied model lose the lm_head tie
            model, info = AutoModelForCausalLM.from_pretrained(ref, output_loading_info=True, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(ref, revision=revision, trust_remote_code=trust_remote_code)
        check_loading_info(info, source.strip())
    except FailureLensError:
        raise
    except Exception as e:  # noqa: BLE001
        first = (str(e).splitlines() or [""])[0][:300]
        if qconf is not None:
            raise FailureLensError(
                f"4-bit loading failed on this machine: {first}. Load the model without 4-bit."
            ) from e
        raise FailureLensError(
            f"Could not load the weights of {source!r}: {first}. The files may be corrupted or incomplete; "
            "re-download them or pick another model."
        ) from e
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise FailureLensError(f"The tokenizer of {source.strip()!r} has {len(tokenizer)} entries but the model's "
                               f"embedding matrix only {rows} rows, so some tokens have no embedding; the tokenizer "
                               "belongs to another model. Re-download the model or fix its tokenizer files.")
    if qconf is None:
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    local_dir = folder if folder is not None else _snapshot_dir(ref, revision)
    whash = weights_hash(local_dir) if local_dir is not None else f"hub:{revision or 'main'}"
    dtype_name = str(torch_dtype).replace("torch.", "")
    fp = Fingerprint(source.strip(), revision, dtype_name, qconf and "4bit", rule, whash)
    n_layers = int(config.num_hidden_layers)
    ctx = int(getattr(config, "max_position_embeddings", 0) or getattr(config, "n_positions", 0) or 1 << 20)
    log.info("loaded %s (%s, %d layers, %s, %s)", source, arch, n_layers, dtype_name, dev)
    return ModelHandle(
        model, tokenizer, arch, ARCHITECTURES[arch].family, n_layers, fp, dev, torch_dtype, rule, ctx,
        label=source.strip(), gradient_checkpointing=gradient_checkpointing,
    )


def _snapshot_dir(repo_id: str, revision: Optional[str]) -> Path | None:
    """The local snapshot folder of a hub model (already downloaded by from_pretrained)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - fingerprint falls back to the revision name
        return None


def describe(handle: ModelHandle) -> dict[str, Any]:
    """A small JSON-able summary for the UI and CLI."""
    return json.loads(json.dumps({
        "label": handle.label, "architecture": handle.arch, "family": handle.family,
        "layers": handle.n_layers, "dtype": str(handle.dtype).replace("torch.", ""),
        "device": str(handle.device), "rule": handle.rule, "quantize": handle.fingerprint.quantize,
        "memory_mb": round(handle.memory_bytes() / 2**20, 1), "fingerprint": handle.key,
    }))
