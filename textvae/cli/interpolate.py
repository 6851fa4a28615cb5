"""``textvae interpolate MODEL_DIR ["sentence a" "sentence b"] --steps 8 [--method lerp|slerp]``."""

from __future__ import annotations

import argparse

from textvae.cli.args import add_decoding_arguments, add_max_length_argument, add_model_arguments, decoding_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("interpolate", help="decode the path between two sentences' latents",
                              description="Decode evenly spaced points on the path from z(a) to z(b), both "
                                          "endpoints included. Without sentences, the endpoints are two prior "
                                          "samples (--seed). Prints 't  ‖z‖  sentence' per point.")
    add_model_arguments(p)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="the two endpoint sentences (or none)")
    p.add_argument("--steps", type=int, default=8, help="points on the path, endpoints included (default: 8)")
    p.add_argument("--method", choices=["lerp", "slerp"], default="lerp",
                   help="straight line, or great circle with a linear norm (default: lerp)")
    p.add_argument("--use", choices=["mean", "sample"], default="mean",
                   help="endpoints at the posterior mean μ or a sample of q(z|x) (default: mean)")
    add_max_length_argument(p, "both")
    add_decoding_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from textvae.cli.common import load_model
    from textvae.errors import ConfigError
    from textvae.inference.decoding import decode_config
    from textvae.inference.features import report_warnings

    if len(args.texts) not in (0, 2):
        raise ConfigError(f"give two sentences to interpolate between, or none for two prior samples; "
                             f"got {len(args.texts)}.")
    if args.steps < 2:
        raise ConfigError(f"--steps must be >= 2 so that the path includes both endpoints, got {args.steps}.")
    options = decoding_options(args)
    decode_config(**options)
    model = load_model(args)
    a, b = args.texts if args.texts else (None, None)
    with report_warnings("interpolate"):
        path = model.interpolation_latents(a, b, args.steps, method=args.method, use=args.use, seed=args.seed,
                                           max_input_length=args.max_length)
        sentences = model.decode_latent(path, seed=args.seed, batch_size=args.batch_size, **options)
    print(f"{'t':>5}  {'‖z‖':>7}  sentence")  # the columns: position on the path, the latent's norm
    for i, (z, sentence) in enumerate(zip(path, sentences)):
        print(f"{i / (args.steps - 1):.3f}  {z.norm().item():7.3f}  {sentence}")
    return 0
