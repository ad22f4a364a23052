"""The `tfdpgen` command."""
import argparse
import logging
import os
import sys

DESCRIPTION = "Train differentially private generative models and export them for TensorFlow Serving."


def holdout_value(text: str):
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a fraction like 0.2 or a count like 2000, got {text!r}") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, and an option's value named once ("-n, --num-samples N"), as Python 3.13 prints it on
    every Python, so the help (and docs/cli.md) reads the same everywhere."""

    def _format_action_invocation(self, action):
        if not action.option_strings or action.nargs == 0:
            return super()._format_action_invocation(action)
        return ", ".join(action.option_strings) + " " + self._format_args(
            action, self._get_default_metavar_for_optional(action))


    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)  # no "(default: None)"


class OneLineParser(argparse.ArgumentParser):
    """A usage error is one line (what is wrong, and where the help is) with exit code 2, not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from tfdpgen.data.images import DATASETS
    from tfdpgen.data.tables import TABLES
    from tfdpgen.models.diffusion import PRETRAIN_EPOCHS
    from tfdpgen.models.registry import DEFAULTS, FAMILIES, IMAGES, TABLE
    from tfdpgen.privacy.optimizers import OPTIMIZERS
    from tfdpgen.runs.config import DEFAULT_EPSILON
    from tfdpgen.runs.strategies import STRATEGIES

    def per_model(setting):
        """'default per model: vae 256, others 64' for a setting of the families' recipes (models.registry)."""
        given = ", ".join(f"{name} {family.recipe[setting]:g}" for name, family in FAMILIES.items()
                          if setting in family.recipe)
        others = f", others {DEFAULTS[setting]:g}" if setting in DEFAULTS else ""
        on_28x28 = ", ".join(f"{name} {family.recipe_28x28[setting]:g}" for name, family in FAMILIES.items()
                             if setting in family.recipe_28x28)
        return f"default per model: {given}{others}" + (f" (28x28 images: {on_28x28})" if on_28x28 else "")

    def kinds(data):
        return ", ".join(f"{name} ({family.summary})" for name, family in FAMILIES.items() if family.data == data)

    parser = OneLineParser(prog="tfdpgen", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a DP generator (default: DP-VAE on scikit-learn digits)",
                                formatter_class=HelpFormatter)
    train.add_argument("--model", choices=list(FAMILIES), default="vae",
                       help=f"images: {kinds(IMAGES)}; tables: {kinds(TABLE)}")
    train.add_argument("--dataset", choices=DATASETS + TABLES,
                       help="images: digits (default; ships with scikit-learn), mnist/fashion_mnist (through TFDS); "
                            "tables (tabgan, marginal): breast_cancer (default; scikit-learn), adult (--data-dir "
                            "../shared/data/adult)")
    train.add_argument("--data-dir", help="directory of local IDX files (e.g. ../shared/data/mnist; skips TFDS), or "
                                          "for tables a CSV file or a directory with one (give --schema)")
    train.add_argument("--schema", help="tables: JSON schema of the CSV (categories, declared bounds of numbers, "
                                        "which columns may be missing, the condition column); see "
                                        "tfdpgen/data/tables.py")
    train.add_argument("--num-classes", type=int,
                       help="images: how many classes the data set declares (labels 0..N-1; default 10, as every "
                            "bundled set); never read from the labels, which are private")
    train.add_argument("--epsilon", type=float,
                       help=f"target epsilon; the noise is calibrated to reach it ({DEFAULT_EPSILON} if neither this "
                            "nor --noise-multiplier is given)")
    train.add_argument("--delta", type=float, help="target delta (default: a power of ten at least 10x below 1/N)")
    train.add_argument("--noise-multiplier", type=float, help="noise std / clip norm; with --epsilon, stop at it")
    train.add_argument("--l2-norm-clip", type=float, help=f"per-example gradient clip norm C; {per_model('l2_norm_clip')}")
    train.add_argument("--epochs", type=int, help=per_model("epochs"))
    train.add_argument("--batch-size", type=int,
                       help=f"expected batch size (Poisson) or batch size; {per_model('batch_size')}")
    train.add_argument("--sampling", choices=["poisson", "shuffle"], default="poisson",
                       help="poisson is what the accounting assumes; shuffle reports with a caveat")
    train.add_argument("--accountant", choices=["rdp", "pld"],
                       help="what composes the run's mechanisms into its epsilon: rdp (Renyi DP) or pld (privacy loss "
                            "distributions, tighter); default rdp" + "".join(
                                f", {f.accountant} for {f.name}" for f in FAMILIES.values() if f.accountant != "rdp"))
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="dp-adam",
                       help="dp2-*: DP^2 delayed preconditioners (alternating phases of --dp2-delay DP-SGD and "
                            "preconditioned steps)")
    train.add_argument("--learning-rate", type=float,
                       help=f"of the privately trained networks; {per_model('learning_rate')}")
    train.add_argument("--clipping", choices=["fixed", "adaptive"], default="fixed",
                       help="adaptive: the clip norm follows --target-quantile of the per-example gradient norms, "
                            "starting at --l2-norm-clip (part of the budget goes to a noised count)")
    train.add_argument("--target-quantile", type=float, default=0.5, help="with --clipping adaptive")
    train.add_argument("--dp2-delay", type=int, default=100, help="DP^2: steps per phase")
    train.add_argument("--dp2-learning-rate", type=float,
                       help="DP^2: learning rate of the preconditioned phases (default: --learning-rate)")
    train.add_argument("--engine", choices=["fast", "vectorized"], default="fast",
                       help="per-example clipping: fast (per-layer norms) or TF Privacy's vectorized optimizer")
    train.add_argument("--output", help="run directory (default: runs/<model>-<dataset>-<time>); an unfinished run "
                                        "there is resumed from its last checkpoint")
    train.add_argument("--seed", type=int,
                       help="seed for the initial weights and the model's own randomness (reproducible weights); the "
                            "DP noise and the batch sampling still come from OS entropy")
    train.add_argument("--insecure-noise-seed", type=int, metavar="SEED",
                       help="FOR TESTS AND DEBUGGING ONLY: derive the DP noise and the batch sampling from SEED, so "
                            "that a run can be repeated exactly. Anyone who knows SEED can regenerate the noise: the "
                            "guarantee then holds only while SEED stays secret (privacy.json says so). SEED is never "
                            "written to the run")
    train.add_argument("--strategy", choices=list(STRATEGIES), default="default",
                       help="tf.distribute strategy; noise is added once per global batch under every one")
    train.add_argument("--devices", type=int,
                       help="with mirrored: use this many devices (on a CPU-only machine, split the CPU into them)")
    train.add_argument("--holdout", type=holdout_value, default=0.2,
                       help="the last records held out of training, for tfdpgen evaluate: a fraction (0.2) or a "
                            "count (2000); 0 trains on everything")
    train.add_argument("--holdout-order", choices=["random", "tail"], default="random",
                       help="random: a random subset (fixed public seed; what membership-inference audits assume); "
                            "tail: the last records of the file (e.g. ../shared/data's fixed splits)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="DP steps between checkpoints")
    train.add_argument("--discriminator-steps", type=int,
                       help="gan, cgan, tabgan: DP discriminator steps per generator step (the DP-GAN recipe; the "
                            "generator's steps cost no privacy); default: the family's recipe")
    train.add_argument("--pretrain", choices=DATASETS,
                       help="diffusion: first fit the denoiser to this PUBLIC image set without DP (no private "
                            "record, no privacy spent; e.g. digits for mnist), then train with DP from there")
    train.add_argument("--pretrain-epochs", type=int,
                       help=f"with --pretrain: epochs over the public images (default {PRETRAIN_EPOCHS})")
    for name, family in FAMILIES.items():  # each family's own settings
        for option in family.options:
            train.add_argument(f"--{option.name.replace('_', '-')}", type=option.kind,
                               help=f"{name}: {option.help} (default {option.default:g})")
    train.add_argument("--quiet", action="store_true",
                       help="no progress bar, and no closing train-on-synthetic accuracy on the held-out records")

    export = commands.add_parser("export", help="export a finished run for TensorFlow Serving as BASE/NAME/<version>",
                                 formatter_class=HelpFormatter)
    export.add_argument("--run", required=True, help="a finished run directory")
    export.add_argument("--model-name", required=True, help="the model's name on the server")
    export.add_argument("--base-path", required=True, help="TF Serving's model base path; the version is the next "
                                                           "integer, existing versions are never touched")
    export.add_argument("--max-samples", type=int, default=10_000, help="largest request the model answers")

    sample = commands.add_parser("sample", help="draw samples from a run's SavedModel or from a server",
                                 formatter_class=HelpFormatter)
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="sample locally from this finished run's SavedModel")
    source.add_argument("--server", help="HOST:PORT of TensorFlow Serving (gRPC port, or REST port with --rest)")
    sample.add_argument("--model-name", help="with --server: the served model's name")
    sample.add_argument("--rest", action="store_true", help="with --server: use the REST API instead of gRPC")
    sample.add_argument("-n", "--num-samples", type=int,
                        help="how many samples (default 16); with one --labels value, that many of its class")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--labels", type=int, nargs="+", help="conditional models: one label per sample, or "
                                                                     "one label and -n")
    sample.add_argument("--out", help="write the samples: .npy, .csv or .png (default: print a summary)")

    evaluate = commands.add_parser("evaluate", help="utility, fidelity and privacy audits of a finished run "
                                                    "(writes evaluation.json and pictures into the run)",
                                   formatter_class=HelpFormatter)
    evaluate.add_argument("--run", required=True)
    evaluate.add_argument("--real-test", help="real test data instead of the run's held-out records: an image data "
                                              "set name or IDX folder; for tables a CSV file or a folder with one")
    evaluate.add_argument("--n-samples", type=int, help="synthetic samples to draw (default: about the held-out size)")

    serve = commands.add_parser("serve", help="a local stand-in for TensorFlow Serving (gRPC and REST), for "
                                              "development where TF Serving is not installed",
                                formatter_class=HelpFormatter)
    serve.add_argument("--path", required=True, help="BASE/NAME (serves its newest version) or one export dir")
    serve.add_argument("--model-name", required=True)
    serve.add_argument("--port", type=int, default=8500)
    serve.add_argument("--rest-port", type=int, default=8501)
    return parser


def sample_request(num_samples, labels):
    """(num_samples, labels) for the sampler from -n and --labels: one label with -n N asks for N samples of its
    class; several labels give one sample each, and -n may only repeat their count."""
    if num_samples is not None and num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {num_samples}.")
    if labels is None:
        return num_samples or 16, None
    if num_samples is not None and len(labels) == 1:
        return None, labels * num_samples
    if num_samples is not None and num_samples != len(labels):
        raise ValueError(f"-n {num_samples} and {len(labels)} --labels disagree: give one label with -n N for N "
                         "samples of its class, or one label per sample without -n.")
    return None, labels


def run_sample(args) -> None:
    from tfdpgen.runs.use import run_export_dir
    from tfdpgen.serving.samples import check_out_path, draw_samples, write_samples
    if args.server and not args.model_name:
        raise ValueError("--server needs --model-name.")
    num_samples, labels = sample_request(args.num_samples, args.labels)
    if args.out is not None:
        check_out_path(args.out)
    samples = draw_samples(export_dir=None if args.server else run_export_dir(args.run), server=args.server,
                           model_name=args.model_name, rest=args.rest,
                           num_samples=num_samples, seed=args.seed, labels=labels)
    print(write_samples(samples, args.out))


def run_serve(args) -> None:
    from tfdpgen.serving.local_server import LocalServer
    server = LocalServer(args.model_name, args.path, args.port, args.rest_port).start()
    print(f"serving {args.model_name} version {server.model.version} from {server.model.export_dir}: gRPC "
          f"127.0.0.1:{server.port}, REST http://127.0.0.1:{server.rest_port}/v1/models/{args.model_name} "
          "(Ctrl-C stops)")
    try:
        server.grpc_server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop()


# PrivacySettings (a Python API) names its fields; on the command line, say the flag instead.
SETTINGS_FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "target_epsilon": "--epsilon",
                  "delta": "--delta", "noise_multiplier": "--noise-multiplier", "l2_norm_clip": "--l2-norm-clip",
                  "target_quantile": "--target-quantile", "sampling": "--sampling", "accountant": "--accountant",
                  "clipping": "--clipping"}


def flag_names(message: str) -> str:
    field = message.split(" ", 1)[0]
    return SETTINGS_FLAGS[field] + message[len(field):] if field in SETTINGS_FLAGS else message


def warn_if_reproducible_noise(run_dir: str) -> None:
    """Repeat privacy.json's warning of a run trained with --insecure-noise-seed wherever its results are used."""
    from tfdpgen.runs.use import reproducible_noise_warning
    warning = reproducible_noise_warning(run_dir)
    if warning:
        print(f"tfdpgen: warning: {warning}", file=sys.stderr)


TRAIN_SETTINGS = ("dataset", "data_dir", "num_classes", "epsilon", "delta", "noise_multiplier", "l2_norm_clip",
                  "epochs", "batch_size", "sampling", "accountant", "optimizer", "learning_rate", "output", "seed",
                  "strategy", "devices", "checkpoint_every", "engine", "clipping", "target_quantile", "dp2_delay",
                  "dp2_learning_rate", "schema", "holdout", "holdout_order", "insecure_noise_seed",
                  "discriminator_steps", "pretrain", "pretrain_epochs")


def train_settings(args) -> dict:
    """train_run's settings from the parsed flags: the family options only where given (each belongs to one family)."""
    from tfdpgen.models.registry import FAMILIES
    settings = {name: getattr(args, name) for name in TRAIN_SETTINGS}
    for family in FAMILIES.values():
        for option in family.options:
            if getattr(args, option.name) is not None:
                settings[option.name] = getattr(args, option.name)
    return settings


def start_tensorflow_quietly() -> None:
    """Start TensorFlow without its C++ logs (the probing for CUDA and CPU features at import, then "failed call to
    cuInit" where there is no GPU) and with TensorFlow's and absl's Python loggers at ERROR: a command prints its own
    lines and Keras' progress bars (dp-accounting's "failed to converge ... excluding this order" lines are dropped
    wherever tfdpgen runs: privacy/ledger.py). A user who set TF_CPP_MIN_LOG_LEVEL, or imported TensorFlow already
    (calling `main` from Python), keeps what they chose."""
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # The CUDA probing at import logs through absl before absl is initialised, which no log level reaches: the
    # process's stderr is closed for the import alone (an import error still shows: it is raised after).
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    tensorflow.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)


def main(argv=None) -> int:
    start_tensorflow_quietly()
    args = build_parser().parse_args(argv)
    from tfdpgen._compat import TFPrivacyMissing
    from tfdpgen.privacy.budget import PrivacyBudgetExhausted
    from tfdpgen.runs import evaluate_run, export_run, train_run
    from tfdpgen.runs.checkpoints import CheckpointError
    from tfdpgen.serving.client import ServingError

    try:
        if args.command == "export":
            print(export_run(args.run, args.model_name, args.base_path, args.max_samples))
            warn_if_reproducible_noise(args.run)
        elif args.command == "sample":
            run_sample(args)
        elif args.command == "evaluate":
            evaluate_run(args.run, args.n_samples, args.real_test)
            warn_if_reproducible_noise(args.run)
        elif args.command == "serve":
            run_serve(args)
        elif args.command == "train":
            train_run(model=args.model, verbose=0 if args.quiet else 1, **train_settings(args))
    except (ValueError, CheckpointError, PrivacyBudgetExhausted, ServingError, TFPrivacyMissing, OSError) as error:
        print(f"tfdpgen: error: {flag_names(str(error))}", file=sys.stderr)  # bad input: one line, what to do
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
