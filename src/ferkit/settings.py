"""The server's settings (`ferkit serve` flags, FERKIT_SERVE_<NAME> variables for app_from_env) and
the help texts of the options that predict, evaluate and serve share.

Light on purpose (no FastAPI, no torch): the CLI generates `ferkit serve`'s flags from these
fields, as it does `ferkit train`'s from TrainConfig's, without loading the server.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, fields
from typing import Literal

from . import bundled, precisions
from .config import MAX_THREADS, check_fields, from_text, option
from .errors import FerkitError

DEFAULT_MAX_UPLOAD = 10 * 2**20  # bytes
DEFAULT_MAX_PIXELS = 16_000_000  # decoded pixels of an upload (4000x4000); decoding and detection cost ~11-16 bytes a pixel
DEFAULT_UPLOAD_TIMEOUT = 30.0  # seconds for the whole request body (10 MB in 30 s needs ~2.8 Mbit/s)
DEFAULT_MAX_CONNECTIONS = 1000  # open connections per process; beyond them: 503 and close
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds for a request's headers to arrive (and for an idle keep-alive)
DEFAULT_QUEUE_TIMEOUT = 30.0  # seconds an uploaded photo may wait for a free prediction thread; then 503
# photos a process holds at once (uploading, waiting their turn, predicted): each waits in up to 1.1 MB of memory (beyond
# 1 MB, on disk up to --max-upload-mb), so 256 hold ~300 MB and 2.6 GB of disk; --max-connections alone let 1000 in
DEFAULT_MAX_QUEUE = 256
ENV_PREFIX = "FERKIT_SERVE_"
MAX_UPLOAD_MB = 2**20  # a tebibyte: --max-upload-mb beyond it is no limit (1e308 overflowed into a traceback)

MODEL_HELP = (f"a bundled model: {bundled.summary()} (see 'ferkit models'); or a checkpoint .pt or run folder, "
              "or an .onnx file from 'ferkit export'")
BACKEND_HELP = ("inference engine: torch | onnx (onnxruntime); default: a bundled model's shipped int8 ONNX graph (on AMD's "
                "Zen and Zen+, where int8 does not pay, its shipped fp32 graph if it has one), onnx for an .onnx file, else torch")
TTA_HELP = ("average each face with its mirror image (twice a face's work); default: as the model was trained, "
            "except where its measured gain is under 0.2 points (the default model)")
PRECISION_HELP = ("torch backend: auto | fp32 | bf16 (auto = bf16 where the device runs it fast); onnx backend: auto | fp32 | "
                  "int8 (auto = fp32, or as the .onnx file was exported; int8 from a checkpoint calibrates on $FERKIT_DATA "
                  "or the shared FER2013's training faces)")


@dataclass
class Settings:
    """What one server process needs to know; each field is a `ferkit serve` flag (cli.add_field_flags)."""

    model: str | None = option(None, MODEL_HELP)
    backend: Literal["torch", "onnx"] | None = option(None, BACKEND_HELP)
    max_upload_mb: float = option(DEFAULT_MAX_UPLOAD / 2**20, "largest photo accepted, in MB")
    max_upload_pixels: int = option(DEFAULT_MAX_PIXELS, "largest photo accepted, in decoded pixels (4000x4000 = 16000000), "
                                                        "checked before decoding")
    max_concurrent: int | None = option(None, "predictions run at once per process (default: number of CPUs / workers)")
    upload_timeout: float = option(DEFAULT_UPLOAD_TIMEOUT, "seconds a whole upload may take to arrive, else 408")
    queue_timeout: float = option(DEFAULT_QUEUE_TIMEOUT, "seconds an uploaded photo may wait for a free prediction "
                                                         "(all --max-concurrent busy), else 503 with Retry-After")
    max_queue: int = option(DEFAULT_MAX_QUEUE, "photos per process at once, uploading, waiting their turn or predicted; "
                                               "more get a 503 with Retry-After before their upload is read")
    threads: int | None = option(None, "inference threads per process: torch, onnxruntime and OpenCV "
                                       "(default: theirs with 1 worker, CPUs / workers with more)")
    precision: Literal[precisions.ANY] | None = option(None, PRECISION_HELP)
    tta: bool | None = option(None, TTA_HELP)
    max_connections: int = option(DEFAULT_MAX_CONNECTIONS, "open connections per process; more get a 503 and are "
                                                           "closed (at most the open-file limit less 128)")
    header_timeout: float = option(DEFAULT_HEADER_TIMEOUT, "seconds a request's headers may take to arrive, an idle "
                                                           "connection may stay open, and a response may go unread")

    def check(self, name_of=None) -> None:
        """FerkitError naming each bad setting (as its flag, or as name_of(field) names it) and the fix."""
        name_of = name_of or (lambda name: "--" + name.replace("_", "-"))
        wrong_type = check_fields(self, name_of)
        if wrong_type:  # the range checks below cannot compare such a value
            raise FerkitError("; ".join(wrong_type.values()))
        bad = []
        for name in ("max_upload_mb", "max_upload_pixels", "upload_timeout", "queue_timeout", "header_timeout", "max_connections",
                     "max_queue"):
            if not getattr(self, name) > 0:
                bad.append(f"{name_of(name)} {getattr(self, name)}: must be > 0")
        if self.max_upload_mb > 0 and not 1 <= self.max_upload_bytes <= MAX_UPLOAD_MB * 2**20:
            bad.append(f"{name_of('max_upload_mb')} {self.max_upload_mb:g}: must be at least 0.000001 (a byte) "
                       f"and at most {MAX_UPLOAD_MB:,} (a TiB)")
        from PIL import Image

        if Image.MAX_IMAGE_PIXELS and self.max_upload_pixels > Image.MAX_IMAGE_PIXELS:  # Pillow refuses larger ones as bombs
            bad.append(f"{name_of('max_upload_pixels')} {self.max_upload_pixels}: must be at most "
                       f"{Image.MAX_IMAGE_PIXELS} (Pillow, which decodes the photos, refuses larger ones)")
        for name in ("max_concurrent", "threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                bad.append(f"{name_of(name)} {getattr(self, name)}: must be >= 1")
        if self.threads is not None and self.threads > MAX_THREADS:
            bad.append(f"{name_of('threads')} {self.threads}: must be at most {MAX_THREADS}")
        if bad:
            raise FerkitError("; ".join(bad))

    @property
    def max_upload_bytes(self) -> int:
        return int(min(self.max_upload_mb, MAX_UPLOAD_MB + 1) * 2**20)  # (the min: no overflow before check() says so)

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + k.upper(): str(v) for k, v in asdict(self).items() if v is not None}

    def set_env(self, env=os.environ) -> None:
        """Leave env with these settings' variables and no other FERKIT_SERVE_*: a variable left in the
        shell (FERKIT_SERVE_MODEL of another day) would reach the workers for a setting left at its default."""
        for k in [k for k in env if k.startswith(ENV_PREFIX)]:
            del env[k]
        env.update(self.to_env())

    @staticmethod
    def env_name(name: str) -> str:
        """How a message names a field set by its variable (from_env, flags_as_variables): $FERKIT_SERVE_MODEL."""
        return "$" + ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        """Settings from FERKIT_SERVE_MODEL, FERKIT_SERVE_MAX_UPLOAD_MB, ...; unset ones keep their defaults.
        Each value is read and checked against its field's type as a training config's are
        (config.from_text, config.check_fields), so a bad one is reported in the same words."""
        names = {ENV_PREFIX + f.name.upper(): f.name for f in fields(cls)}
        if unknown := sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in names):  # a misspelt one did nothing
            raise FerkitError(f"${unknown[0]}: no such setting; the variables are {', '.join('$' + k for k in names)}")
        s = cls(**{name: from_text(cls, name, env[k]) for k, name in names.items() if k in env})
        s.check(cls.env_name)  # each problem named as the variable it came from
        return s


# a `ferkit serve` flag in a message, not inside a quoted command ('ferkit export ... --int8'): those
# are other commands' flags, to be typed as they are. A quote after a space in one opens a path that
# errors.shell_word quoted ('ferkit export '/my runs/best.pt' --no-tta'), not the command's end.
_FLAG = re.compile(r"""'ferkit (?:[^']|(?<=\s)'(?:[^']|'"'"')*')*'|(?<![\w-])--(no-)?([a-z][a-z0-9-]*)(?![\w-])""")


def flags_as_variables(message: str) -> str:
    """A message from building the server (a bad model, backend, precision...), which names the
    `ferkit serve` flags, with each flag named as the FERKIT_SERVE_* variable that sets it instead:
    for app_from_env run by uvicorn itself, where the settings came from variables, not flags
    ("--model X: no such file" -> "$FERKIT_SERVE_MODEL X: no such file"; --no-tta -> $FERKIT_SERVE_TTA false)."""
    names = {f.name.replace("_", "-"): f.name for f in fields(Settings)}

    def rename(m: re.Match) -> str:
        name = names.get(m[2] or "")
        if name is None or (m[1] and name != "tta"):  # a quoted command, another flag, or --no-X of a non-switch
            return m[0]
        return Settings.env_name(name) + (" false" if m[1] else "")

    return _FLAG.sub(rename, message)
