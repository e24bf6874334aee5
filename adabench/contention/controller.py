"""The contention controller: start stress workers, verify them, pause them, always stop them.

`with Contention(0.5, "compute", "cpu") as c: ...` starts the workers (separate processes),
waits for each one's `ready` line (a handshake, not a sleep), and stops them when the block
ends, whatever the reason. `c.check()` raises `ContentionError` if a worker died; `c.pids`
lets the measuring side tell its own stress from foreign load.

On CUDA the device is resolved once to a concrete `cuda:i` (adabench/measure/device.py) and
each worker's handshake names its GPU's UUID, which must equal the measuring process's: stress
and model share one physical GPU. The handshake also says whether the worker is an NVIDIA MPS
client (`c.mps_active`); `sm` contention refuses to run unless it is, because a client that
cannot reach the MPS daemon ignores CUDA_MPS_ACTIVE_THREAD_PERCENTAGE and runs at full duty.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from adabench.contention.workers import CPU_KINDS, KINDS, SINGLE_THREAD_ENV, parse_ready
from adabench.errors import UserError, check_range, did_you_mean
from adabench.measure.device import child_environ

MPS_HINT = "start the MPS daemon with `nvidia-cuda-mps-control -d` (see NVIDIA's MPS guide)"


class ContentionError(RuntimeError):
    """A stress worker failed to start or died while a measurement ran."""


def mps_problem(pipe_dir: str | None = None, uid: int | None = None) -> str | None:
    """Returns None when an NVIDIA MPS control daemon of this user seems to run, else why `sm`
    mode cannot run. A first check only: the worker's handshake proves the MPS connection."""
    pipe_dir = pipe_dir or os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    control = os.path.join(pipe_dir, "control")
    if os.path.exists(control):
        owner = os.stat(control).st_uid
        me = os.getuid() if uid is None else uid
        if owner not in (me, 0) and me != 0:
            # Another user's server does not accept our clients: they would wait, not fail.
            return (
                f"the MPS daemon at {pipe_dir} belongs to uid {owner}, not to this user "
                f"(uid {me}); its server would make our CUDA clients wait. Use that user's "
                "account or point CUDA_MPS_PIPE_DIRECTORY at a daemon of your own"
            )
        return None
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as fh:
                    if fh.read().startswith("nvidia-cuda-mps"):
                        return None
    return f"NVIDIA MPS is not running (no control pipe in {pipe_dir}); {MPS_HINT}"


def check_device(device: str) -> str:
    """Returns "cpu", or the concrete "cuda:N" that `cuda` / `cuda:N` names here; raises
    UserError for other names, without CUDA, or for an index that is not visible."""
    from adabench.measure import device as devices

    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        return devices.resolve(device).name
    raise UserError(f"unknown device {device!r}. Choose from: cpu, cuda, cuda:N.")


def check_workers(kind: str, expected_uuid: str, reports: list[dict[str, str]]) -> bool:
    """Checks the handshake reports of CUDA workers (see workers.parse_ready) and returns
    whether they are MPS clients. Raises ContentionError when a worker runs on another GPU
    than `expected_uuid` (the model's), UserError when `sm` stress is not provably under MPS."""
    from adabench.measure.device import same_gpu

    for info in reports:
        uuid = info.get("uuid", "")
        if expected_uuid and not same_gpu(expected_uuid, uuid):
            raise ContentionError(
                f"stress worker pid {info.get('pid')} runs on GPU {uuid or '?'}, not on the "
                f"measured GPU {expected_uuid}: stress and model must share one GPU"
            )
    states = [info.get("mps", "unknown") for info in reports]
    if kind == "sm" and any(state != "mps" for state in states):
        why = {
            "direct": "it runs as a plain CUDA process (the MPS daemon is not reachable: a stale "
            "pipe, or another CUDA_MPS_PIPE_DIRECTORY)",
            "unseen": "NVML does not list its pid (a container's PID namespace? run with "
            "--pid=host)",
            "unknown": "NVML cannot list MPS clients here",
        }
        state = next(s for s in states if s != "mps")
        raise UserError(
            f"contention kind 'sm' needs the stress worker to be an NVIDIA MPS client, but "
            f"{why.get(state, state)}; without MPS its thread percentage is ignored. {MPS_HINT}."
        )
    return bool(states) and all(state == "mps" for state in states)


def check_kind(kind: str, device: str) -> str:
    """Returns `kind` if it is a contention kind usable on `device`, else raises UserError."""
    if kind not in KINDS:
        raise did_you_mean(kind, KINDS, "contention kind")
    if kind == "sm" and device == "cpu":
        raise UserError(
            f"contention kind 'sm' needs a CUDA device with NVIDIA MPS. "
            f"On cpu choose from: {', '.join(CPU_KINDS)}."
        )
    return kind


def default_workers(device: str) -> int:
    """Returns the default number of stress workers: one per usable CPU core on cpu, 1 on a GPU."""
    if device != "cpu":
        return 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return []


@dataclass
class Contention:
    """Co-running stress at a known intensity, as a context manager (see the module docstring)."""

    level: float = field(metadata={"help": "duty cycle of each worker in [0, 1]; 0 starts nothing"})
    kind: str = field(default="compute", metadata={"help": f"one of {', '.join(KINDS)}"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda or cuda:N"})
    period_ms: float = field(default=10.0, metadata={"help": "duty-cycle period in milliseconds"})
    workers: int | None = field(
        default=None, metadata={"help": "worker processes (default: one per core on cpu, 1 on GPU)"}
    )
    start_timeout_s: float = field(
        default=120.0, metadata={"help": "how long to wait for every worker's handshake"}
    )
    _procs: list[subprocess.Popen] = field(default_factory=list, init=False, repr=False)
    _logs: list = field(default_factory=list, init=False, repr=False)
    _paused: bool = field(default=False, init=False, repr=False)
    gpu_uuid: str = field(default="", init=False, metadata={"help": "the workers' GPU (CUDA)"})
    mps_active: bool = field(
        default=False, init=False, metadata={"help": "the workers are NVIDIA MPS clients"}
    )

    def __post_init__(self) -> None:
        check_range(float(self.level), 0.0, 1.0, "contention level")
        self.level = float(self.level)
        self.device = check_device(self.device)
        self.kind = check_kind(self.kind, self.device)
        check_range(self.period_ms, 0.0, 60_000.0, "contention period_ms", low_open=True)
        if self.workers is None:
            self.workers = default_workers(self.device)
        if self.workers < 1:
            raise UserError(f"contention workers must be >= 1, got {self.workers}.")
        if self.kind == "sm" and self.level > 0 and (problem := mps_problem()):
            raise UserError(f"contention kind 'sm' needs NVIDIA MPS: {problem}.")

    @property
    def pids(self) -> list[int]:
        """Returns the process ids of the running stress workers (empty at level 0)."""
        return [p.pid for p in self._procs]

    def __enter__(self) -> Contention:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Starts the workers and returns once each has reported it is running."""
        if self.level == 0 or self._procs:
            return
        self.gpu_uuid, self.mps_active = "", False
        try:
            cores = _cores() if self.device == "cpu" else []
            for i in range(self.workers):
                self._procs.append(self._spawn(cores[i % len(cores)] if cores else -1))
            self._handshake()
        except BaseException:
            self.stop()
            raise

    def _spawn(self, core: int) -> subprocess.Popen:
        env = child_environ()
        if self.device == "cpu":
            env.update(SINGLE_THREAD_ENV)
        if self.kind == "sm":
            env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(max(1, round(self.level * 100)))
        cmd = [sys.executable, "-m", "adabench.contention.workers", "--kind", self.kind]
        cmd += ["--level", repr(self.level), "--device", self.device]
        cmd += ["--period-ms", repr(self.period_ms), "--core", str(core)]
        cmd += ["--parent-pid", str(os.getpid())]
        log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self._logs.append(log)
        return subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, close_fds=True
        )

    def _handshake(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        waiting = {p.stdout.fileno(): p for p in self._procs}
        reports = []
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                hint = f" (is NVIDIA MPS usable? {MPS_HINT})" if self.kind == "sm" else ""
                raise ContentionError(
                    f"{len(waiting)} stress worker(s) did not start within "
                    f"{self.start_timeout_s:g} s{hint}"
                )
            ready, _, _ = select.select(list(waiting), [], [], left)
            for fd in ready:
                proc = waiting.pop(fd)
                info = parse_ready(proc.stdout.readline().decode(errors="replace"))
                if info is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=5)
                    raise ContentionError(self._death_message(proc, "failed to start"))
                proc.stdout.close()
                reports.append(info)
        if self.device != "cpu":
            from adabench.measure.device import gpu_uuid

            expected = gpu_uuid(int(self.device.split(":")[1]))
            self.mps_active = check_workers(self.kind, expected, reports)
            self.gpu_uuid = reports[0].get("uuid", "") if reports else expected

    def _death_message(self, proc: subprocess.Popen, what: str) -> str:
        tail = ""
        log = self._logs[self._procs.index(proc)]
        with contextlib.suppress(OSError, ValueError):
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            tail = ("; last output: " + " | ".join(lines[-3:])) if lines else ""
        return (
            f"stress worker pid {proc.pid} ({self.kind} on {self.device}) {what} "
            f"with exit code {proc.returncode}{tail}"
        )

    def check(self) -> None:
        """Raises ContentionError if any worker has died; returns None while all are running."""
        for proc in self._procs:
            if proc.poll() is not None:
                raise ContentionError(self._death_message(proc, "died while the measurement ran"))

    def set_level(self, level: float) -> None:
        """Changes the duty cycle of the running workers to `level`, taken up within one period.
        Raises UserError outside [0, 1] or for `sm` (its MPS share is fixed at start)."""
        check_range(float(level), 0.0, 1.0, "contention level")
        if self.kind == "sm":
            raise UserError("the level of 'sm' contention is fixed at start; start a new one.")
        for proc in self._procs:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.write(f"level {float(level)!r}\n".encode())
                proc.stdin.flush()
        if self._procs:
            self.level = float(level)

    def pause(self) -> None:
        """Stops every worker (SIGSTOP) so that the machine is quiet until `resume()`."""
        self._signal_all(signal.SIGSTOP)
        self._paused = bool(self._procs)

    def resume(self) -> None:
        """Lets paused workers run again (SIGCONT)."""
        self._signal_all(signal.SIGCONT)
        self._paused = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Pauses the workers for the duration of the block (no-op at level 0)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def _signal_all(self, sig: int) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stops every worker (stdin EOF, then SIGKILL after `timeout_s`) and reaps it."""
        procs, self._procs = self._procs, []
        try:
            for proc in procs:
                if self._paused:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGCONT)
                with contextlib.suppress(OSError, ValueError):
                    proc.stdin.close()
            deadline = time.monotonic() + timeout_s
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for stream in (proc.stdin, proc.stdout):
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
            for log in self._logs:
                log.close()
            self._logs = []
            self._paused = False
