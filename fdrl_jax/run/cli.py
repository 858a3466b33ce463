"""What the command-line entry points (`fdrl_jax.main`, `fdrl_jax.convert`) share: a user
error (`errors.UserError`) prints its message alone and exits with status 2, unless `--debug`
or FDRL_DEBUG=1 asks for the traceback; any other error keeps its traceback."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from absl import flags
from ml_collections import config_flags

from fdrl_jax.errors import MissingFileError, UserError

USAGE_ERROR = 2


def debugging(flag_values: flags.FlagValues, argv: list[str] = ()) -> bool:
    """Whether user errors should show their traceback (`--debug` or FDRL_DEBUG=1)."""
    if "--debug" in argv or (flag_values.is_parsed() and flag_values.debug):
        return True
    return os.environ.get("FDRL_DEBUG", "") not in ("", "0")


def exit_with(error: UserError) -> None:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


def parse_flags(flag_values: flags.FlagValues, argv: list[str]) -> list[str]:
    """absl's flag parsing, with a user error in the config file (raised while `--config` is
    loaded, and wrapped by the flags library with its traceback) reported like any other."""
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        cause, user = e, None
        while cause is not None:  # the innermost UserError holds the original message
            user = cause if isinstance(cause, UserError) else user
            cause = cause.__cause__ or cause.__context__
        if user is None or debugging(flag_values, argv):
            raise
        exit_with(user)
    if not flag_values["config"].present:  # the command needs none, or says so itself
        return rest
    path = config_flags.get_config_filename(flag_values["config"]).split(":", 1)[0]  # no ":arg"
    if not os.path.isfile(path):
        exit_with(MissingFileError(f"Config file {path!r} does not exist (--config)."))
    return rest


@contextlib.contextmanager
def user_errors_exit(flag_values: flags.FlagValues) -> Iterator[None]:
    """Inside: a `UserError` prints its message and exits with status 2 (unless debugging)."""
    try:
        yield
    except UserError as e:
        if debugging(flag_values):
            raise
        exit_with(e)
