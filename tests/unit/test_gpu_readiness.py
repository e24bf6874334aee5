"""The CUDA paths on CPU: device-index resolution, the stress worker's UUID/MPS handshake, wall
time vs CUDA events, peak memory above entry, NVML under MIG, Ray's GPU rules, lazy suite
images and `make test-gpu` without CUDA. CUDA and NVML are fakes here; tests/gpu/ checks the
same values on a real GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adabench.contention import workers
from adabench.contention.controller import (
    Contention,
    ContentionError,
    check_workers,
    mps_problem,
)
from adabench.errors import UserError
from adabench.measure import device as devices
from adabench.measure.memory import PeakMemory
from adabench.measure.telemetry import fallback_nvml_index
from adabench.measure.timing import Timer
from adabench.sweep.ray_executor import refuse_shared_gpus, task_device

ROOT = Path(__file__).resolve().parents[2]
UUID0 = "GPU-11111111-aaaa-bbbb-cccc-000000000000"
UUID1 = "GPU-22222222-aaaa-bbbb-cccc-000000000001"


class FakeCuda:
    """A CudaRuntime with `count` visible GPUs, the current one being `current`."""

    def __init__(self, count: int = 2, current: int = 0, available: bool = True):
        self.count, self.current, self.available = count, current, available

    def is_available(self) -> bool:
        return self.available

    def device_count(self) -> int:
        return self.count

    def current_device(self) -> int:
        return self.current

    def uuid(self, index: int) -> str:
        return [UUID0, UUID1][index]


# ---------------------------------------------------------------- device index


@pytest.mark.parametrize(
    ("asked", "cuda", "expected"),
    [
        ("auto", FakeCuda(), ("cuda:0", UUID0)),
        ("cuda", FakeCuda(), ("cuda:0", UUID0)),
        ("cuda", FakeCuda(current=1), ("cuda:1", UUID1)),  # after set_device(1)
        ("cuda:1", FakeCuda(), ("cuda:1", UUID1)),
        ("auto", FakeCuda(available=False), ("cpu", "")),
        ("cpu", FakeCuda(), ("cpu", "")),
    ],
)
def test_resolve_gives_one_concrete_device_with_its_uuid(asked, cuda, expected):
    chosen = devices.resolve(asked, cuda)
    assert (chosen.name, chosen.uuid) == expected
    assert chosen.index == (None if expected[0] == "cpu" else int(expected[0][5:]))


def test_resolve_refuses_missing_cuda_and_invisible_indices():
    with pytest.raises(UserError, match="needs CUDA"):
        devices.resolve("cuda", FakeCuda(available=False))
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    with pytest.raises(UserError, match=r"only 2 CUDA device.*CUDA_VISIBLE_DEVICES=2,3.*cuda:1"):
        devices.resolve("cuda:2", FakeCuda(), env)
    with pytest.raises(UserError, match="auto, cpu, cuda or cuda:N"):
        devices.resolve("gpu0", FakeCuda())


def test_resolve_device_on_this_cpu_build():
    from adabench.models.loading import resolve_device

    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(UserError, match="needs CUDA"):
        resolve_device("cuda")


def test_eager_module_loading_is_a_default_not_an_override():
    env: dict[str, str] = {}
    devices.prefer_eager_module_loading(env)
    assert env == {"CUDA_MODULE_LOADING": "EAGER"}
    env = {"CUDA_MODULE_LOADING": "LAZY"}
    devices.prefer_eager_module_loading(env)
    assert env["CUDA_MODULE_LOADING"] == "LAZY"


def test_eager_loading_set_here_is_not_passed_to_stress_workers(monkeypatch):
    """Only the measuring process pays for eager kernel loading; a user's own choice is kept."""
    from adabench.contention.controller import Contention

    monkeypatch.delenv("CUDA_MODULE_LOADING", raising=False)
    devices.prefer_eager_module_loading()
    assert os.environ["CUDA_MODULE_LOADING"] == "EAGER"
    assert "CUDA_MODULE_LOADING" not in devices.child_environ()
    with Contention(0.5, "compute", "cpu", workers=1) as stress:
        (pid,) = stress.pids
        worker_env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not any(e.startswith(b"CUDA_MODULE_LOADING=") for e in worker_env)
    monkeypatch.setenv("CUDA_MODULE_LOADING", "EAGER")  # now the user's choice
    user = dict(os.environ)
    assert devices.child_environ(user)["CUDA_MODULE_LOADING"] == "EAGER"


def test_reference_workload_is_built_once_per_device():
    from adabench.contention.calibrate import ReferenceWorkload

    assert ReferenceWorkload.shared("cpu") is ReferenceWorkload.shared("cpu")
    decode = ReferenceWorkload.shared("cpu", "decode")
    assert decode is ReferenceWorkload.shared("cpu", "decode")
    assert decode is not ReferenceWorkload.shared("cpu")


def test_decode_reference_is_a_batch_one_matvec_chain_over_distinct_weights(monkeypatch):
    """Item 8: the decode-shaped reference reads one weight per product at batch 1 (a decode
    step), not the step reference's one large matmul."""
    from adabench.contention import calibrate

    ref = calibrate.ReferenceWorkload("cpu", "decode")
    hidden, matvecs = calibrate._CPU_DECODE
    assert ref._row.shape == (1, hidden) and len(ref._weights) == matvecs
    assert len({w.data_ptr() for w in ref._weights}) == matvecs
    assert sum(w.numel() * 4 for w in ref._weights) >= 64 << 20  # more than a CPU's L3
    products, matmul = [], torch.matmul
    monkeypatch.setattr(torch, "matmul", lambda a, b: products.append((a, b)) or matmul(a, b))
    ref.step_ms()
    assert [(a.shape[0], b.data_ptr()) for a, b in products] == [
        (1, w.data_ptr()) for w in ref._weights
    ]
    with pytest.raises(ValueError, match="reference kind"):
        calibrate.ReferenceWorkload("cpu", "prefill")


def test_worker_device_always_has_an_index():
    # torch.cuda.set_device(torch.device("cuda")) raises "Expected a torch.device with a
    # specified index": the worker must never pass it a bare "cuda".
    with pytest.raises(ValueError, match="specified index"):
        torch.cuda.set_device(torch.device("cuda"))
    assert workers.cuda_device("cuda").index == 0
    assert workers.cuda_device("cuda", current=2).index == 2
    assert workers.cuda_device("cuda:3").index == 3


def test_visible_devices_map_cuda_indices_to_nvml_ones():
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    assert devices.visible_entry(0, env) == "2"
    assert fallback_nvml_index(0, env) == 2 and fallback_nvml_index(1, env) == 3
    assert fallback_nvml_index(1, {"CUDA_VISIBLE_DEVICES": f"{UUID0},{UUID1}"}) == 1
    assert fallback_nvml_index(1, {}) == 1


# ---------------------------------------------------------------- NVML (fake pynvml)


class FakeNvml:
    """pynvml with GPUs given as {uuid, mig: [uuids], mps: [pids], compute: [pids]} dicts."""

    def __init__(self, gpus):
        self.gpus = gpus

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return self.gpus[i]

    def nvmlDeviceGetUUID(self, handle):
        return handle["uuid"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetMigMode(self, handle):
        if "mig" not in handle:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return (1, 1)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        return len(handle["mig"]) + 1  # one empty slot

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, j):
        if j >= len(handle["mig"]):
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return {"uuid": handle["mig"][j], "mps": handle.get("mps", []), "compute": []}

    def nvmlDeviceGetMPSComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p) for p in handle.get("mps", [])]

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=p) for p in handle.get("compute", [])]


def test_nvml_match_by_uuid_and_under_mig():
    mig = "MIG-33333333-aaaa-bbbb-cccc-000000000002"
    nvml = FakeNvml([{"uuid": UUID1}, {"uuid": UUID0, "mig": [mig]}])
    # torch prints UUIDs without the "GPU-" prefix; NVML may order GPUs differently from CUDA
    match = devices.nvml_match(UUID0.removeprefix("GPU-"), nvml)
    assert (match.index, match.uuid, match.mig) == (1, UUID0, False)
    match = devices.nvml_match(mig.removeprefix("MIG-"), nvml)
    assert (match.index, match.uuid, match.mig) == (1, mig, True)  # power: the parent GPU
    assert devices.nvml_match("44444444-0000-0000-0000-000000000000", nvml) is None
    assert devices.same_gpu("MIG-GPU-abc/1/0", "abc") and not devices.same_gpu("", "")


def test_mps_client_state_from_nvml_process_lists():
    nvml = FakeNvml([{"uuid": UUID0, "mps": [41], "compute": [7, 42]}])
    assert devices.mps_state_of(41, UUID0, nvml) == "mps"
    assert devices.mps_state_of(42, UUID0, nvml) == "direct"
    assert devices.mps_state_of(43, UUID0, nvml) == "unseen"
    assert devices.mps_state_of(41, UUID1, nvml) == "unknown"  # no such GPU
    assert devices.mps_client_state(1, None, None) == "unknown"


# ---------------------------------------------------------------- worker handshake


def test_ready_line_round_trip():
    assert workers.parse_ready(workers.ready_line(12)) == {"pid": "12"}
    line = workers.ready_line(12, UUID0, "mps")
    assert workers.parse_ready(line) == {"pid": "12", "uuid": UUID0, "mps": "mps"}
    assert workers.parse_ready("Traceback (most recent call last):") is None


def _report(uuid=UUID0, mps="direct", pid="9"):
    return {"pid": pid, "uuid": uuid, "mps": mps}


def test_handshake_requires_the_model_gpu():
    assert check_workers("compute", UUID0, [_report()]) is False
    assert check_workers("compute", UUID0, [_report(mps="mps")]) is True  # concurrent stress
    with pytest.raises(ContentionError, match=f"runs on GPU {UUID1}, not on the measured"):
        check_workers("memory", UUID0, [_report(), _report(UUID1, pid="10")])


@pytest.mark.parametrize(
    ("state", "why"),
    [("direct", "plain CUDA process"), ("unseen", "PID namespace"), ("unknown", "cannot list")],
)
def test_sm_stress_must_prove_it_is_an_mps_client(state, why):
    with pytest.raises(UserError, match=f"MPS client.*{why}"):
        check_workers("sm", UUID0, [_report(mps=state)])
    assert check_workers("sm", UUID0, [_report(mps="mps")]) is True


def test_mps_daemon_of_another_user_is_refused(tmp_path):
    control = tmp_path / "control"
    control.touch()
    if os.getuid() == 0:
        os.chown(control, 4242, 4242)  # a daemon of uid 4242
    owner = control.stat().st_uid
    assert "belongs to uid" in mps_problem(str(tmp_path), uid=owner + 1)
    assert mps_problem(str(tmp_path), uid=owner) is None
    assert "not running" in mps_problem(str(tmp_path / "none"), uid=owner)


def test_cpu_contention_reports_no_mps_and_no_gpu():
    with Contention(0.3, "compute", "cpu", workers=1) as c:
        assert len(c.pids) == 1
        assert c.mps_active is False and c.gpu_uuid == ""


# ---------------------------------------------------------------- timing and memory (fake CUDA)


class FakeClock:
    def __init__(self):
        self.ns = 0

    def __call__(self) -> int:
        return self.ns

    def advance_ms(self, ms: float) -> None:
        self.ns += int(ms * 1e6)


def _fake_cuda_timer(monkeypatch, clock: FakeClock, wait_ms: float, gpu_ms: float):
    """Patches torch.cuda for timing.py: the exit synchronisation waits `wait_ms` (the stress
    process holding the GPU), and the events see `gpu_ms` of our own kernels."""
    from adabench.measure import timing

    syncs = []

    def synchronize(device=None):
        syncs.append(device)
        if len(syncs) % 2 == 0:
            clock.advance_ms(wait_ms)

    class Event:
        def __init__(self, enable_timing=False):
            assert enable_timing

        def record(self, stream=None):
            pass

        def elapsed_time(self, end):
            return gpu_ms

    monkeypatch.setattr(timing.time, "perf_counter_ns", clock)
    monkeypatch.setattr(timing.torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(timing.torch.cuda, "Event", Event)
    monkeypatch.setattr(timing.torch.cuda, "current_stream", lambda device=None: "stream")
    return syncs


def test_cuda_latency_is_wall_time_and_events_are_secondary(monkeypatch):
    clock = FakeClock()
    syncs = _fake_cuda_timer(monkeypatch, clock, wait_ms=30.0, gpu_ms=12.0)
    timer = Timer("cuda:0")
    with timer.track() as run:
        clock.advance_ms(5.0)  # host time launching the block
    assert len(syncs) == 2  # synchronised at entry and at exit
    assert run.elapsed_ms == pytest.approx(35.0)  # launch + waiting for the GPU's time slice
    assert run.gpu_ms == pytest.approx(12.0)
    assert timer.values_ms == [run.elapsed_ms] and timer.gpu_values_ms == [12.0]
    assert timer.latency().mean == pytest.approx(35.0)
    timer.reset()
    assert timer.values_ms == [] and timer.gpu_values_ms == []


def test_cpu_and_fake_timers_have_no_gpu_time():
    with Timer("cpu").track() as run:
        pass
    assert run.elapsed_ms >= 0 and run.gpu_ms != run.gpu_ms  # NaN
    fake = Timer("cuda:0", fake_ms=[7.0])
    with fake.track() as run:
        pass
    assert run.elapsed_ms == 7.0 and run.gpu_ms != run.gpu_ms and fake.gpu_values_ms == []


def test_cuda_peak_memory_is_above_the_resident_weights(monkeypatch):
    from adabench.measure import memory

    mb = memory.MB
    state = {"allocated": 1000 * mb, "peak": 1000 * mb}

    def reset(device=None):
        state["peak"] = state["allocated"]

    monkeypatch.setattr(memory.torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(memory.torch.cuda, "reset_peak_memory_stats", reset)
    monkeypatch.setattr(memory.torch.cuda, "memory_allocated", lambda d=None: state["allocated"])
    monkeypatch.setattr(memory.torch.cuda, "max_memory_allocated", lambda d=None: state["peak"])
    with PeakMemory("cuda:0") as mem:  # entered with 1000 MB of weights resident
        state["peak"] = 1300 * mb  # activations and KV cache
    assert mem.start_mb == 1000 and mem.peak_total_mb == 1300
    assert mem.peak_mem_mb == pytest.approx(300)


def test_cpu_peak_memory_has_the_same_meaning():
    with PeakMemory("cpu") as mem:
        block = bytearray(64 * 2**20)
        block[::4096] = b"\1" * len(block[::4096])  # touch every page
        del block
    assert mem.peak_total_mb >= mem.start_mb
    assert mem.peak_mem_mb == pytest.approx(mem.peak_total_mb - mem.start_mb) or not mem.exact
    assert mem.peak_mem_mb >= 48


# ---------------------------------------------------------------- Ray


def test_ray_refuses_tasks_sharing_gpu0():
    env = {"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": "1"}
    with pytest.raises(UserError, match="every task would measure on GPU 0"):
        refuse_shared_gpus(env)
    refuse_shared_gpus({})
    refuse_shared_gpus({"RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES": ""})
    assert task_device("auto", 1) == "cuda:0" and task_device("cuda:1", 2) == "cuda:1"


# ---------------------------------------------------------------- lazy suite images


def test_hf_images_are_decoded_on_access_not_at_load(monkeypatch):
    from datasets.features import image as hf_image

    from adabench.data import hf_suites
    from adabench.data.suites import load_suite

    monkeypatch.setenv("ADABENCH_DATA_DIR", str(ROOT / "tests" / "fixtures" / "suites"))
    decodes = []
    real = hf_image.Image.decode_example

    def counting(self, value, token_per_repo_id=None):
        decodes.append(1)
        return real(self, value, token_per_repo_id=token_per_repo_id)

    monkeypatch.setattr(hf_image.Image, "decode_example", counting)
    for suite in ("vqav2", "gqa", "mmbench"):  # plain, joined, circular rotations
        decodes.clear()
        samples = load_suite(suite)
        assert decodes == [], f"{suite}: load decoded {len(decodes)} images up front"
        assert all(isinstance(s, hf_suites.LazySample) for s in samples)
        first = samples[-1].image
        assert len(decodes) == 1 and first.mode == "RGB"
        assert samples[-1].image is not first  # decoded again, never kept


# ---------------------------------------------------------------- make test-gpu, markers


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_gpu_fails_in_one_line_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this Python sees CUDA")
    py = sys.executable
    proc = subprocess.run(
        ["make", "-s", "test-gpu", f"VPY={py}", f"PYTHON={py}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ours = [ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("make")]
    assert proc.returncode != 0
    assert len(ours) == 1 and "CUDA is not available" in ours[0], ours


def test_every_gpu_test_carries_the_gpu_marker():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not gpu", "tests/gpu"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 5, proc.stdout[-2000:]  # 5: every collected test deselected
    assert "deselected" in proc.stdout


# ---------------------------------------------------------------- FastV ranking precision


def test_fastv_ranking_probabilities_are_fp32_in_a_half_model():
    from adabench.models.execution import LlavaRunner
    from adabench.models.plan import Plan
    from tests.conftest import build_random_llava

    model, _ = build_random_llava(layers=2)
    runner = LlavaRunner(model.half())
    block = runner.prepare(Plan.full(2))[0]
    h = torch.randn(1, 9, model.config.text_config.hidden_size, dtype=torch.float16)
    rope = runner.rope(h, torch.arange(9)[None])
    with torch.no_grad():
        _, probs = runner.block(block, h, rope, last_query_probs=True)
    assert probs.dtype == torch.float32  # fp16 would tie and reorder the smallest scores
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_fastv_choice_reads_no_tensor_back_from_the_device():
    """Item 14: FastV's count of image tokens comes from the features' shape, not from the ids
    on the device (a GPU→host sync inside the timed region). Ids and features on the `meta`
    device have shapes but no values: any read-back raises."""
    from adabench.models.factory import build_method
    from adabench.models.loading import load_model

    loaded = load_model("tiny", device="cpu")
    method = build_method("fastv", loaded, 0.75)
    n_visual = 16
    text = loaded.config.text_config
    ids = torch.empty(1, n_visual + 20, dtype=torch.long, device="meta")
    feats = torch.empty(1, n_visual, text.hidden_size, device="meta")
    choice = method.choose(ids, feats)
    assert 0 < choice.fastv_removed <= n_visual
