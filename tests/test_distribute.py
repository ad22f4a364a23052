"""DP under tf.distribute: noise sigma*C added once per global batch, the same weights and the same epsilon as one device.

Each scenario runs in a fresh process (tests/strategy_run.py): logical CPU devices must be set up before TensorFlow
starts, and MultiWorkerMirroredStrategy needs one process per worker.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import tfdpgen
from tfdpgen.privacy import accounting
from toys import assert_scale

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strategy_run.py")


def run(mode, replicas, env=None, timeout=600):
    result = subprocess.run([sys.executable, SCRIPT, mode, str(replicas)], capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    line = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_noise_std_is_sigma_clip_over_global_batch(replicas):
    out = run("noise", replicas)
    assert out["replicas"] == replicas
    assert_scale(out["noise"], out["sigma"])  # TF Privacy as shipped: 2.8x with 2 replicas


@pytest.mark.parametrize("replicas", [1, 2])
def test_sinkhorn_release_carries_noise_once_per_global_batch(replicas):
    """DP-Sinkhorn's all-reduced release from a step that reads no record is N(0, sigma^2 C^2) / B, the same on every
    replica. Catches: each replica adding the full noise (sqrt(2) too much on 2), or none reaching the release."""
    out = run("sinkhorn_noise", replicas)
    assert out["replicas"] == replicas and out["replicas_agree"]
    assert_scale(out["noise"], out["expected"])


@pytest.mark.parametrize("replicas", [1, 2])
def test_clipped_count_noise_is_added_once_per_global_batch(replicas):
    """Adaptive clipping's noised count carries N(0, sigma_b^2) over the global batch on 1 and 2 replicas (each adds
    its share sigma_b^2 / R). Catches: full count noise on every replica, or a share not summed."""
    out = run("count_noise", replicas)
    assert out["replicas"] == replicas and out["unclipped"]
    assert_scale(out["noise"], out["expected"], tolerance=0.05)


@pytest.mark.parametrize("mode, others", [("weights", (("weights", 2), ("weights", 4), ("weights_static", 2))),
                                           ("weights_adaptive", (("weights_adaptive", 2),)),
                                           ("weights_dp2", (("weights_dp2", 2),))])
def test_weights_without_noise_match_one_device(mode, others):
    """Fixed and adaptive clipping and DP^2: the same weights (and clip norm) on 2 or 4 replicas as on one device."""
    single = run(mode, 1)
    for other, replicas in others:
        out = run(other, replicas)
        assert out["steps"] == 5
        np.testing.assert_allclose(out["kernel"], single["kernel"], atol=1e-5, rtol=0)
        assert out["clip"] == pytest.approx(single["clip"], rel=1e-5)
        assert not np.allclose(single["kernel"], 0)
    if mode == "weights_adaptive":
        assert single["clip"] != pytest.approx(1.0)


@pytest.mark.parametrize("replicas", [0, 2])
def test_diffusion_samples_from_the_moving_average_of_its_denoiser(replicas):
    """Without a strategy and on 2 replicas, the averaged denoiser (which samples and is exported) follows
    d * average + (1 - d) * denoiser after every DP step, with the warmed-up decay d."""
    out = run("diffusion_average", replicas)
    assert out["average_error"] < 1e-6 and out["moved"] > 1e-4, out


@pytest.mark.parametrize("replicas", [0, 1, 2])
def test_gan_generator_steps_after_every_third_discriminator_step_and_its_average_follows(replicas):
    """Without a strategy the generator's step is skipped in a tf.cond; under MirroredStrategy (1 or 2 replicas) it is
    taken at rate 0: either way the generator
    moves after DP steps 3 and 6 only, and the exported average follows d * average + (1 - d) * generator."""
    out = run("gan_steps", replicas)
    assert out["moved"] == [False, False, True, False, False, True]
    assert out["generator_steps"] == 2
    assert out["average_error"] < 1e-6


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(mode, subprocess_env, attempts=2):
    """`mode` of strategy_run.py in two local worker processes of one MultiWorkerMirroredStrategy; their results.
    Their ports are free when chosen but bound later, so a port another test took in between is retried on new
    ones."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(subprocess_env, TF_USE_LEGACY_KERAS="1",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen([sys.executable, SCRIPT, mode, "1"], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    finished = []
    for process in processes:
        try:
            finished.append(process.communicate(timeout=600))
        finally:
            process.kill()
    if attempts > 1 and any("ddress already in use" in stderr for _, stderr in finished):
        return run_two_workers(mode, subprocess_env, attempts - 1)
    outputs = []
    for process, (stdout, stderr) in zip(processes, finished):
        assert process.returncode == 0, stderr[-4000:]
        outputs.append(json.loads([l for l in stdout.splitlines() if l.startswith("RESULT ")][-1][7:]))
    return outputs


def test_multi_worker_noise_shares_make_sigma_clip_over_global_batch_once(subprocess_env):
    """Two workers, each adding its share N(0, sigma^2 C^2 / 2) to its local sum: the update both end with carries
    sigma*C/B once. Catches: each worker adding the full noise (sqrt(2) too much), or one worker's share lost."""
    outputs = run_two_workers("multiworker_noise", subprocess_env)
    for out in outputs:
        assert out["replicas"] == 2
        assert_scale(out["noise"], out["sigma"])
    assert outputs[0]["noise"] == outputs[1]["noise"]


def test_multi_worker_mirrored_strategy_with_two_local_workers(subprocess_env):
    outputs = run_two_workers("multiworker", subprocess_env)
    single = tfdpgen.PrivacySettings(dataset_size=1797, batch_size=64, epochs=1, target_epsilon=2.0).resolved()
    for out in outputs:
        assert out["replicas"] == 2
        report = out["report"]
        assert report["steps"] == single.steps
        assert report["noise_multiplier"] == pytest.approx(single.noise_multiplier)
        assert report["epsilon"] == pytest.approx(
            accounting.compute_epsilon(single.noise_multiplier, 64 / 1797, single.steps, single.delta), rel=1e-12)
        assert np.isfinite(out["loss"][0])
    assert outputs[0]["loss"] == outputs[1]["loss"]


def test_cli_mirrored_over_two_cpu_devices_reports_the_single_device_epsilon(tmp_path, subprocess_env):
    output = tmp_path / "mirrored"
    command = [sys.executable, "-m", "tfdpgen.cli", "train", "--strategy", "mirrored", "--devices", "2",
               "--epochs", "2", "--batch-size", "64", "--output", str(output)]
    result = subprocess.run(command, env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica(s)" in result.stdout
    report = json.loads((output / "privacy.json").read_text())
    # 1,438 digits trained on (the default holdout keeps 359 aside)
    single = tfdpgen.PrivacySettings(dataset_size=1438, batch_size=64, epochs=2, target_epsilon=3.0).resolved()
    assert report["steps"] == single.steps and report["noise_multiplier"] == pytest.approx(single.noise_multiplier)
    assert report["epsilon"] == pytest.approx(
        accounting.compute_epsilon(single.noise_multiplier, 64 / 1438, single.steps, single.delta), rel=1e-12)
