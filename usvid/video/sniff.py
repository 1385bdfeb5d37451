"""What a file's first bytes say it is, checked against what its extension claims.

A PNG renamed ``.mp4`` decodes as a one-frame video and a JPEG named ``.png`` reads as an image: both run
without a word, so a file whose content is known and does not match its extension is refused, naming both.
Content that is not recognised here is left to the decoder (FFmpeg reads far more than we list), and so is a
file whose extension makes no claim. The oversized header sizes FFmpeg refuses with an unrelated errno
(``Device or resource busy`` for a 30000x30000 YUV4MPEG stream) are read here too, so the message can say what
is wrong.
"""

from __future__ import annotations

import struct
from pathlib import Path

from usvid.errors import InputError

# ISO base media (mp4, mov, 3gp, m4v): a box type at byte 4. Old QuickTime files may start with any of these.
_ISO_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
_NAMES = {
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "gif": "a GIF image",
    "webp": "a WebP image",
    "mp4": "an MP4/QuickTime video",
    "avi": "an AVI video",
    "matroska": "a Matroska/WebM video",
    "dicom": "a DICOM file",
    "y4m": "a YUV4MPEG video",
    "mpegts": "an MPEG transport stream",
    "wav": "a WAV sound file",
}
EXTENSIONS: dict[str, tuple[str, ...]] = {
    ".mp4": ("mp4",),
    ".m4v": ("mp4",),
    ".mov": ("mp4",),
    ".3gp": ("mp4",),
    ".avi": ("avi",),
    ".mkv": ("matroska",),
    ".webm": ("matroska",),
    ".y4m": ("y4m",),
    ".png": ("png",),
    ".jpg": ("jpeg",),
    ".jpeg": ("jpeg",),
    ".bmp": ("bmp",),
    ".tif": ("tiff",),
    ".tiff": ("tiff",),
    ".dcm": ("dicom",),
    ".dicom": ("dicom",),
}
HEAD_BYTES = 512


def sniff_bytes(head: bytes) -> str | None:
    """The kind of file these first bytes start (a key of ``_NAMES``), or None when not recognised."""
    # DICOM first: its 128-byte preamble may itself hold a TIFF header (dual-format files).
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if (
        head.startswith(b"BM")
        and len(head) >= 26
        and struct.unpack_from("<I", head, 14)[0] in (12, 40, 52, 56, 108, 124)
    ):
        return "bmp"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack_from(">II", head, 16)
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"YUV4MPEG2"):
        return "y4m"
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "mp4"
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    return None


def sniff(path: str | Path) -> str | None:
    """The kind of ``path``'s content, from its first bytes; None when not recognised or not readable."""
    try:
        with Path(path).open("rb") as f:
            return sniff_bytes(f.read(HEAD_BYTES))
    except OSError:
        return None


def content_mismatch(path: str | Path) -> str | None:
    """A message when ``path``'s content is a known kind its extension does not allow, else None."""
    path = Path(path)
    expected = EXTENSIONS.get(path.suffix.lower())
    if expected is None:
        return None
    kind = sniff(path)
    if kind is None or kind in expected:
        return None
    return (
        f"the content is {_NAMES[kind]}, not {_NAMES[expected[0]]} as the extension {path.suffix} says; "
        "rename the file to match its content or replace it"
    )


def check_content(path: str | Path) -> None:
    """Raise :class:`InputError` when the content of ``path`` contradicts its extension (see the module docstring)."""
    problem = content_mismatch(path)
    if problem:
        raise InputError(f"{path}: {problem}")


def header_frame_size(path: str | Path) -> tuple[int, int] | None:
    """The frame size a YUV4MPEG, AVI or PNG header declares, read without a decoder (None for other files)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    if head.startswith(b"YUV4MPEG2"):
        fields = head.split(b"\n", 1)[0].split()
        try:
            w = next(int(x[1:]) for x in fields if x.startswith(b"W"))
            h = next(int(x[1:]) for x in fields if x.startswith(b"H"))
        except (StopIteration, ValueError):
            return None
        return w, h
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return struct.unpack_from(">II", head, 16)
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        at = head.find(b"avih")
        # avih: 4 id, 4 size, then 8 DWORDs before dwWidth, dwHeight.
        if at >= 0 and len(head) >= at + 48:
            w, h = struct.unpack_from("<II", head, at + 8 + 32)
            return w, h
    return None
