"""What the command-line entry points (`fdrl_jax.main`, `fdrl_jax.convert`) share: a user
error (`errors.UserError`) prints its message alone and exits with status 2, unless `--debug`
or FDRL_DEBUG=1 asks for the traceback; any other error keeps its traceback."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator, Mapping

from absl import flags
from ml_collections import config_flags

from fdrl_jax.errors import FlagError, MissingFileError, UserError

USAGE_ERROR = 2


def define_debug_flag(flag_values: flags.FlagValues) -> None:
    """`--debug`, which `debugging` reads: every command defines it."""
    flags.DEFINE_bool(
        "debug",
        False,
        "Show the traceback of user errors too (also FDRL_DEBUG=1).",
        flag_values=flag_values,
    )


def debugging(flag_values: flags.FlagValues, argv: list[str] = ()) -> bool:
    """Whether user errors should show their traceback (`--debug` or FDRL_DEBUG=1)."""
    if "--debug" in argv or (flag_values.is_parsed() and flag_values.debug):
        return True
    return os.environ.get("FDRL_DEBUG", "") not in ("", "0")


def exit_with(error: UserError) -> None:
    print(f"Error: {error}", file=sys.stderr)
    sys.exit(USAGE_ERROR)


_OVERRIDE = re.compile(r"^--?(?:no)?config\.([^=]+)")  # --config.a.b=v


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _unknown_override(argv: list[str], error: BaseException) -> UserError | None:
    """The user error behind ml_collections' AttributeError / KeyError for a `--config.a.b=v`
    naming a field the config lacks (its "Did you mean" kept), or None if `error` is not one."""
    keys, hint = [], ""
    cause = error
    while cause is not None:
        if isinstance(cause, KeyError) and cause.args and isinstance(cause.args[0], str):
            first, _, rest = cause.args[0].partition("\n")
            keys.append(first.strip("'\""))
            hint = hint or rest.strip()
        cause = cause.__cause__ or cause.__context__
    overrides = [m.group(1) for m in map(_OVERRIDE.match, argv) if m]
    missing = [o for o in overrides if keys and keys[-1] in o.split(".")]
    if not missing:
        return None
    text = f"Unknown config field --config.{missing[0]}"
    return FlagError(
        f"{text}: {hint}"
        if hint
        else f"{text} (the fields are declared in fdrl_jax/configlib/defaults.py)."
    )


def parse_command(
    flag_values: flags.FlagValues, argv: list[str], required: Mapping[str, str] = {}
) -> list[str]:
    """absl's flag parsing of `argv` (argv[0] is the program), with every mistake on the
    command line raised as a `UserError`: an unknown flag or config field, a value of the
    wrong type or outside an enum, a config file that does not exist or rejects its
    argument, and a missing flag of `required` (name -> what to give). A bug in a config
    file keeps its own exception."""
    try:
        rest = flag_values(argv)
    except flags.Error as e:
        cause, user = e, None
        while cause is not None:  # the innermost UserError holds the original message
            user = cause if isinstance(cause, UserError) else user
            cause = cause.__cause__ or cause.__context__
        if user is not None:
            raise user from e
        if str(e).startswith("flag --config="):  # the config file's own code failed: a bug
            raise
        raise FlagError(f"{_one_line(e)} (--helpfull lists the flags)") from e
    except (AttributeError, KeyError) as e:
        user = _unknown_override(argv, e)
        if user is None:
            raise
        raise user from e
    for name, what in required.items():
        if flag_values[name].value is None:
            raise FlagError(f"--{name} is required: {what}.")
    if not flag_values["config"].present:  # the command needs none, or says so itself
        return rest
    path = config_flags.get_config_filename(flag_values["config"]).split(":", 1)[0]  # no ":arg"
    if not os.path.isfile(path):
        raise MissingFileError(f"Config file {path!r} does not exist (--config).")
    return rest


def parse_flags(
    flag_values: flags.FlagValues, argv: list[str], required: Mapping[str, str] = {}
) -> list[str]:
    """`parse_command` for `app.run`: a user error prints its message alone and exits with
    status 2 (with `--debug` or FDRL_DEBUG=1, its traceback)."""
    try:
        return parse_command(flag_values, argv, required)
    except UserError as e:
        if debugging(flag_values, argv):
            raise
        exit_with(e)


@contextlib.contextmanager
def user_errors_exit(flag_values: flags.FlagValues) -> Iterator[None]:
    """Inside: a `UserError` prints its message and exits with status 2 (unless debugging)."""
    try:
        yield
    except UserError as e:
        if debugging(flag_values):
            raise
        exit_with(e)
