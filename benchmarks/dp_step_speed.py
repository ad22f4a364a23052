"""Examples per second and peak memory of one DP training step, per framework, on the same shapes.

    .venv/bin/python benchmarks/dp_step_speed.py [--quick] [--batches 64 256 1024]

Each (framework, model, batch) runs in its own process. Frameworks: plain Keras (the baseline), TensorFlow Privacy's
VectorizedDPKerasSGDOptimizer, TensorFlow Privacy's DPSequential with its default layer registry (ghost norms for
Dense and Embedding only), tfdpgen's DP step (fast engine, noise included), and, when the optional `bench` extra is
installed (`pip install -e '.[bench]'`: torch 2.13.0 CPU, opacus), plain PyTorch and Opacus with hooks and with ghost
clipping, each compared with its own non-private step. Models: MLP 784-512-512-10, a small
CNN (conv 16-32, stride 2), the DCGAN discriminator (conv 64-128, 5x5, stride 2) and the DP-VAE (its encoder and
decoder both trained privately). Timing: median of 5 windows after a warm-up. Memory, two figures: the peak resident
set size of the process minus its size right before the first step (the model, data and runtime are in the baseline;
tracing and graph optimization, and what the allocator keeps, are in the figure), and for TensorFlow the allocator's
exact peak of live tensors during the timed steps over what is live between steps (`step_tensors_mb`: what one step
needs). tfdpgen rows also carry `noise_draw_ms`, the time the step's Gaussian draw takes alone.
Writes benchmarks/results/dp_step_speed.json and prints ratios to plain Keras.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

# TF Privacy as shipped (the baseline beside tfdpgen) is built on tf.keras, which must therefore be tf_keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
FRAMEWORKS = ("keras", "tfp_vectorized", "tfp_dpsequential", "tfdpgen")
TORCH_FRAMEWORKS = ("torch", "opacus_hooks", "opacus_ghost")  # with the optional `bench` extra (torch, opacus)
BASELINE = {"tfp_vectorized": "keras", "tfp_dpsequential": "keras", "tfdpgen": "keras",
            "opacus_hooks": "torch", "opacus_ghost": "torch"}
MODELS = ("mlp", "cnn", "dcgan_discriminator", "dp_vae")


def build_network(name, tf):
    import tf_keras as keras
    L = keras.layers
    if name == "mlp":
        return keras.Sequential([L.InputLayer(input_shape=(784,)), L.Dense(512, activation="relu"),
                                    L.Dense(512, activation="relu"), L.Dense(10)]), (784,)
    if name == "cnn":
        return keras.Sequential([L.InputLayer(input_shape=(28, 28, 1)),
                                    L.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                                    L.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
                                    L.Flatten(), L.Dense(10)]), (28, 28, 1)
    if name == "dcgan_discriminator":
        return keras.Sequential([L.InputLayer(input_shape=(28, 28, 1)),
                                    L.Conv2D(64, 5, strides=2, padding="same"), L.LeakyReLU(0.2),
                                    L.Conv2D(128, 5, strides=2, padding="same"), L.LeakyReLU(0.2),
                                    L.Flatten(), L.Dense(10)]), (28, 28, 1)
    raise ValueError(name)


def torch_network(name):
    from torch import nn
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10)), (784,)
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                             nn.Flatten(), nn.Linear(32 * 7 * 7, 10)), (1, 28, 28)
    if name == "dcgan_discriminator":
        return nn.Sequential(nn.Conv2d(1, 64, 5, 2, 2), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 5, 2, 2),
                             nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(128 * 7 * 7, 10)), (1, 28, 28)
    raise ValueError(name)


def measure_torch(framework, model_name, batch):
    """Plain PyTorch and Opacus (hooks; ghost clipping) on the same shapes, timed like the TensorFlow columns."""
    import resource

    import torch
    from torch import nn

    if model_name == "dp_vae":
        return {"skipped": "no PyTorch DP-VAE in this benchmark"}
    torch.manual_seed(0)
    network, shape = torch_network(model_name)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()
    if framework == "opacus_hooks":
        from opacus import GradSampleModule
        from opacus.optimizers import DPOptimizer
        network = GradSampleModule(network)
        optimizer = DPOptimizer(torch.optim.SGD(network.parameters(), lr=0.01), noise_multiplier=1.0,
                                max_grad_norm=1.0, expected_batch_size=batch)
    elif framework == "opacus_ghost":
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizerFastGradientClipping
        from opacus.utils.fast_gradient_clipping_utils import DPLossFastGradientClipping
        network = GradSampleModuleFastGradientClipping(network, max_grad_norm=1.0, use_ghost_clipping=True)
        optimizer = DPOptimizerFastGradientClipping(torch.optim.SGD(network.parameters(), lr=0.01),
                                                    noise_multiplier=1.0, max_grad_norm=1.0,
                                                    expected_batch_size=batch)
        criterion = DPLossFastGradientClipping(network, optimizer, nn.CrossEntropyLoss())

    def step():
        optimizer.zero_grad()
        loss = criterion(network(x), y)
        loss.backward()
        optimizer.step()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return time_steps(step, batch, baseline, resource)


def time_steps(step, batch, baseline, resource, tensor_memory=None):
    """Warm up, then the median examples/s of 5 windows. Memory: the peak resident size over the process' size before
    the first step (includes tracing and graph optimization, once per run, and what the allocator keeps); for
    TensorFlow also the allocator's exact figure: the peak bytes of live tensors during the timed steps over those live
    between steps (model, optimizer state, data), i.e. what one step needs."""
    import numpy as np
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    if tensor_memory:
        between_steps = tensor_memory(reset=True)
    if seconds * 5 * 3 > 600:
        return {"skipped": f"projected {seconds:.1f} s per step", "seconds_per_step": seconds}
    per_window = max(1, min(20, int(2.0 / max(seconds, 1e-3))))
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_window):
            step()
        rates.append(per_window * batch / (time.perf_counter() - start))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = {"examples_per_second": float(np.median(rates)), "first_step_seconds": first,
               "peak_rss_mb": peak / 1024, "training_memory_mb": (peak - baseline) / 1024}
    if tensor_memory:
        figures["step_tensors_mb"] = tensor_memory(reset=False) - between_steps
    return figures


def tensor_memory(reset):
    """TensorFlow's CPU allocator: MB of live tensors now (and the peak reset to it), or the peak since the reset."""
    import tensorflow as tf
    if reset:
        tf.config.experimental.reset_memory_stats("CPU:0")
        return tf.config.experimental.get_memory_info("CPU:0")["current"] / 2**20
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20


def measure(framework, model_name, batch):
    """Run inside a fresh process: build, warm up, time. Returns a dict of figures."""
    import resource
    if framework in TORCH_FRAMEWORKS:
        return measure_torch(framework, model_name, batch)

    import numpy as np
    import tfdpgen
    import tensorflow as tf
    import tf_keras as keras

    rng = np.random.default_rng(0)
    loss_none = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    settings = tfdpgen.PrivacySettings(dataset_size=60_000, batch_size=batch, epochs=1, noise_multiplier=1.0)
    if model_name == "dp_vae":
        if framework == "tfp_dpsequential":
            return {"skipped": "DPSequential trains one Sequential on one compiled loss; a VAE is two networks"}
        x = rng.uniform(size=(batch, 28, 28, 1)).astype("float32")
        data = (x,)
        model = tfdpgen.DPVAE(image_shape=(28, 28, 1), latent_dim=16)
        if framework == "keras":
            model.compile(privacy=settings, optimizer="sgd", learning_rate=0.01)
            model.train_step = lambda batch_data: plain_vae_step(model, batch_data, tf)
        else:
            model.compile(privacy=settings, optimizer="sgd", learning_rate=0.01,
                          engine="vectorized" if framework == "tfp_vectorized" else "fast")
    else:
        network, shape = build_network(model_name, tf)
        x = rng.normal(size=(batch, *shape)).astype("float32")
        y = rng.integers(0, 10, size=(batch,)).astype("int32")
        data = (x, y)
        if framework == "keras":
            model = network
            model.compile(optimizer=keras.optimizers.legacy.SGD(0.01),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        elif framework == "tfp_vectorized":
            from tensorflow_privacy.privacy.optimizers.dp_optimizer_keras_vectorized import \
                VectorizedDPKerasSGDOptimizer
            model = network
            model.compile(optimizer=VectorizedDPKerasSGDOptimizer(l2_norm_clip=1.0, noise_multiplier=1.0,
                                                                  num_microbatches=None, learning_rate=0.01),
                          loss=loss_none)
        elif framework == "tfp_dpsequential":
            from tensorflow_privacy.privacy.fast_gradient_clipping import layer_registry
            from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential
            model = DPSequential(l2_norm_clip=1.0, noise_multiplier=1.0,
                                 layer_registry=layer_registry.make_default_layer_registry(), layers=network.layers)
            model.build((None, *shape))
            model.compile(optimizer=keras.optimizers.legacy.SGD(0.01),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        else:
            model = Classifier(network, loss_none)
            model.compile(privacy=settings, optimizer="sgd", learning_rate=0.01)
    dataset = tf.data.Dataset.from_tensors(data).repeat()
    iterator = iter(dataset)
    train_function = model.make_train_function()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    figures = time_steps(lambda: float(next(iter(train_function(iterator).values()))), batch, baseline, resource,
                         tensor_memory)
    if framework == "tfdpgen" and "examples_per_second" in figures:
        figures.update(noise_draw(model))
    return figures


def noise_draw(model):
    """How long drawing the step's Gaussian noise takes alone (one value per trained parameter)."""
    import tensorflow as tf
    from tfdpgen.privacy.noise import standard_normal
    count = sum(v.shape.num_elements() for network in model.private_networks for v in network.trainable_variables)
    draw = tf.function(lambda seed: standard_normal(count, seed))
    seed = tf.constant([1, 2], tf.int64)
    draw(seed).numpy()
    start = time.perf_counter()
    for _ in range(20):
        values = draw(seed)
    values.numpy()
    return {"parameters": count, "noise_draw_ms": (time.perf_counter() - start) / 20 * 1e3}


def plain_vae_step(model, data, tf):
    """The DP-VAE's loss trained without DP (mean over the batch, one backward pass)."""
    x = data[0] if isinstance(data, tuple) else data
    variables = model.encoder.trainable_variables + model.decoder.trainable_variables
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.per_example_terms(x, None, True)["loss"])
    model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return {"loss": loss}


def Classifier(network, loss_fn):
    """A classifier as a tfdpgen DP model, so it goes through the same DP step as the generators."""
    from tfdpgen.models.base import DPGenerativeModel

    class DPClassifier(DPGenerativeModel):
        def __init__(self):
            super().__init__(latent_dim=1)
            self.network = network

        private_networks = property(lambda self: [self.network])
        generator_networks = property(lambda self: [self.network])

        def per_example_terms(self, x, y, training):
            return {"loss": loss_fn(y, self.run(self.network, x, training))}

    return DPClassifier()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--frameworks", nargs="+", choices=FRAMEWORKS + TORCH_FRAMEWORKS,
                        help="default: the TensorFlow ones, and PyTorch/Opacus when torch and opacus are installed")
    parser.add_argument("--quick", action="store_true", help="batch 256 only")
    parser.add_argument("--markdown", action="store_true", help="print the table of docs/benchmarks.md from the results file, run nothing")
    parser.add_argument("--one", nargs=3, metavar=("FRAMEWORK", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown:
        with open(os.path.join(HERE, "results", "dp_step_speed.json")) as f:
            print(markdown(json.load(f)["results"]))
        return
    if args.one:
        framework, model_name, batch = args.one
        print("RESULT " + json.dumps(measure(framework, model_name, int(batch))))
        return
    batches = [256] if args.quick else args.batches
    if args.frameworks is None:
        import importlib.util
        torch_installed = all(importlib.util.find_spec(name) for name in ("torch", "opacus"))
        args.frameworks = list(FRAMEWORKS) + (list(TORCH_FRAMEWORKS) if torch_installed else [])
    results = []
    # The allocator keeps the statistics step_tensors_mb reads only as the BFC allocator, which TensorFlow picks by
    # itself only where oneDNN is on (some CPUs): switch it on everywhere, baseline and DP rows alike.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CPU_ALLOCATOR_USE_BFC="true")
    for model_name in args.models:
        for batch in batches:
            for framework in args.frameworks:
                started = time.time()
                out = subprocess.run([sys.executable, __file__, "--one", framework, model_name, str(batch)],
                                     capture_output=True, text=True, env=env, timeout=1800)
                lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
                errors = [line for line in out.stderr.splitlines() if "Error" in line] or out.stderr.strip().splitlines()
                figures = json.loads(lines[-1][7:]) if lines else {"error": errors[-1:]}
                figures.update(framework=framework, model=model_name, batch=batch,
                               wall_seconds=round(time.time() - started, 1))
                results.append(figures)
                print(json.dumps(figures), flush=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "dp_step_speed.json")
    commands = []
    if os.path.exists(path):  # a partial run replaces its own cases and keeps the others
        with open(path) as f:
            previous = json.load(f)
        fresh = {(r["framework"], r["model"], r["batch"]) for r in results}
        results = [r for r in previous["results"] if (r["framework"], r["model"], r["batch"]) not in fresh] + results
        commands = previous.get("commands", [previous["command"]] if "command" in previous else [])
    table(results)
    with open(path, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                   "commands": commands + [" ".join(sys.argv)], "results": results}, f, indent=2)
    print(f"wrote {path}")


def table(results):
    frameworks = [f for f in FRAMEWORKS + TORCH_FRAMEWORKS if any(r["framework"] == f for r in results)]
    print(f"\n{'model':22} {'batch':>5} " + " ".join(f"{f:>34}" for f in frameworks))
    keyed = {(r["framework"], r["model"], r["batch"]): r for r in results}
    for model_name, batch in sorted({(r["model"], r["batch"]) for r in results}, key=lambda k: (MODELS.index(k[0]), k[1])):
        cells = []
        for framework in frameworks:
            r = keyed.get((framework, model_name, batch), {})
            rate = r.get("examples_per_second")
            plain = keyed.get((BASELINE.get(framework, framework), model_name, batch), {})
            if rate is None:
                cells.append(f"{'skipped' if 'skipped' in r else '-':>34}")
                continue
            ratio = f" ({plain['examples_per_second'] / rate:.2f}x)" if plain.get("examples_per_second") else ""
            memory = f" {r['training_memory_mb']:.0f}MB"
            if r.get("step_tensors_mb") and plain.get("step_tensors_mb"):
                memory += f" {r['step_tensors_mb'] / plain['step_tensors_mb']:.1f}xT"
            cells.append(f"{rate:>9,.0f}{ratio:>9}{memory:>16}")
        print(f"{model_name:22} {batch:>5} " + " ".join(cells))
    print("cells: examples/s (Nx = times slower than the framework's own non-private step: Keras or PyTorch), "
          "resident memory over the size before the first step, NxT = peak tensor memory of a step (TensorFlow's "
          "allocator) over plain Keras'")


NAMES = {"mlp": "MLP 784-512-512-10", "cnn": "small CNN", "dcgan_discriminator": "DCGAN discriminator",
         "dp_vae": "DP-VAE (encoder + decoder)"}
HEADERS = {"keras": "Keras", "tfp_vectorized": "TF Privacy vectorized",
           "tfp_dpsequential": "TF Privacy DPSequential + registry", "tfdpgen": "**tfdpgen (fast)**",
           "torch": "PyTorch", "opacus_hooks": "Opacus hooks", "opacus_ghost": "Opacus ghost"}


def markdown(results):
    """The table of docs/benchmarks.md: examples/s (times slower than the framework's own plain step), resident memory, and for
    Keras and tfdpgen the step's peak tensor memory (times plain Keras')."""
    keyed = {(r["framework"], r["model"], r["batch"]): r for r in results}
    frameworks = [f for f in FRAMEWORKS + TORCH_FRAMEWORKS if any(r["framework"] == f for r in results)]
    lines = ["| model | batch | " + " | ".join(HEADERS[f] for f in frameworks) + " |",
             "|---|---|" + "---|" * len(frameworks)]
    for model_name in MODELS:
        for batch in sorted({r["batch"] for r in results if r["model"] == model_name}):
            cells = []
            for framework in frameworks:
                r = keyed.get((framework, model_name, batch), {})
                plain = keyed.get((BASELINE.get(framework, framework), model_name, batch), {})
                if "examples_per_second" not in r:
                    cells.append("n/a" if "skipped" in r else "out of memory" if r.get("error") else "")
                    continue
                cell = f"{r['examples_per_second']:,.0f}"
                if framework in BASELINE and plain.get("examples_per_second"):
                    cell += f" ({plain['examples_per_second'] / r['examples_per_second']:.2f}x)"
                cell += f", {r['training_memory_mb']:,.0f} MB"
                if framework in ("keras", "tfdpgen") and r.get("step_tensors_mb"):
                    cell += f", {r['step_tensors_mb']:,.1f} MB tensors"
                    if framework == "tfdpgen" and plain.get("step_tensors_mb"):
                        cell += f" ({r['step_tensors_mb'] / plain['step_tensors_mb']:.2f}x)"
                cells.append(f"**{cell}**" if framework == "tfdpgen" else cell)
            lines.append(f"| {NAMES[model_name]} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
