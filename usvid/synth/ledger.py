"""The marker ``usvid synth`` keeps in OUT: every file it wrote there, with its size and SHA-256.

A re-run replaces or deletes a file only when the marker lists it and its bytes are still the ones synth
wrote; anything else in the folder (a user's own scan, a video the user edited, a file that merely has a
name synth uses) belongs to the user and is never touched. File names alone prove nothing: a user's
dataset in the same layout (``manifest.csv``, ``videos/p000_v1.mp4``) looks exactly like synth's output.

Each entry is recorded *before* the new file is renamed into place, keeping the bytes it replaces as
``previous``: a run killed between the two steps still recognises either version as its own.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from usvid.io import atomic_path, file_digest, write_json_atomic

logger = logging.getLogger(__name__)

MARKER_NAME = ".usvid-synth.json"
MARKER_FORMAT = "usvid-synth-files"
# Entries of a marker are only ever plain names synth writes: a marker edited to name "../x" cannot make a
# re-run delete a file outside OUT.
_ENTRY = re.compile(r"^(?:[A-Za-z0-9_.-]+|videos/[A-Za-z0-9_.-]+\.mp4)$")


def temporary_names(names: Iterable[str]) -> re.Pattern:
    """Names :func:`usvid.io.atomic_path` gives the temporaries of ``names`` (``.NAME.xxxxxxxx.tmp``, and
    one level of nesting when a writer that is itself atomic writes to such a temporary)."""
    alternatives = "|".join(re.escape(n) for n in sorted(set(names)))
    return re.compile(rf"^\.(?:\.)?(?:{alternatives})\.[a-z0-9_]+\.tmp(?:\.[a-z0-9_]+\.tmp)?$")


@dataclass
class Ledger:
    """What synth wrote into ``out`` (paths relative to it, ``/``-separated)."""

    out: Path
    entries: dict[str, dict] = field(default_factory=dict)
    # (size, mtime_ns, inode) -> SHA-256 per path: a run checks the same files more than once.
    _digests: dict[str, tuple[tuple[int, int, int], str]] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return self.out / MARKER_NAME

    @classmethod
    def load(cls, out: Path) -> Ledger | None:
        """The marker in ``out``, or None when there is none (or it is not one synth wrote)."""
        try:
            data = json.loads((out / MARKER_NAME).read_text())
        except (OSError, ValueError):
            return None
        if (
            not isinstance(data, dict)
            or data.get("format") != MARKER_FORMAT
            or not isinstance(data.get("files"), dict)
        ):
            return None
        entries = {
            rel: entry
            for rel, entry in data["files"].items()
            if _ENTRY.match(rel) and isinstance(entry, dict) and "sha256" in entry and "size" in entry
        }
        return cls(out, entries)

    def save(self) -> None:
        write_json_atomic(self.path, {"format": MARKER_FORMAT, "version": 1, "files": self.entries})

    def owns(self, rel: str) -> bool:
        """True when ``out/rel`` is a file holding exactly the bytes synth wrote there."""
        entry = self.entries.get(rel)
        path = self.out / rel
        if entry is None or not path.is_file():
            return False
        versions = [entry, *([entry["previous"]] if isinstance(entry.get("previous"), dict) else [])]
        st = path.stat()
        if not any(v.get("size") == st.st_size for v in versions):
            return False
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._digests.get(rel)
        if cached is None or cached[0] != key:
            cached = (key, file_digest(path)["sha256"])
            self._digests[rel] = cached
        return any(v.get("size") == st.st_size and v.get("sha256") == cached[1] for v in versions)

    @contextmanager
    def write(self, rel: str) -> Iterator[Path]:
        """Yield a temporary path; when the block succeeds, record its bytes, then rename it to ``out/rel``."""
        with atomic_path(self.out / rel) as tmp:
            yield tmp
            old = self.entries.get(rel)
            previous = None if old is None else {"size": old["size"], "sha256": old["sha256"]}
            self.entries[rel] = {**file_digest(tmp), "previous": previous}
            self.save()

    def forget(self, rel: str) -> None:
        self.entries.pop(rel, None)

    def settle(self) -> None:
        """Drop the ``previous`` versions once every rename is done, and save."""
        for entry in self.entries.values():
            entry.pop("previous", None)
        self.save()
