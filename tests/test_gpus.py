"""The gpus setting: which GPUs a run pins browsers to and how browsers are dealt to them (a fake host: a list
of GPUs as NVML gives them and a folder standing in for /dev), the wrapper's private mount namespace (real
unshare, a script standing in for Chromium), the refusals that leave the run as it is (one line each), and
pinned browsers through the real render pool and Chromium (on this machine's software renderer, which names
no GPU)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from packs import make_pack

from stages.core.contracts import read_jsonl, validate_eval_row
from stages.core.errors import ContractError, CqError
from stages.core.settings import ALL_GPUS, SampleSettings, gpu_request
from stages.core.workspace import NODE_MODULES_DIR, Workspace
from stages.presets.conversion import load_preset
from stages.render.audio import load_audio
from stages.render.gpus import (
    Gpu,
    Pinning,
    choose,
    deal,
    hidden_files,
    pin_gpus,
    pinned_env,
    pinning_problem,
    unshare_command,
    write_wrapper,
)
from stages.render.pool import PairJob, RenderPool

ANGLE_H200 = "ANGLE (NVIDIA, Vulkan 1.3.289 (NVIDIA H200 (0x00002335)), NVIDIA-565.57.1.0)"
# NVML's index order is not the device files' order: GPU 0 here is /dev/nvidia1 and GPU 1 /dev/nvidia0.
H200S = [Gpu(0, "NVIDIA H200", "GPU-aaaa", 1, 0x2335), Gpu(1, "NVIDIA H200", "GPU-bbbb", 0, 0x2335),
         Gpu(2, "NVIDIA H200", "GPU-cccc", 2, 0x2335)]
A100 = Gpu(3, "NVIDIA A100-SXM4-80GB", "GPU-dddd", 3, 0x20b2)
UNPLUGGED = Gpu(4, "NVIDIA H200", "GPU-eeee", 10, 0x2335)  # NVML lists it, /dev has no nvidia10


def fake_dev(root: Path, minors=(0, 1, 2, 3)) -> Path:
    """A folder standing in for /dev: GPU device files (each holding its own name) and the driver's others."""
    dev = root / "dev"
    dev.mkdir()
    for name in [*(f"nvidia{minor}" for minor in minors), "nvidiactl", "nvidia-uvm", "nvidia-modeset", "null"]:
        (dev / name).write_text(name)
    return dev


def lines_of(settings: SampleSettings, root: Path, **environment) -> tuple[Pinning | None, list[str]]:
    said: list[str] = []
    pinning = pin_gpus(settings, 4, root / "state", said.append, **environment)
    return pinning, said


def namespaces_allowed(scratch: Path) -> bool:
    return not pinning_problem(unshare_command(), scratch)


# ------------------------------------------------------------------------------------------ the setting


def test_the_setting_names_all_some_or_no_gpus_and_needs_hardware_webgl():
    assert gpu_request("") is None and gpu_request(" none ") is None
    assert gpu_request("all") == gpu_request("ALL") == ALL_GPUS
    assert gpu_request("1, 0,1") == (0, 1)
    for wrong in ("0,", "x", "-1", "0;1", "١"):
        with pytest.raises(CqError, match="comma list of GPU indices"):
            gpu_request(wrong)
    with pytest.raises(CqError, match="gpu_mode is off"):
        SampleSettings(gpus="all").validate()
    assert SampleSettings(gpus="0,1", gpu_mode="require").validate().gpus == "0,1"
    SampleSettings(gpus="none").validate()  # off: as without the setting, whatever gpu_mode


# ------------------------------------------------------------------------------------------ planning


def test_all_takes_every_gpu_of_the_first_model_that_has_a_device_file(tmp_path):
    dev = fake_dev(tmp_path)
    chosen, notes = choose(ALL_GPUS, [*H200S, A100, UNPLUGGED], dev)
    assert [gpu.index for gpu in chosen] == [0, 1, 2]
    assert len(notes) == 2
    assert "GPU 3 (NVIDIA A100-SXM4-80GB) left out: another model than GPU 0" in notes[0]
    assert f"GPU 4 (NVIDIA H200) left out: no device file {dev / 'nvidia10'}" in notes[1]


def test_a_list_takes_the_gpus_it_names_and_reports_those_the_host_lacks(tmp_path):
    dev = fake_dev(tmp_path)
    chosen, notes = choose((1, 3, 7), [*H200S, A100], dev)
    assert [gpu.index for gpu in chosen] == [1]
    assert [note.split(" left out")[0] for note in notes] == ["gpus: GPU 3 (NVIDIA A100-SXM4-80GB)", "gpus: GPU 7"]
    assert "NVML lists 0, 1, 2, 3" in notes[1]
    chosen, notes = choose((3,), [*H200S, A100], dev)
    assert [gpu.index for gpu in chosen] == [3] and notes == []  # alone, the A100 is the run's model


@pytest.mark.parametrize(("browsers", "gpus", "counts"), [(32, 2, [16, 16]), (5, 2, [3, 2]), (16, 3, [6, 5, 5]),
                                                           (1, 3, [1, 0, 0])])
def test_browsers_are_dealt_in_turn(browsers, gpus, counts):
    dealt = deal(browsers, H200S[:gpus])
    assert [dealt.count(gpu) for gpu in H200S[:gpus]] == counts
    if browsers > 1:
        assert dealt[0] != dealt[1], "the self-test's two browsers render on two GPUs"


def test_a_pinned_browser_hides_every_other_gpu_device_file_by_minor_number(tmp_path):
    dev = fake_dev(tmp_path, minors=(0, 1, 2, 3, 10))
    assert hidden_files(H200S[0], dev) == tuple(str(dev / f"nvidia{minor}") for minor in (0, 2, 3, 10))
    assert hidden_files(H200S[1], dev) == tuple(str(dev / f"nvidia{minor}") for minor in (1, 2, 3, 10))
    pinning = Pinning(tmp_path / "wrapper.sh", "/opt/chromium", deal(3, H200S[:2]),
                      {gpu.index: hidden_files(gpu, dev) for gpu in H200S[:2]})
    executable, env, label = pinning.launch(1)
    assert executable == str(tmp_path / "wrapper.sh") and label == "1:GPU-bbbb"
    assert env["CQ_REAL_CHROMIUM"] == "/opt/chromium"
    assert env["CQ_HIDE_DEVICES"].split() == [str(dev / f"nvidia{minor}") for minor in (1, 2, 3, 10)]
    assert pinning.launch(2)[2] == "0:GPU-aaaa"
    assert pinning.summary() == "GPU 0 (2 browsers), GPU 1 (1 browsers)"


def test_the_renderer_must_name_the_gpu_by_model_or_pci_device():
    assert H200S[0].named_by(ANGLE_H200)
    assert Gpu(0, "NVIDIA H200 NVL", "GPU-x", 0, 0x2335).named_by(ANGLE_H200), "another name, the same device id"
    assert not A100.named_by(ANGLE_H200)
    assert not H200S[0].named_by("ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), "
                                 "SwiftShader driver)")


# ------------------------------------------------------------------------------------------ the wrapper


def test_the_wrapper_hides_the_other_gpus_in_a_private_namespace_only(tmp_path):
    if not namespaces_allowed(tmp_path):
        pytest.skip("this machine allows no private mount namespace")
    dev = fake_dev(tmp_path, minors=(0, 1))
    fake_chromium = tmp_path / "chromium"
    fake_chromium.write_text(f'#!/bin/sh\nprintf "%s|" "$(cat {dev}/nvidia0)" "$(cat {dev}/nvidia1)" "$@"\n')
    fake_chromium.chmod(0o755)
    wrapper = write_wrapper(tmp_path / "state", unshare_command())
    pinned_to_1 = subprocess.run([str(wrapper), "--headless", "a b"], capture_output=True, text=True,
                                 env=pinned_env(str(fake_chromium), hidden_files(H200S[0], dev)), timeout=30)
    assert pinned_to_1.stdout == "|nvidia1|--headless|a b|", pinned_to_1.stderr  # nvidia0 reads as /dev/null
    assert (dev / "nvidia0").read_text() == "nvidia0", "the mount stays in the browser's namespace"
    assert write_wrapper(tmp_path / "state", unshare_command()) == wrapper

    missing = subprocess.run([str(wrapper)], capture_output=True, text=True, timeout=30,
                             env=pinned_env(str(fake_chromium), [str(dev / "nvidia7")]))
    assert missing.returncode == 97 and missing.stdout == "", "a browser that cannot be pinned does not start"


# ------------------------------------------------------------------------------------------ refusals


def test_the_setting_off_says_nothing(tmp_path):
    assert lines_of(SampleSettings(gpus=" none "), tmp_path, gpus=[]) == (None, [])


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has an NVIDIA driver")
def test_without_nvml_one_line_and_the_run_goes_on(tmp_path):
    pinning, said = lines_of(SampleSettings(gpus="all", gpu_mode="safe"), tmp_path)
    assert pinning is None and len(said) == 1
    assert said[0].startswith("gpus all: no GPU to pin here: ") and "NVML" in said[0]
    assert said[0].endswith("; rendering as without the setting")


@pytest.mark.parametrize(("environment", "expected"), [
    ({"gpus": []}, "no GPU to pin here (NVML lists none)"),
    ({"gpus": H200S, "dev": "empty"}, "no GPU to pin here (no nvidiaN device files in"),
    ({"gpus": H200S, "dev": "missing"}, "no GPU to pin here (no nvidiaN device files in"),
    ({"gpus": H200S, "platform": "darwin"}, "pinning a browser to a GPU needs Linux"),
    ({"gpus": H200S, "unshare": ["/nonexistent/unshare"]}, "pinning is not allowed here: `/nonexistent/unshare` "
                                                           "cannot run"),
    # a user namespace without root mapped in it: the bind mount is refused, as without namespaces
    ({"gpus": H200S, "unshare": ["unshare", "-U"]}, "pinning is not allowed here: `unshare -U` cannot bind-mount"),
    ({"gpus": H200S, "unshare": ["false"]}, "pinning is not allowed here: `false` cannot bind-mount in a private "
                                           "mount namespace (exit status 1)"),
])
def test_no_gpu_or_no_pinning_is_one_line_and_the_run_goes_on(tmp_path, environment, expected):
    dev = {"empty": tmp_path / "empty", "missing": tmp_path / "missing"}.get(environment.get("dev"), None)
    if environment.get("dev") == "empty":
        dev.mkdir()
    given = {**environment, "dev": dev or fake_dev(tmp_path)}
    pinning, said = lines_of(SampleSettings(gpus="0,1", gpu_mode="require"), tmp_path, **given)
    assert pinning is None and len(said) == 1, said
    assert said[0].startswith(f"gpus 0,1: {expected}") and said[0].endswith("; rendering as without the setting")
    assert not list((tmp_path / "state").glob("pinned-chromium-*")), "no wrapper written"


def test_gpus_the_host_cannot_pin_are_left_out_one_line_each(tmp_path):
    if not namespaces_allowed(tmp_path):
        pytest.skip("this machine allows no private mount namespace")
    pinning, said = lines_of(SampleSettings(gpus="3,4,9", gpu_mode="safe"), tmp_path, gpus=[*H200S, A100, UNPLUGGED],
                             dev=fake_dev(tmp_path, minors=(0, 1, 2)))
    assert pinning is None
    assert [line.split(" left out")[0] for line in said[:3]] == [
        "gpus: GPU 3 (NVIDIA A100-SXM4-80GB)", "gpus: GPU 4 (NVIDIA H200)", "gpus: GPU 9"]
    assert said[3:] == ["gpus 3,4,9: none of the GPUs it names can be pinned; rendering as without the setting"]


# ------------------------------------------------------------------------------------------ real Chromium


def test_a_gpu_whose_pinned_browser_does_not_name_it_is_left_out(tmp_path):
    """Real unshare, the real wrapper and Chromium: pinned to a stand-in device file, this machine's browser
    renders in software, which names no H200."""
    if not namespaces_allowed(tmp_path):
        pytest.skip("this machine allows no private mount namespace")
    pinning, said = lines_of(SampleSettings(gpus="all", gpu_mode="safe"), tmp_path, gpus=H200S[:2],
                             dev=fake_dev(tmp_path, minors=(0, 1)))
    assert pinning is None and len(said) == 3, said
    for line, gpu in zip(said[:2], H200S):
        assert line.startswith(f"gpus: GPU {gpu.index} (NVIDIA H200) left out: its pinned browser renders with ")
        assert line.endswith(", which does not name it") and "H200" not in line.split("renders with")[1]
    assert said[2] == "gpus all: no GPU it names could be pinned; rendering as without the setting"


def test_pinned_browsers_render_and_say_on_which_gpu(tmp_path):
    """The render pool's launch hook: two browsers through the wrapper, each hiding the other's stand-in device
    file; both render the same pixels, and each result names its browser's GPU."""
    if not namespaces_allowed(tmp_path):
        pytest.skip("this machine allows no private mount namespace")
    from playwright.sync_api import sync_playwright

    from stages.render.browser import find_chromium

    dev = fake_dev(tmp_path, minors=(0, 1))
    with sync_playwright() as playwright:
        chromium = find_chromium("", playwright.chromium.executable_path)
    gpus = H200S[:2]
    pinning = Pinning(write_wrapper(tmp_path / "state", unshare_command()), chromium, deal(2, gpus),
                      {gpu.index: hidden_files(gpu, dev) for gpu in gpus})
    settings = SampleSettings(width=64, height=64, frames=16, workers=2, reload_every=0)
    converted = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
    names = ("Martin - journey into space.json", "Geiss - Hurricane.json")
    job = PairJob(1, *(load_preset(converted / name) for name in names), *names)
    with RenderPool(settings, load_audio(settings).frames, tmp_path / "state", pinning=pinning) as pool:
        pool.self_test(job)  # once on each browser: the same series on both
        results = [pool.render_one(job) for _ in range(3)]  # free browsers are taken in turn
        ours = os.readlink("/proc/self/ns/mnt")
        assert all(os.readlink(f"/proc/{pid}/ns/mnt") != ours for pid in pool.browser_pids), "in their own namespace"
    assert [result.status for result in results] == ["ok"] * 3
    assert [result.gpu for result in results] == ["0:GPU-aaaa", "1:GPU-bbbb", "0:GPU-aaaa"]
    assert all(result.gpu == pinning.launch(result.worker)[2] for result in results)
    assert all(result.series == results[0].series for result in results)


@pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="this machine has an NVIDIA driver")
def test_a_run_asking_for_gpus_where_there_are_none_says_so_once_and_samples_as_today(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 3)
    result = doit(workspace, "sample", "--packs", "tiny", "--gpus", "all", "--gpu-mode", "safe", "--workers", "1",
                  "--frames", "16", "--width", "64", "--height", "64")
    said = [line for line in result.stdout.splitlines() if line.startswith("gpus")]
    assert len(said) == 1 and said[0].startswith("gpus all: no GPU to pin here: "), result.stdout
    rows = read_jsonl(workspace.shard_path("tiny", 0)).rows
    assert len(rows) == 3 and all(validate_eval_row(row)["gpu"] == "" for row in rows)
    with pytest.raises(ContractError, match="field 'gpu' has int"):
        validate_eval_row({**rows[0], "gpu": 1})
    assert "gpus" not in workspace.config_path.read_text(), "a per-run knob is not saved"
