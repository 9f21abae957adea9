"""User-facing errors. The CLI prints these as one clear message, never a traceback."""

import os
import shlex
from contextlib import contextmanager


class FerkitError(Exception):
    """Base class for every error caused by user input (files, flags, configs)."""


class DataError(FerkitError):
    """A data file or folder is missing, unreadable or malformed."""


class ConfigError(FerkitError):
    """A model spec or training config has invalid fields."""


class ResumeError(FerkitError):
    """A readable checkpoint whose training state --resume cannot use (not one a damaged file raises)."""


class CheckpointError(FerkitError):
    """A checkpoint file that loads as no usable one (cut off, damaged, not a ferkit checkpoint): `problem` says what is
    wrong without the file's name, which the message starts with (a resume names a damaged best.pt its own way)."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.problem = problem


class OutputError(FerkitError):
    """A command's output file cannot be written (a full disk, a folder turned read-only): the command
    stops; never counted as the failure of the one input being read when it happened."""


class ImageError(FerkitError):
    """A photo or video cannot be used: not an image, corrupt, or too large.

    `reason` is one of "not_found", "not_image", "corrupt", "too_large" (the HTTP API maps it to a status)."""

    def __init__(self, message: str, reason: str = "not_image"):
        super().__init__(message)
        self.reason = reason


ECHO_LIMIT = 200  # characters of a user's text that an error message quotes


def quoted(text, limit: int = ECHO_LIMIT) -> str:
    """User text (a path, an upload's file name, a URL's path, a setting's value) as an error message
    quotes it: control and other unprintable characters (newlines, terminal escapes, bidi overrides) as
    "?", and beyond `limit` characters its start, an ellipsis and its length. Error messages are one
    line that clients print and log; a name of 100,000 characters came back whole, escapes and all."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def shell_word(text) -> str:
    """A user's path or value (a run folder, a checkpoint, a data file, class names) as one word of a command that
    a message advises ('ferkit train --resume RUN'): as it is where plain (letters, digits and @%+=:,./-), else
    quoted by shlex.quote, so that pasted into a shell "runs/my run" or "a'b$c" is one argument as it was given
    and nothing in it runs. A relative name that starts with "-" gets "./", else it is read as an option."""
    text = os.fsdecode(text) if isinstance(text, os.PathLike) else str(text)
    return shlex.quote("./" + text if text.startswith("-") else text)


def first_line(message, limit: int = 200) -> str:
    """The first line of a library's error message, for quoting in a FerkitError: cut at a sentence's
    end within `limit` characters where there is one, else at `limit` with an ellipsis."""
    lines = str(message).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) <= limit:
        return text
    end = text.rfind(". ", 0, limit)
    return text[:end + 1] if end > 0 else text[:limit] + "..."


def is_out_of_memory(e: BaseException) -> bool:
    """An allocation that failed: numpy's MemoryError, torch's "can't allocate memory" (CPU) or its
    OutOfMemoryError (a GPU's "out of memory"), which are RuntimeErrors, or onnxruntime's "Failed to allocate
    memory for requested buffer of size N" (its arena's words, in its own exception types, no RuntimeError)."""
    text = str(e).lower()
    return (isinstance(e, MemoryError) or "failed to allocate memory" in text
            or (isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)))


def out_of_memory(where: str, words: str, fix: str) -> FerkitError:
    """The one error of an allocation that failed: "out of memory <where> (<the library's words>): <fix>"."""
    return FerkitError(f"out of memory {where} ({words}): {fix}")


@contextmanager
def out_of_memory_said(where: str, fix: str):
    """An allocation that fails inside (a model or batch too large for this machine's memory) as one
    FerkitError (out_of_memory's), not a traceback."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise out_of_memory(where, first_line(e), fix) from None


# The modules `pip install 'ferkit[train]'` adds to the core (pyproject.toml's [train] extra), by the
# name they are imported as: a command that imports one on a light install names the extra to add.
TRAIN_MODULES = ("torch", "sklearn", "skimage", "matplotlib", "optuna", "onnx", "tqdm")
# The same for `pip install 'ferkit[opencv]'` (OpenCV: videos and the Haar face detector; [train] includes it)
OPENCV_MODULES = ("cv2",)
# extra -> (its modules, its name in messages)
EXTRAS = {"train": (TRAIN_MODULES, "the training extra"), "opencv": (OPENCV_MODULES, "the OpenCV extra")}


def needs_extra(e: ModuleNotFoundError, what: str) -> Exception:
    """For a module missing from a light install: one FerkitError saying that `what` (e.g. "ferkit train")
    needs the extra that installs it and how to install it. Any other missing module: `e` itself (a real bug)."""
    top = (e.name or "").split(".")[0]
    for extra, (modules, title) in EXTRAS.items():
        if top in modules:
            return FerkitError(f"{what} needs {title} ({top} is not installed): pip install 'ferkit[{extra}]'")
    return e
