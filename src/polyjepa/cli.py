"""The polyjepa command line. Heavy imports happen inside the commands that need them."""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="polyjepa", description="Self-supervised JEPA pretraining, probes and embeddings.")
    sub = p.add_subparsers(dest="command", required=True)
    rc = sub.add_parser("recipes", help="list the bundled recipes: modality, data, measured headline")
    rc.add_argument("name", nargs="?", help="show one recipe in full: method, data to bring, headline and its command")

    pt = sub.add_parser("pretrain", help="pretrain a recipe, evaluate it, write a run directory")
    pt.add_argument("recipe", nargs="?", help="recipe name (see 'polyjepa recipes') or path to a .yaml recipe")
    pt.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.lr=5e-4")
    pt.add_argument("--data", help="data for the recipe's data.loader: for images 'digits', a .npz/.npy file or a "
                    "folder of images; series, tables, audio, clouds and clips take their own (docs: one page per modality)")
    pt.add_argument("--out", help="run directory (default runs/<recipe>-<time>)")
    pt.add_argument("--max-epochs", type=int)
    pt.add_argument("--max-minutes", type=float, help="time budget; the LR schedule is fitted to it")
    pt.add_argument("--seed", type=int, default=None, help="random seed of a new run (default 0)")
    pt.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    pt.add_argument("--no-progress", action="store_true", help="no progress bar")

    pr = sub.add_parser("probe", help="probe a run's encoder against the raw input and a random-init encoder")
    pr.add_argument("run_dir")
    pr.add_argument("--data", help="labelled data to probe on (default: the run's own split)")

    se = sub.add_parser("select", help="rank runs (or their checkpoints) by RankMe; Spearman agreement with probes")
    se.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    se.add_argument("--checkpoints", action="store_true",
                    help="rank every kept checkpoint (RankMe and a kNN probe on the run's test split)")
    se.add_argument("--data", help="data for --checkpoints (default: each run's own)")
    se.add_argument("--json", metavar="FILE", help="also write the ranking as JSON")

    th = sub.add_parser("theory", help="overlay the stepwise theory's step times on a joint-embedding run's spectrum")
    th.add_argument("run_dir")
    th.add_argument("--data", help="data to build the views' contrastive operator from (default: the run's own)")
    th.add_argument("--top", type=int, default=8, help="number of leading eigenvalues (default 8)")
    th.add_argument("--pairs", type=int, default=2000, help="training samples used for the operator (default 2000)")

    em = sub.add_parser("embed", help="write embeddings of data as a .npy file")
    em.add_argument("run_dir")
    em.add_argument("--data", required=True)
    em.add_argument("--out", required=True, help="output .npy file")
    em.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                    help="read the data lazily, a batch at a time, writing the embeddings into --out through a "
                    "memory map (default: as the run was trained, data.stream); --no-stream reads them into memory")
    em.add_argument("--batch-size", type=int, default=256, help="samples embedded at a time (default 256)")

    ex = sub.add_parser("export", help="write a run's encoder as an ONNX graph or a torch.export program")
    ex.add_argument("run_dir", help="a run directory, or a folder written by save_pretrained")
    ex.add_argument("--format", default="onnx", help="onnx (default), torch (torch.export.save, .pt2), or "
                    "pretrained (a save_pretrained folder: config.json + model.safetensors)")
    ex.add_argument("--out", required=True, help="the file to write (e.g. encoder.onnx; its config goes beside it "
                    "as .json), or the folder for --format pretrained")
    co = sub.add_parser("codec", help="audio tokens with a trained codec run (recipe codec-fsdd): WAV -> tokens -> WAV")
    cs = co.add_subparsers(dest="codec_command", required=True)
    ce = cs.add_parser("encode", help="encode a WAV/FLAC file to tokens (.npz)")
    ce.add_argument("run_dir", help="a codec run directory (polyjepa pretrain codec-fsdd ...)")
    ce.add_argument("audio", help="a .wav/.flac file; other sample rates are resampled, channels averaged")
    ce.add_argument("--out", required=True, help="the tokens file to write (.npz)")
    cd = cs.add_parser("decode", help="decode tokens (.npz) to a 16-bit WAV at the codec's sample rate")
    cd.add_argument("run_dir", help="the codec run directory that encoded the tokens")
    cd.add_argument("tokens", help="a tokens .npz written by 'polyjepa codec encode'")
    cd.add_argument("--out", required=True, help="the .wav file to write")
    cd.add_argument("--iters", type=int, default=64, help="Griffin-Lim iterations (default 64)")
    return p


def format_recipes(name: str | None = None) -> str:
    """The ``polyjepa recipes`` listing: one line per recipe, or every field of one recipe."""
    from .config import recipe_cards
    from .errors import UserError

    cards = recipe_cards()
    if name is not None:
        match = [c for c in cards if c["name"] == name]
        if not match:
            raise UserError(f"unknown recipe {name!r}: choose one of {', '.join(c['name'] for c in cards)}")
        c = match[0]
        needs = f"; needs pip install 'polyjepa[{c['extra']}]'" if c["extra"] else ""
        data = f"bundled (runs without --data{needs})" if c["bundled"] else f"bring it: --data with {c['bring']}"
        rows = [("recipe", c["name"]), ("description", c["description"]), ("modality", c["modality"]),
                ("method", c["method"]), ("data", data), ("measured on", c["data"]), ("headline", c["headline"]),
                ("command", c["command"]), ("time", c["minutes"]), ("error", c["error"])]
        return "\n".join(f"{k + ':':<13}{v}" for k, v in rows if v)
    lines = [f"{'RECIPE':<21} {'MODALITY':<26} {'DATA':<9} HEADLINE (measured; 'polyjepa recipes NAME' for the rest)"]
    for c in cards:
        data = "bundled" if c["bundled"] else "--data"
        lines.append(f"{c['name']:<21} {c['modality'][:26]:<26} {data:<9} {c['error'] or c['headline'] or '-'}")
    lines.append("DATA: 'bundled' runs as is; '--data' needs your data ('polyjepa recipes NAME' says what and where "
                 "to get it).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may come after options
        if args.command != "pretrain" or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    from .errors import UserError, one_line_warnings

    one_line_warnings()
    try:
        if args.command == "recipes":
            print(format_recipes(args.name))
        elif args.command == "pretrain":
            from .runner import pretrain

            recipe, overrides = args.recipe, list(args.overrides)
            if recipe is not None and "=" in recipe:  # only overrides were given (with --resume)
                recipe, overrides = None, [recipe] + overrides
            pretrain(recipe, data=args.data, out=args.out, max_epochs=args.max_epochs, max_minutes=args.max_minutes,
                     seed=args.seed, overrides=overrides, resume=args.resume, progress=not args.no_progress)
        elif args.command == "probe":
            from .runner import probe_run

            probe_run(args.run_dir, args.data)
        elif args.command == "select":
            import json

            from .diagnostics.selection import format_selection, select_runs

            result = select_runs(args.run_dirs, checkpoints=args.checkpoints, data=args.data)
            print(format_selection(result))
            if args.json:
                from pathlib import Path

                # strict JSON: an unavailable Spearman (nan) is null
                spearman = result["spearman"]
                result = {**result, "spearman": None if spearman != spearman else spearman}
                try:
                    Path(args.json).write_text(json.dumps(result, indent=1))
                except OSError as e:
                    raise UserError(f"cannot write --json {args.json} ({e.strerror or e}): choose a writable path") from None
        elif args.command == "theory":
            from .theory.overlay import format_overlay, theory_overlay

            print(format_overlay(theory_overlay(args.run_dir, data=args.data, top=args.top, pairs=args.pairs)))
        elif args.command == "embed":
            from .runner import embed_run

            emb = embed_run(args.run_dir, args.data, args.out, stream=args.stream, batch_size=args.batch_size)
            print(f"wrote {emb.shape[0]} embeddings of width {emb.shape[1]} to {args.out}")
        elif args.command == "export":
            from .export.graph import export_encoder

            r = export_encoder(args.run_dir, args.out, format=args.format)
            check = ("" if r["max_abs_diff"] is None else
                     f"; on an example batch it matches torch to {r['max_abs_diff']:.1e} (relative to the scale)")
            if r["format"] == "pretrained":
                print(f"wrote {r['path']}/ (config.json, model.safetensors, README.md): load it with "
                      f"polyjepa.from_pretrained({r['path']!r})")
            else:
                print(f"wrote {r['path']} ({r['format']}) and its config {r['config']}{check}")
        elif args.command == "codec":
            from .audio.codec_run import decode_tokens, encode_wav

            if args.codec_command == "encode":
                r = encode_wav(args.run_dir, args.audio, args.out)
                resampled = f", resampled from {r['original_rate']} Hz" if r["original_rate"] != r["sample_rate"] else ""
                print(f"wrote {r['tokens']} tokens ({r['bits'] / max(r['seconds'], 1e-9):.0f} bits/s) of "
                      f"{r['seconds']:.2f} s at {r['sample_rate']} Hz{resampled} to {args.out}")
            else:
                if args.iters < 1:
                    raise UserError(f"--iters must be at least 1, got {args.iters}")
                r = decode_tokens(args.run_dir, args.tokens, args.out, iters=args.iters)
                print(f"wrote {r['seconds']:.2f} s of audio ({r['samples']} samples at {r['sample_rate']} Hz) to {args.out}")
    except UserError as e:
        # one line, also where the message quotes a library's multi-line error (imageio, libsndfile, ...)
        print(f"polyjepa: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("polyjepa: interrupted; a pretrain run continues from its last checkpoint with --resume RUN_DIR",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
