"""Convergence of DP-SGD, DP-Adam and DP^2-RMSProp, with fixed and adaptive clipping, at the same epsilon.

    .venv/bin/python benchmarks/dp2_convergence.py [--quick] [--data-dir ../shared/data/mnist]

On the MNIST private split of ../shared/data (images 0..7999 train, 8000..9999 held out; see its README): a small CNN
classifier and the DP-VAE, each trained at epsilon 3 and 8 (delta 1e-5, Poisson sampling, RDP) with the same batch
size, epochs and initial clip norm. Records the loss of every step (the batch mean over the step's Poisson batch),
the steps each configuration needs to reach the loss DP-SGD with fixed clipping ends at (smoothed over 20 steps),
and the held-out accuracy (classifier) or held-out negative ELBO (VAE). Learning rates are fixed per optimizer, not
tuned on the private data. Writes benchmarks/results/dp2_convergence.json and dp2_convergence.png.
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tfdpgen  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from tfdpgen.data.images import read_idx_dir  # noqa: E402
from tfdpgen.data.sampling import private_batches  # noqa: E402
from tfdpgen.models.base import DPGenerativeModel  # noqa: E402

# (name, optimizer, clipping, learning rate, DP^2 adaptive-phase learning rate)
CONFIGS = (("DP-SGD", "dp-sgd", "fixed", 2.0, None),
           ("DP-SGD adaptive clip", "dp-sgd", "adaptive", 2.0, None),
           ("DP-Adam", "dp-adam", "fixed", 2e-3, None),
           ("DP-Adam adaptive clip", "dp-adam", "adaptive", 2e-3, None),
           ("DP^2-RMSProp", "dp2-rmsprop", "fixed", 2.0, 0.5))
SMOOTHING = 20


class DPClassifier(DPGenerativeModel):
    """A small CNN classifier trained with the same DP step as the generators (benchmark only)."""

    metric_names = ("loss", "accuracy")

    def __init__(self, image_shape=(28, 28, 1), **kwargs):
        super().__init__(latent_dim=1, **kwargs)
        L = keras.layers
        self.net = keras.Sequential([L.InputLayer(input_shape=image_shape),
                                        L.Conv2D(16, 5, strides=2, padding="same", activation="tanh"),
                                        L.Conv2D(32, 3, strides=2, padding="same", activation="tanh"),
                                        L.Flatten(), L.Dense(32, activation="tanh"), L.Dense(10)])

    private_networks = property(lambda self: [self.net])
    generator_networks = property(lambda self: [self.net])

    def per_example_terms(self, x, y, training):
        logits = self.run(self.net, x, training)
        labels = tf.cast(y, tf.int32)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return {"loss": loss, "accuracy": correct}


def build(model_name):
    return DPClassifier() if model_name == "classifier" else tfdpgen.DPVAE(image_shape=(28, 28, 1), latent_dim=16)


def train(model_name, config, epsilon, data, args, seed=0):
    name, optimizer, clipping, lr, lr2 = config
    (x, y), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build(model_name)
    settings = tfdpgen.PrivacySettings(dataset_size=len(x), batch_size=args.batch_size, epochs=args.epochs,
                                       target_epsilon=epsilon, delta=1e-5, clipping=clipping)
    delay = settings.steps_per_epoch * args.dp2_delay_epochs
    model.compile(privacy=settings, optimizer=optimizer, learning_rate=lr, dp2_delay=delay, dp2_learning_rate=lr2,
                  noise_key=seed + 1)
    losses, clips = [], []
    tracker = model.trackers["loss"]
    last = {"total": 0.0, "count": 0.0}

    def record(batch, logs):
        total, count = float(tracker.total.numpy()), float(tracker.count.numpy())
        if count < last["count"]:  # reset at an epoch start
            last.update(total=0.0, count=0.0)
        losses.append((total - last["total"]) / max(count - last["count"], 1.0))
        last.update(total=total, count=count)
        clips.append(float(model.clip_norm.numpy()))

    start = time.time()
    model.fit(private_batches(x, y, model.privacy, seed=seed + 2), epochs=args.epochs,
              steps_per_epoch=model.privacy.steps_per_epoch, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=record)])
    seconds = time.time() - start
    held_out = model.evaluate(x_test, y_test, batch_size=500, verbose=0, return_dict=True)
    report = model.privacy_report()
    result = {"model": model_name, "config": name, "optimizer": optimizer, "clipping": clipping,
              "learning_rate": lr, "dp2_learning_rate": lr2, "dp2_delay": delay if optimizer.startswith("dp2") else None,
              "target_epsilon": epsilon, "epsilon": report["epsilon"], "noise_multiplier": report["noise_multiplier"],
              "effective_noise_multiplier": report["effective_noise_multiplier"], "steps": report["steps"],
              "losses": losses, "final_clip": clips[-1], "seconds": seconds,
              "held_out_loss": held_out["loss"]}
    if model_name == "classifier":
        result["held_out_accuracy"] = held_out["accuracy"]
    print(f"{model_name:10s} eps={epsilon:<4} {name:22s} held-out loss {held_out['loss']:.4f}"
          + (f" accuracy {held_out['accuracy']:.4f}" if model_name == "classifier" else "")
          + f"  ({report['steps']} steps, {seconds:.0f} s, epsilon {report['epsilon']:.3f})", flush=True)
    return result


def smoothed(losses):
    losses = np.asarray(losses)
    kernel = np.ones(SMOOTHING) / SMOOTHING
    return np.convolve(losses, kernel, mode="valid") if len(losses) >= SMOOTHING else losses


def steps_to_reach(losses, target):
    below = np.nonzero(smoothed(losses) <= target)[0]
    return int(below[0] + SMOOTHING) if len(below) else None


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(r["model"], r["target_epsilon"]) for r in results})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (model_name, epsilon) in zip(axes[0], panels):
        tops, bottoms = [], []
        for r in results:
            if (r["model"], r["target_epsilon"]) == (model_name, epsilon):
                curve = smoothed(r["losses"])
                diverged = not np.isfinite(curve[-1]) or curve[-1] > curve[0]
                if not diverged:
                    tops.append(curve[0])
                    bottoms.append(np.min(curve))
                ax.plot(np.arange(len(curve)) + SMOOTHING, curve,
                        label=r["config"] + (" (diverged)" if diverged else ""))
        if tops:  # keep the converging curves readable when a run diverges
            ax.set_ylim(0.9 * min(bottoms), 1.1 * max(tops))
        ax.legend(fontsize=6)
        ax.set_title(f"{model_name}, epsilon={epsilon}")
        ax.set_xlabel("DP step")
        ax.set_ylabel(f"training loss ({SMOOTHING}-step mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.path.join(HERE, "..", "..", "shared", "data", "mnist"))
    parser.add_argument("--quick", action="store_true", help="2 epochs, classifier at epsilon 3 only")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dp2-delay-epochs", type=int, default=1, help="DP^2 phase length, in epochs")
    parser.add_argument("--models", nargs="+", default=["classifier", "vae"])
    parser.add_argument("--epsilons", nargs="+", type=float, default=[3.0, 8.0])
    parser.add_argument("--output", default=os.path.join(HERE, "results", "dp2_convergence.json"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the JSON of an earlier run")
    args = parser.parse_args()
    if args.plot_only:
        with open(args.output) as f:
            plot(json.load(f)["runs"], os.path.splitext(args.output)[0] + ".png")
        return
    if args.quick:
        args.epochs, args.models, args.epsilons = 2, ["classifier"], [3.0]
    if not os.path.isdir(args.data_dir):
        sys.exit(f"no MNIST IDX files at {args.data_dir}: give --data-dir (the ../shared/data/mnist of the repo).")
    images, labels = read_idx_dir(args.data_dir)
    images = images.astype("float32")  # [0, 1], 28x28x1
    data = (images[:8000], labels[:8000].astype("int32")), (images[8000:], labels[8000:].astype("int32"))

    results = []
    start = time.time()
    for model_name in args.models:
        for epsilon in args.epsilons:
            runs = [train(model_name, config, epsilon, data, args) for config in CONFIGS]
            target = float(np.mean(runs[0]["losses"][-SMOOTHING:]))  # where DP-SGD with fixed clipping ends
            for run in runs:
                run["target_loss"] = target
                run["steps_to_target"] = steps_to_reach(run["losses"], target)
            results += runs
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    summary = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "tensorflow": tf.__version__, "tfdpgen": tfdpgen.__version__},
               "command": " ".join(["benchmarks/dp2_convergence.py"] + sys.argv[1:]),
               "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "delta": 1e-5,
                            "dp2_delay_epochs": args.dp2_delay_epochs, "smoothing_steps": SMOOTHING,
                            "train_images": 8000, "held_out_images": 2000},
               "wall_seconds": time.time() - start, "runs": results}
    with open(args.output, "w") as f:
        json.dump(summary, f, indent=1)
    plot(results, os.path.splitext(args.output)[0] + ".png")

    print(f"\n| model | epsilon | configuration | steps to DP-SGD's final loss | held-out |")
    print("|---|---|---|---|---|")
    for r in results:
        held = (f"accuracy {r['held_out_accuracy']:.3f}" if r["model"] == "classifier" else
                f"-ELBO {r['held_out_loss']:.2f}")
        print(f"| {r['model']} | {r['target_epsilon']:g} | {r['config']} | {r['steps_to_target']} of {r['steps']} | "
              f"{held} |")
    print(f"\nwrote {args.output} and the plot beside it ({summary['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
