"""Where chunks run: a local process pool (`LocalExecutor`) or Dask (`DaskExecutor`).

Dask is imported only when a `DaskExecutor` is made.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

from precsim.codesign.sweep.chunks import precsim_version
from precsim.simulator.errors import InputError


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the driver, which cancels and keeps finished chunks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class LocalExecutor(_Closing):
    """A process pool on this machine, one task per chunk.

    Workers are forked from a forkserver that has imported this package once (fast
    start, no fork of a threaded driver); `spawn` where there is no forkserver.
    """

    def __init__(self, max_workers: int | None = None):
        if max_workers is not None and max_workers < 1:
            raise InputError(f"workers: expected a whole number >= 1, got {max_workers}")
        self.max_workers = max_workers or _available_cpus()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __package__])
        else:
            context = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(self.max_workers, mp_context=context,
                                                      initializer=_ignore_sigint)

    def submit(self, fn: Callable, arg: Any) -> concurrent.futures.Future:
        try:
            return self._pool.submit(fn, arg)
        except concurrent.futures.process.BrokenProcessPool:
            # a worker died (e.g. killed for memory): start a fresh pool for the retries
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, arg)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"local process pool ({self.max_workers} workers)"


class DaskExecutor(_Closing):
    """A `dask.distributed` cluster: an existing scheduler, a Client, or a new LocalCluster.

    Give exactly one of `address` ("tcp://host:8786"), `client`, or `local_workers`
    (start `LocalCluster(n_workers=local_workers, threads_per_worker=1)`). A client or
    cluster this object created is closed by `close()`; a client passed in is left open.
    """

    def __init__(self, address: str | None = None, *, client: Any = None,
                 local_workers: int | None = None):
        from dask.distributed import Client, LocalCluster

        if sum(x is not None for x in (address, client, local_workers)) != 1:
            raise ValueError("DaskExecutor: give exactly one of address, client, local_workers")
        self._cluster = None
        self._owns_client = client is None
        if local_workers is not None:
            if local_workers < 1:
                raise InputError(f"local cluster: expected >= 1 workers, got {local_workers}")
            self._cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1,
                                         dashboard_address=None)
            client = Client(self._cluster)
        elif address is not None:
            port = re.fullmatch(r"(?:[a-z]+://)?[^/]+:(\d{1,5})", str(address))
            if port is None or not 0 < int(port[1]) < 65536:
                raise InputError(f"--scheduler {str(address)[:60]!r}: expected an address "
                                 "tcp://HOST:PORT with a port from 1 to 65535, e.g. "
                                 "tcp://127.0.0.1:8786")
            try:
                client = Client(address, timeout="10s")
            except (ValueError, TypeError, OverflowError) as exc:
                raise InputError(f"--scheduler {str(address)[:60]!r}: not a scheduler address "
                                 f"({exc}); expected tcp://HOST:PORT, e.g. "
                                 "tcp://127.0.0.1:8786") from None
            except (OSError, TimeoutError) as exc:
                raise InputError(f"scheduler {address}: cannot connect ({exc}); start one "
                                 "with `dask scheduler` and workers with "
                                 f"`dask worker {address}`") from None
        self.client = client
        if local_workers is None:
            self._check_workers()

    def _check_workers(self) -> None:
        """Every worker must run this precsim version (results must not mix versions)."""
        mine = precsim_version()
        found = self.client.run(precsim_version, on_error="return")
        wrong = {worker: version if isinstance(version, str) else error_text(version)
                 for worker, version in found.items() if version != mine}
        if wrong:
            self.close()
            listed = "; ".join(f"{w}: {v}" for w, v in sorted(wrong.items()))
            raise InputError(f"dask workers must run precsim {mine} (pip install "
                             f"precsim=={mine} on each worker); found {listed}")

    def submit(self, fn: Callable, arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __repr__(self) -> str:
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"dask cluster {self.client.scheduler.address} ({workers} workers)"


def make_executor(spec: Any) -> tuple[Any, bool]:
    """(executor, owned): None → LocalExecutor, "tcp://…" → DaskExecutor, a dask Client →
    DaskExecutor on it, anything with `submit` is used as is (and not closed here)."""
    if spec is None:
        return LocalExecutor(), True
    if isinstance(spec, str):
        return DaskExecutor(spec), True
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(spec, distributed.Client):
        return DaskExecutor(client=spec), True
    return spec, False


def error_text(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    return f"{type(exc).__name__}: {exc}"
