"""The TIFF decoder's own messages on damaged files, silenced.

libtiff prints its warnings and errors ("ZIPDecode: Decoding error at scanline 0", "Unknown field
with tag ...") with C's fprintf straight to the process's stderr, past Python, and Pillow's TIFF
plugin logs some with `logging` (printed on stderr when nothing configured logging). Pillow
raises its own error for the same file, which load_image turns into one message, so these lines
are noise. Redirecting file descriptor 2 around each decode would hide other threads' output
too (serve decodes in threads); removing libtiff's default handlers once is process-wide, safe
with threads and costs nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging


@functools.cache
def silence_tiff_messages() -> bool:
    """Remove libtiff's stderr handlers, in the libtiff Pillow uses, and give Pillow's TIFF logger a
    handler that drops what no one asked to see; whether libtiff's could be removed.
    The names are looked up through Pillow's _imaging module, so they resolve in the copy it
    is linked against (the one bundled in Pillow's wheels), not some other libtiff."""
    # a NullHandler only stops Python's last-resort printing: an application that configured
    # logging still receives the records through its own handlers
    logging.getLogger("PIL.TiffImagePlugin").addHandler(logging.NullHandler())
    try:
        from PIL import _imaging

        lib = ctypes.CDLL(_imaging.__file__)
        for name in ("TIFFSetWarningHandler", "TIFFSetErrorHandler"):
            setter = getattr(lib, name)
            setter.argtypes, setter.restype = [ctypes.c_void_p], ctypes.c_void_p
            setter(None)  # NULL: libtiff then prints nothing (its message functions check for a handler)
    except (ImportError, OSError, AttributeError):  # a Pillow without libtiff, or a platform without dlsym
        return False
    return True
