"""The `tfdpgen` command."""
import argparse
import sys

DESCRIPTION = "Train differentially private generative models and export them for TensorFlow Serving."


def build_parser() -> argparse.ArgumentParser:
    from tfdpgen.data.images import DATASETS
    from tfdpgen.data.tables import TABLES
    from tfdpgen.privacy.optimizers import OPTIMIZERS
    from tfdpgen.strategies import STRATEGIES
    from tfdpgen.training import DEFAULT_EPSILON, MODELS

    parser = argparse.ArgumentParser(prog="tfdpgen", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a DP generator (default: DP-VAE on scikit-learn digits)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--model", choices=list(MODELS), default="vae",
                       help="vae, gan, cgan (label-conditioned), tabgan (tables), diffusion (DPDM), sinkhorn")
    train.add_argument("--dataset", choices=DATASETS + TABLES,
                       help="images: digits (default; ships with scikit-learn), mnist/fashion_mnist (through TFDS); "
                            "tables (tabgan): breast_cancer (default; scikit-learn), adult (--data-dir "
                            "../shared/data/adult)")
    train.add_argument("--data-dir", help="directory of local IDX files (e.g. ../shared/data/mnist; skips TFDS), or "
                                          "for tabgan a directory with one CSV file (give --schema)")
    train.add_argument("--schema", help="tabgan: JSON schema of the CSV (categories, declared bounds of numbers, "
                                        "the condition column); see tfdpgen/data/tables.py")
    train.add_argument("--epsilon", type=float,
                       help=f"target epsilon; the noise is calibrated to reach it ({DEFAULT_EPSILON} if neither this "
                            "nor --noise-multiplier is given)")
    train.add_argument("--delta", type=float, help="target delta (default: a power of ten at least 10x below 1/N)")
    train.add_argument("--noise-multiplier", type=float, help="noise std / clip norm; with --epsilon, stop at it")
    train.add_argument("--l2-norm-clip", type=float, default=1.0, help="per-example gradient clip norm C")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=64, help="expected batch size (Poisson) or batch size")
    train.add_argument("--sampling", choices=["poisson", "shuffle"], default="poisson",
                       help="poisson is what the accounting assumes; shuffle reports with a caveat")
    train.add_argument("--accountant", choices=["rdp", "pld"], default="rdp")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="dp-adam",
                       help="dp2-*: DP^2 delayed preconditioners (alternating phases of --dp2-delay DP-SGD and "
                            "preconditioned steps)")
    train.add_argument("--learning-rate", type=float,
                       help="of the privately trained networks (default per model: vae 5e-3, gan/cgan/tabgan 5e-4, "
                            "diffusion 2e-3, sinkhorn 5e-3)")
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
                       help="seed for weights, sampling and noise; keep it as secret as the data (anyone who knows "
                            "it can regenerate the noise)")
    train.add_argument("--strategy", choices=list(STRATEGIES), default="default",
                       help="tf.distribute strategy; noise is added once per global batch under every one")
    train.add_argument("--devices", type=int,
                       help="with mirrored: use this many devices (on a CPU-only machine, split the CPU into them)")
    train.add_argument("--checkpoint-every", type=int, default=100, help="DP steps between checkpoints")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import tfdpgen  # noqa: F401  (sets up Keras 2 before TensorFlow is touched)
    from tfdpgen.checkpoints import CheckpointError
    from tfdpgen.privacy.budget import PrivacyBudgetExhausted
    from tfdpgen.training import train_run

    try:
        if args.command == "train":
            train_run(model=args.model, dataset=args.dataset, data_dir=args.data_dir, epsilon=args.epsilon,
                      delta=args.delta, noise_multiplier=args.noise_multiplier, l2_norm_clip=args.l2_norm_clip,
                      epochs=args.epochs, batch_size=args.batch_size, sampling=args.sampling,
                      accountant=args.accountant, optimizer=args.optimizer, learning_rate=args.learning_rate,
                      output=args.output, seed=args.seed, strategy=args.strategy, devices=args.devices,
                      checkpoint_every=args.checkpoint_every, engine=args.engine, clipping=args.clipping,
                      target_quantile=args.target_quantile, dp2_delay=args.dp2_delay,
                      dp2_learning_rate=args.dp2_learning_rate, schema=args.schema, verbose=0 if args.quiet else 1)
    except (ValueError, CheckpointError, PrivacyBudgetExhausted) as error:  # bad input: one line, what to do
        print(f"tfdpgen: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
