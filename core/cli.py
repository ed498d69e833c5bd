"""What management commands share: one way to answer a service's refusal (``ServiceCommand``) and
one way to answer a path the user named that cannot be used (``user_path``), and one way to refuse
a number out of its range (``option_in_range``).

A command built on ``ServiceCommand`` lets the services' ``ServiceError`` (bad input, not found,
conflict) end it: the error becomes a one-line ``CommandError`` naming the option that carried the
refused value, so its ``handle`` holds no translation of its own.

A command that opens, creates or reads a file or folder given on its command line wraps that in
``user_path("--option", path)``: an ``OSError`` (missing, a folder where a file was expected, no
permission, no space), a file that is not UTF-8 text, or a path with a NUL byte becomes a
one-line ``CommandError`` naming the option, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from django.core.management.base import BaseCommand, CommandError

from annotate.errors import ServiceError


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option the parser and its subcommands accept."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


class ServiceCommand(BaseCommand):
    """A command whose services' refusals end it as ``CommandError("--option: message")``.

    The option is the one the refused field came from: ``field_options[field]`` when the command
    names it (its options and the service's fields differ), else the field's own option when the
    command has one (``top_k`` or ``sampling.top_k``: ``--top-k``), else the field as it is."""

    field_options: dict[str, str] = {}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        self._accepted_options = _option_strings(parser)
        return parser

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except ServiceError as exc:
            raise CommandError(self.refusal(exc)) from None

    def refusal(self, exc: ServiceError) -> str:
        if not exc.field:
            return exc.message
        options = getattr(self, "_accepted_options", set())
        last = exc.field.rsplit(".", 1)[-1].split("[", 1)[0]
        for name in (exc.field, last):
            if name in self.field_options:
                return f"{self.field_options[name]}: {exc.message}"
            option = "--" + name.replace("_", "-")
            if option in options:
                return f"{option}: {exc.message}"
        return f"{exc.field}: {exc.message}"


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


def option_in_range(option: str, value: int | None, low: int, high: int) -> None:
    """Refuse ``value`` of ``option`` (``--days``) outside ``low..high`` (both allowed) as a
    one-line ``CommandError``; ``None`` (the option not given) passes."""
    if value is not None and not low <= value <= high:
        raise CommandError(f"{option}: must be between {low} and {high} (got {value}).")
