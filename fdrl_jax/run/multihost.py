"""Multi-process runs that fail safely.

- `check_same_config`: at start-up every process publishes its resolved config; all stop with
  one message naming the fields if any process's differs from process 0's.
- `StopRequests`: SIGTERM / SIGINT become a stop that every process takes at the same step.
  On several processes this is JAX's preemption sync manager (the coordination service
  agrees on the step after the furthest process's), so all save that step and exit 0.
- `watch_peers`: a watchdog thread; when a process dies (no heartbeat for `timeout` seconds)
  or stops with an error, the others exit with a message naming it instead of hanging in a
  collective.

All of it is a no-op on one process. The coordination service's key-value store (the client
`jax.distributed.initialize` creates) carries the messages; it is not public API, so it is
reached through `_client()` only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jax
import numpy as np
from absl import logging
from jax._src import distributed as jax_distributed
from jax.experimental import multihost_utils

from fdrl_jax import configlib
from fdrl_jax.errors import ConfigMismatchError

_PREFIX = "fdrl_jax/"
# Exit status of a process stopped because another one was lost (EX_SOFTWARE is taken by
# Python errors; 75 = EX_TEMPFAIL: restarting the whole job is the fix).
EXIT_PEER_LOST = 75


def process_count() -> int:
    return jax.process_count()


def _client():
    """The coordination-service client of `jax.distributed`, or None on one process."""
    return jax_distributed.global_state.client


def config_differences(reference: dict, other: dict) -> list[str]:
    """Dotted fields whose values differ between two (nested) configs, with both values."""
    a, b = configlib.flatten(reference), configlib.flatten(other)
    missing = object()
    return [
        f"{k} ({a.get(k, '<absent>')!r} vs {b.get(k, '<absent>')!r})"
        for k in sorted(set(a) | set(b))
        if a.get(k, missing) != b.get(k, missing)
    ]


_check_calls = 0


def check_same_config(config, timeout_s: float = 300.0, **run) -> None:
    """Stop every process when any process's resolved config, or a `run` setting (workdir,
    mode), differs from process 0's; the `ConfigMismatchError` names the processes and fields.

    Processes that differ would run different programs and hang or corrupt the run at the
    first collective, so this runs before any of them. Every process reads every other's
    config, so all raise the same error (none is left waiting for the others)."""
    global _check_calls
    client = _client()
    if client is None or process_count() == 1:
        return
    _check_calls += 1  # a fresh key per call: the store keeps what earlier calls set
    key = f"{_PREFIX}config/{_check_calls}/"
    mine = {"config": json.loads(config.to_json_best_effort()), **run}
    client.key_value_set(key + str(jax.process_index()), json.dumps(mine, sort_keys=True))
    configs = []
    for i in range(process_count()):
        try:
            configs.append(
                json.loads(client.blocking_key_value_get(key + str(i), int(timeout_s * 1e3)))
            )
        except Exception as e:  # the client raises its own error types
            raise ConfigMismatchError(
                f"Process {i} did not publish its config within {timeout_s:.0f} s ({e}); "
                "did every process start?"
            ) from e
    problems = []
    for i, c in enumerate(configs[1:], start=1):
        diff = config_differences(configs[0], c)
        if diff:
            problems.append(f"process {i} differs from process 0 in: " + "; ".join(diff))
    if problems:
        raise ConfigMismatchError(
            "The processes of this run were started with different settings, so none "
            "starts (process 0's value first): "
            + " | ".join(problems)
            + ". Start every process with the same --config, overrides, --workdir and --mode."
        )


class StopRequests:
    """SIGTERM / SIGINT (preemption, scheduler time limit, Ctrl-C) as a stop request that
    every process honours at the same loop iteration.

    Call `check(i)` once per loop iteration with the iteration's number (1, 2, ... in this
    run, the same on every process); once it returns True it keeps returning True, and it
    returns True on every process at the same `i`.

    One process: Python handlers set a flag. Several processes: JAX's preemption sync
    manager, which catches SIGTERM itself (a Python handler for SIGTERM would replace it),
    tells the coordination service, and agrees on the iteration after the furthest
    process's; SIGINT is passed on to it as a SIGTERM. Where that manager is off
    (`jax_enable_preemption_service=False`), every check gathers the processes' flags.
    """

    def __enter__(self) -> StopRequests:
        self.received: str | None = None
        self._stop, self._previous = False, {}
        multi = _client() is not None and process_count() > 1
        self._sync = multi and jax_distributed.global_state.preemption_sync_manager is not None
        self._gather = multi and not self._sync
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread's handlers
        signals = (signal.SIGINT,) if self._sync else (signal.SIGTERM, signal.SIGINT)
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        del frame
        self.received = signal.Signals(signum).name
        if self._sync:  # let the preemption sync manager's own SIGTERM handler see it
            os.kill(os.getpid(), signal.SIGTERM)

    def check(self, iteration: int) -> bool:
        if self._stop:
            return True
        if self._sync:
            self._stop = multihost_utils.reached_preemption_sync_point(iteration)
            if self._stop and self.received is None:
                self.received = "SIGTERM (a preemption notice to this or another process)"
        elif self._gather:
            flags = multihost_utils.process_allgather(np.int32(self.received is not None))
            self._stop = bool(np.any(flags))
            if self._stop and self.received is None:
                self.received = "a stop signal to another process"
        else:
            self._stop = self.received is not None
        return self._stop

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def print_traceback(error: BaseException) -> int:
    """The default report of an error that ends a process: its traceback; exit status 1."""
    traceback.print_exception(error)
    return 1


class _Watchdog:
    """Heartbeats through the coordination service's key-value store; see `watch_peers`.

    Each process publishes, under `fdrl_jax/alive/<index>`, a beat counter every `interval`
    seconds, then "done" when it leaves `watch_peers` normally, "error:<why>" when it leaves
    with an exception, or "left:<why>" when it stops because another process was lost.
    """

    def __init__(self, timeout_s: float, interval_s: float | None = None):
        self.timeout = float(timeout_s)
        self.interval = interval_s or max(min(self.timeout / 10.0, 5.0), 0.2)
        self.client, self.me, self.n = _client(), jax.process_index(), process_count()
        self.max_gap = 0.0  # longest time between two of this process's beats (diagnostics)
        self._stop = threading.Event()
        self._failed_here = threading.Event()  # this process left the body with an error
        self._peers_settled = threading.Event()  # ... and every other one has stopped too
        self._thread = threading.Thread(target=self._run, name="fdrl-peer-watchdog", daemon=True)

    def _key(self, i: int) -> str:
        return f"{_PREFIX}alive/{i}"

    def _set(self, value: str) -> None:
        self.client.key_value_set(self._key(self.me), value, allow_overwrite=True)

    def start(self) -> None:
        self._set("0")
        self._thread.start()

    def _run(self) -> None:
        beat, last_beat = 0, time.monotonic()
        seen = {i: (None, time.monotonic()) for i in range(self.n) if i != self.me}
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last_beat)
            last_beat, beat = now, beat + 1
            try:
                if not self._failed_here.is_set():
                    self._set(str(beat))
                states = dict(self.client.key_value_dir_get(f"{_PREFIX}alive/"))
            except Exception as e:  # the service lives in process 0
                if not self._stop.is_set():
                    self._fail(0, f"the coordination service it runs is unreachable ({e})")
                return
            settled = 0
            for i, (value, since) in seen.items():
                state = states.get(self._key(i))
                if state == "done":
                    settled += 1
                elif state is not None and state.startswith(("error:", "left:")):
                    if not self._failed_here.is_set():
                        why = state.partition(":")[2]
                        self._fail(
                            i,
                            f"it stopped {'with an error' if state[0] == 'e' else 'as'}: {why}",
                            lost_alive=state[0] == "e",  # it waits to hear from the others
                        )
                    settled += 1
                elif state != value:
                    seen[i] = (state, now)
                elif now - since > self.timeout:
                    self._fail(
                        i,
                        f"it sent no heartbeat for {now - since:.0f} s (killed, crashed, or "
                        "its host was lost)",
                    )
            if self._failed_here.is_set() and settled == len(seen):
                self._peers_settled.set()
                return

    def _fail(self, lost: int, why: str, lost_alive: bool = False) -> None:
        message = (
            f"Lost process {lost} of {self.n}: {why}. Process {self.me} stops now (exit "
            f"status {EXIT_PEER_LOST}) instead of waiting in a collective. Restart the whole "
            "job with the same command: it resumes from the last complete checkpoint."
        )
        logging.error(message)
        print(f"ERROR: {message}", file=sys.stderr, flush=True)
        logging.flush()
        try:  # so that the others do not count this process as lost too
            self._set(f"left:{message}")
            if self.me == 0 and (lost_alive or self.n > 2):
                # Process 0's exit ends the coordination service: let the others read this.
                time.sleep(2 * self.interval)
        except Exception:
            pass
        os._exit(EXIT_PEER_LOST)

    def finish(self) -> None:
        """Leave normally: the others stop watching this process."""
        self._stop.set()
        self._thread.join()
        try:
            self._set("done")
        except Exception as e:  # the service may already be gone
            logging.warning("Could not report this process's state to the others: %s", e)
        logging.info("Peer watchdog: longest gap between heartbeats %.1f s", self.max_gap)

    def fail_here(self, error: BaseException, report: Callable[[BaseException], int]) -> None:
        """Leave with `error`: report it (`report` returns the exit status), tell the others
        (they stop within seconds), wait until they have stopped, or until the watchdog finds
        the process whose loss caused `error` (a collective that fails on a dead peer), then
        exit without jax's shutdown barrier, which would wait for processes that are gone."""
        status = report(error)
        try:
            self._set(f"error:process {self.me}: {type(error).__name__}: {str(error)[:400]}")
        except Exception:  # the service is gone (process 0 died): nobody to wait for
            os._exit(status)
        self._failed_here.set()
        logging.error(
            "Process %d stopped with %s; waiting for the other processes to stop.",
            self.me,
            type(error).__name__,
        )
        self._peers_settled.wait(self.timeout + 3 * self.interval)
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


@contextmanager
def watch_peers(
    timeout_s: float = 30.0, report: Callable[[BaseException], int] = print_traceback
) -> Iterator[None]:
    """Run the body while a watchdog thread checks the other processes.

    A process that sends no heartbeat for `timeout_s` seconds (SIGKILL, a crash, a lost host)
    or that leaves the body with an exception makes every other process log which one it was
    and exit with status `EXIT_PEER_LOST` (75): within about `timeout_s`, or seconds for an
    exception, instead of waiting in a collective until jax's own heartbeat check aborts it
    (and jax's check only sees dead processes, not failed ones). The process that raised
    reports its error with `report` (which returns its exit status: a traceback and 1 by
    default) and exits once the others have stopped. Leaving the body normally is "done",
    not lost. No-op on one process or with `timeout_s <= 0`.
    """
    if _client() is None or process_count() == 1 or timeout_s <= 0:
        yield
        return
    dog = _Watchdog(timeout_s)
    dog.start()
    try:
        yield
    except BaseException as e:
        dog.fail_here(e, report)
        raise
    dog.finish()
