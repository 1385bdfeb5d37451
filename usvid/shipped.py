"""Models shipped inside the package (package data, never a download): ``lanet-effl0-bus``.

Each lives in ``usvid/weights/<name>/``: ``model.pt`` (a usvid checkpoint), ``model.onnx`` (its fp32 export,
kept only because it matched PyTorch) and ``model.json``, the model card's data: training data and split,
recipe, usvid version, date, size and sha256 of each file, preprocessing, class names, validation and test
metrics. A shipped name is accepted wherever a model path is (``usvid predict/stream/eval/export``,
``usvid train --init``, :func:`usvid.inference.load_predictor`); a file on disk of the same name wins. Each file's
sha256 is checked against ``model.json`` before it is used, so a damaged or replaced file is refused in one line.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from usvid.errors import InputError
from usvid.io import file_digest
from usvid.outputs import check_path_text

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD_NAME = "model.json"
CARD_FORMAT = "usvid-shipped-model"
#: What ``usvid predict`` and ``usvid stream`` run when ``--model`` is omitted.
DEFAULT_MODEL = "lanet-effl0-bus"
FileRole = Literal["checkpoint", "onnx"]
ROLE_FILES: dict[str, str] = {"checkpoint": "model.pt", "onnx": "model.onnx"}

# (path, size, mtime_ns) of files already checked in this process: hashing 15 MB once per load is enough.
_verified: set[tuple[str, int, int]] = set()


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: its folder and the parsed ``model.json``."""

    name: str
    folder: Path
    card: dict[str, Any]

    def file(self, role: FileRole) -> Path:
        """The file for ``role`` after its size and sha256 matched the card; one-line InputError otherwise."""
        entry = self.card["files"].get(ROLE_FILES[role])
        if entry is None:
            raise InputError(f"shipped model {self.name} has no {ROLE_FILES[role]}; its files: "
                             f"{', '.join(sorted(self.card['files']))}")
        path = self.folder / ROLE_FILES[role]
        if not path.is_file():
            raise InputError(f"{path}: file of the shipped model {self.name} is missing; reinstall usvid")
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in _verified:
            if file_digest(path) != {"size": entry["size"], "sha256": entry["sha256"]}:
                raise InputError(f"{path}: does not match the size and sha256 that {self.folder / CARD_NAME} "
                                 f"records for the shipped model {self.name} (damaged or replaced); reinstall usvid")
            _verified.add(key)
        return path

    def describe(self) -> str:
        """One line: the name, what it was trained on, and that it is for research."""
        return f"{self.name} ({self.card.get('summary', 'shipped model')}; research use, not a medical device)"


def _read_card(folder: Path) -> ShippedModel:
    path = folder / CARD_NAME
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: unreadable model card ({err}); reinstall usvid") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("files"), dict):
        raise InputError(f"{path}: not a usvid model card (format '{CARD_FORMAT}' with a 'files' table)")
    return ShippedModel(name=folder.name, folder=folder, card=card)


def shipped_models(root: Path = WEIGHTS_DIR) -> list[ShippedModel]:
    """Every shipped model under ``root``, by name."""
    if not root.is_dir():
        return []
    return [_read_card(d) for d in sorted(root.iterdir()) if (d / CARD_NAME).is_file()]


def shipped_names(root: Path = WEIGHTS_DIR) -> list[str]:
    return [m.name for m in shipped_models(root)]


def get_shipped(name: str, root: Path = WEIGHTS_DIR) -> ShippedModel:
    folder = root / name
    if "/" in name or "\\" in name or name.startswith(".") or not (folder / CARD_NAME).is_file():
        names = ", ".join(shipped_names(root)) or "none"
        raise InputError(f"'{name}' is not a shipped model; shipped models: {names}")
    return _read_card(folder)


def predictor_role(backend: str) -> FileRole:
    """The file a predictor runs: ONNX for onnxruntime/TensorRT, the checkpoint for torch; ``auto`` takes ONNX
    when onnxruntime is installed (faster on the CPU: see the README's inference figures), else the checkpoint."""
    if backend == "torch":
        return "checkpoint"
    if backend in ("onnxruntime", "tensorrt"):
        return "onnx"
    return "onnx" if importlib.util.find_spec("onnxruntime") is not None else "checkpoint"


def resolve_model(model: str | Path, role: FileRole, root: Path = WEIGHTS_DIR) -> Path:
    """``model`` as a path: an existing file as given, a shipped model's name as its verified ``role`` file.

    Anything else comes back unchanged, so the caller's own "does not exist" error names it.
    """
    path = check_path_text(model, "model")
    if path.exists():
        return path
    if str(model) in shipped_names(root):
        return get_shipped(str(model), root).file(role)
    return path
