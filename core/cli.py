"""What management commands share: one way to answer a path the user named that cannot be used.

A command that opens, creates or reads a file or folder given on its command line wraps that in
``user_path("--option", path)``: an ``OSError`` (missing, a folder where a file was expected, no
permission, no space), a file that is not UTF-8 text, or a path with a NUL byte becomes a
one-line ``CommandError`` naming the option, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from django.core.management.base import CommandError


@contextlib.contextmanager
def user_path(option: str, path: str | os.PathLike) -> Iterator[None]:
    """Run the body; answer its failure to use ``path`` (named by ``option``) with a ``CommandError``.

    Only ``OSError`` and ``UnicodeDecodeError`` are translated (other errors of the body are its
    own); a path with a NUL byte, which the OS would refuse with a ``ValueError``, is refused first."""
    if "\x00" in str(path):
        raise CommandError(f"{option}: {str(path)!r} is not a usable path (it holds a NUL byte).")
    try:
        yield
    except UnicodeDecodeError:
        raise CommandError(f"{option}: {str(path)!r} is not UTF-8 text.") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CommandError(f"{option}: cannot use {str(path)!r}: {reason}.") from None
