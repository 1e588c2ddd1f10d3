"""The ``ibinn`` command line.

Examples::

    ibinn train --dataset fashion-mnist --gamma 1 --preset small --epochs 5 --out runs/fm-g1
    ibinn train --resume --out runs/fm-g1          # continue an interrupted run
    ibinn evaluate runs/fm-g1 --data demo:fashion-mnist   # Table 1 metrics
    ibinn sweep --dataset fashion-mnist --gammas 0,0.1,1,10,inf --out runs/sweep-fm
    ibinn train --dataset cifar10 --preset small --arch fc_width=128 --out runs/c10   # preset, changed
    ibinn zoo                                      # the pretrained models and their metrics
    ibinn zoo --dataset cifar10 --plot fig6.png    # their metric-vs-γ curves (Fig. 6)
    ibinn info runs/fm-g1                          # config and test metrics of a model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import train as T
from . import zoo
from .baselines import MODEL_TYPES
from .data import AUGMENTATIONS, load_dataset
from .device import Distributed
from .evaluate import dataset_note, evaluate, markdown_table, write_report
from .losses import MODES
from .model import PRESETS, ModelConfig


def _gamma(text: str) -> float:
    value = float(text)  # accepts "inf"
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"gamma must be >= 0 or inf, got {text}")
    return value


def _add_settings(p: argparse.ArgumentParser, flag: str, keys: tuple[str, ...], what: str) -> None:
    """A repeatable ``flag KEY=VALUE`` (``levels=[2,6,6]``, ``optimizer=sgd``: JSON or a word)."""
    def parse(text: str) -> tuple[str, object]:
        key, sep, raw = text.partition("=")
        if not sep or key not in keys:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, KEY one of {', '.join(keys)}: {text!r}")
        try:
            return key, json.loads(raw)
        except json.JSONDecodeError:
            return key, raw
    p.add_argument(flag, type=parse, action="append", default=[], metavar="KEY=VALUE",
                   help=f"change one {what} (repeatable): " + ", ".join(keys))


ARCH_FLAG = ("--arch", ModelConfig.ARCHITECTURE, "architecture field of the preset")  #: for _add_settings


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train an IB-INN or a baseline",
                       description="Train an IB-INN (or a standard generative classifier), or one "
                                   "of the paper's discriminative baselines under the same harness.")
    d = T.TrainConfig()
    p.add_argument("--model", choices=list(MODEL_TYPES), default=d.model,
                   help="ibinn, or a baseline: resnet (feed-forward), irevnet (the IB-INN's "
                        "invertible network as a softmax classifier), vib (variational information "
                        "bottleneck at --gamma) (default %(default)s)")
    p.add_argument("--dataset", default=d.dataset,
                   help="fashion-mnist, mnist, cifar10, cifar100, svhn, imagefolder:<dir>, "
                        "demo:<family> (default %(default)s)")
    p.add_argument("--root", help="folder of the torchvision data sets (default $IBINN_DATA)")
    p.add_argument("--download", action="store_true", help="download the data set if missing")
    p.add_argument("--mode", choices=MODES, default=d.mode,
                   help="ib: the IB loss at --gamma; lx-only / ly-only: γ = 0 / ∞; class-nll(-reg):"
                        " standard generative classifier (default %(default)s)")
    p.add_argument("--gamma", type=_gamma, default=d.gamma,
                   help="IB trade-off γ, 0..inf (the VIB: its β = 1/(γ·dim X))")
    p.add_argument("--preset", choices=list(PRESETS), default=d.preset)
    _add_settings(p, *ARCH_FLAG)
    _add_recipe_options(p, d)
    _add_run_options(p, d)


def _add_recipe_options(p: argparse.ArgumentParser, d: T.TrainConfig) -> None:
    """How ``ibinn train``'s model learns: length, optimiser, schedule, regularisation, data, seed."""
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer)
    p.add_argument("--lr", type=float, help="learning rate (default 2e-3 Adam, 0.07 SGD)")
    p.add_argument("--schedule", choices=T.SCHEDULES, default=d.schedule,
                   help="learning-rate schedule: linear warm-up, then linear or cosine decay to "
                        "zero; one-cycle; or step, the paper's 10x decays (default %(default)s)")
    p.add_argument("--warmup", type=float, default=d.warmup,
                   help="share of the steps with a linear warm-up (default %(default)s)")
    p.add_argument("--ema", type=float, default=d.ema,
                   help="half-life of the exponential moving average of the weights that the run "
                        "evaluates and saves, as a share of its steps; 0: none (default %(default)s)")
    p.add_argument("--budget-minutes", type=float,
                   help="size the run to this many minutes of compute on its device, from the "
                        "measured step speed (in place of --epochs); the schedule ends with it")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--sigma", type=float, default=d.sigma, help="training noise std")
    p.add_argument("--val-size", type=int, default=d.val_size,
                   help="training images held out for validation, the figures every choice is made "
                        "on (the test set is read once, at the end; default %(default)s)")
    p.add_argument("--augment", choices=AUGMENTATIONS,
                   help="random flips (and crops of the reflect-padded image, or shifts over black) "
                        "of training images (default: flip-crop for RGB data, none for grey)")
    p.add_argument("--learn-class-weights", action="store_true",
                   help="learn the class weights Φ from the L_X gradient (appendix B)")
    p.add_argument("--seed", type=int, default=d.seed)


def _add_run_options(p: argparse.ArgumentParser, d: T.TrainConfig) -> None:
    """Where and how ``ibinn train`` runs: device, precision, checkpoints, output, resuming, time limit."""
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=d.amp,
                   help="bf16 mixed precision (autocast) where the device computes bf16 natively: "
                        "GPUs, CPUs with AVX-512 BF16 or AMX (default: on)")
    p.add_argument("--compile", choices=["auto", "on", "off"], default=d.compile,
                   help="torch.compile the model and loss; auto: for runs estimated at 10 minutes "
                        "or more, where a compiler is present (default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="steps")
    p.add_argument("--snapshots", type=int, default=d.snapshots, metavar="FRAMES",
                   help="keep about this many frames of the latent space forming (IB-INN; "
                        "snapshots.npz in --out, shown by the dashboard's Train page; "
                        f"at most {T.MAX_SNAPSHOTS}; default %(default)s: none)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint (a fresh start when "
                        "there is none, so that one command serves every segment of a long run)")
    p.add_argument("--max-minutes", type=float,
                   help="stop after this many minutes with a checkpoint (exit status 3); run the "
                        "same command with --resume to continue")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _train_config(args) -> T.TrainConfig:
    """The training config of parsed ``ibinn train`` arguments."""
    return T.TrainConfig(
        dataset=args.dataset, model=args.model, root=args.root, download=args.download, mode=args.mode,
        gamma=args.gamma, preset=args.preset, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, schedule=args.schedule, warmup=args.warmup,
        ema=args.ema, budget_minutes=args.budget_minutes, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, sigma=args.sigma, augment=args.augment,
        val_size=args.val_size,
        learn_class_weights=args.learn_class_weights, seed=args.seed, device=args.device,
        amp=args.amp, compile=args.compile, checkpoint_every=args.checkpoint_every,
        snapshots=args.snapshots, out=args.out, model_overrides=dict(args.arch))


def _deadline(minutes: float | None) -> Callable[[], bool] | None:
    """``should_stop`` for ``--max-minutes``: true once that many minutes have passed."""
    if minutes is None:
        return None
    deadline = time.monotonic() + 60 * max(0.0, minutes)
    return lambda: time.monotonic() > deadline


def _given_options(argv: list[str], command: str) -> dict[str, str]:
    """The options of ``command`` that ``argv`` sets itself (not by default): dest → option name."""
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in sub._actions:
        action.default = argparse.SUPPRESS  # so that only the options given are in the namespace
    given = vars(parser.parse_args(argv))
    return {a.dest: a.option_strings[0] for a in sub._actions if a.option_strings and a.dest in given}


def _output_folder(out: str) -> None:
    """Make the ``--out`` folder, or say in one line why it cannot be one."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out must be a folder, but {out} (or a folder above it) is a file") from None
    except OSError as err:
        raise ValueError(f"--out {out}: cannot create this folder ({err.strerror})") from None


def _check_resume(args, given: dict[str, str]) -> None:
    """Refuse options that ``--resume`` would ignore: a resumed run keeps its saved settings
    (only those of :data:`ibinn.train_config.RUN_ONLY` may change), so a different value would be lost."""
    state_path = Path(args.out) / T.STATE_FILE
    if not args.resume or not state_path.exists():
        return
    from .checkpoint import load_state

    saved = T.TrainConfig.from_json(json.loads(load_state(state_path)["train_config"]))
    asked = _train_config(args)
    fields = {f.name for f in dataclasses.fields(T.TrainConfig)} - set(T.RUN_ONLY)
    conflicts = []
    for dest, option in given.items():
        name = "model_overrides" if dest == "arch" else dest
        if name in fields and (value := getattr(asked, name)) != (kept := getattr(saved, name)):
            conflicts.append(f"{option} {value!r} (the saved run has {kept!r})")
    if conflicts:
        raise ValueError(f"--resume continues the run in {args.out} with its saved settings, which "
                         f"these options would change: {'; '.join(conflicts)}. Drop them, or start a "
                         f"new run in another --out")


def _run_train(args) -> int:
    started = time.monotonic()
    _output_folder(args.out)
    _check_resume(args, _given_options(args.argv, "train"))
    result = T.train(_train_config(args), resume=args.resume, progress=not args.quiet,
                     should_stop=_deadline(args.max_minutes))
    if not Distributed.from_env().is_main:  # under torchrun, rank 0 reports
        return 0 if result.finished else 3
    if not result.finished:
        val = next((r for r in reversed(result.history) if "val_error" in r), None)
        m = result.metrics
        print(f"stopped after {(time.monotonic() - started) / 60:.1f} minutes (--max-minutes) at "
              f"step {m['steps']}/{m['total_steps']}"
              + (f"; val error {100 * val['val_error']:.2f}% after {val['elapsed_s'] / 60:.1f} "
                 f"minutes of training" if val else "")
              + f". Continue with the same command and --resume (checkpoint in {result.out}).")
        return 3
    m = result.metrics
    print(f"done: {m['steps']} steps in {m['train_seconds']:.0f} s on {m['device']}; "
          f"test error {100 * m['test_error']:.2f}%"
          + (f", test bits/dim {m['test_bits_per_dim']:.3f}" if "test_bits_per_dim" in m else "")
          + f" -> {result.out / T.WEIGHTS_FILE}")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="all Table 1 metrics of a model",
                       description="Classification error, bits/dim, calibration (ECE/MCE/ICE), OoD "
                                   "entropy increase and OoD detection AUC on the test set and OoD sets.")
    p.add_argument("model", help="a .safetensors file, a run folder or a zoo name")
    p.add_argument("--data", help="test data (default: the model's data set, test split; "
                                  "e.g. demo:fashion-mnist for the shipped subset)")
    p.add_argument("--root", help="folder of the torchvision data sets")
    p.add_argument("--ood", nargs="*", help="OoD sets (default: the paper's, or grey counterparts):"
                                            " rgb-rotation[:α/π], noise-gaussian[:σ], noise-uniform[:amp],"
                                            " inverted, drawings, quickdraw:<path>, cifar10-grey,"
                                            " imagefolder:<dir>, a data set")
    p.add_argument("--limit", type=int, help="use at most this many test images")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the inference (pays off for full test and OoD sets)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="folder for evaluation.json / .md (default: next to the model)")


def _run_evaluate(args) -> int:
    from . import load

    model = load(args.model, device=args.device)
    if args.compile:
        model.compile_inference()
    data_name = args.data or model.config.dataset
    test = load_dataset(data_name, "test", root=args.root)
    report = evaluate(model, test, args.ood, root=args.root, limit=args.limit)
    path = Path(args.model)
    out = Path(args.out) if args.out else (path if path.is_dir() else path.parent)
    label = path.name if path.is_dir() else path.stem
    json_path, _ = write_report(report, out, label)
    print(markdown_table({label: report}, dataset_note(data_name)))
    for spec, why in report["skipped"].items():
        print(f"skipped OoD set {spec}: {why}")
    print(f"written: {json_path} and evaluation.md")
    return 0


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="train and evaluate one model per γ (paper Fig. 6)")
    d = T.TrainConfig()
    p.add_argument("--dataset", default=d.dataset)
    p.add_argument("--root")
    p.add_argument("--download", action="store_true")
    p.add_argument("--gammas", default="0,0.1,1,10,inf", help="comma-separated γ values")
    p.add_argument("--modes", default="class-nll",
                   help="extra loss modes, comma-separated (class-nll, class-nll-reg), or ''")
    p.add_argument("--preset", choices=list(PRESETS), default=d.preset)
    _add_settings(p, *ARCH_FLAG)
    p.add_argument("--val-size", type=int, default=d.val_size,
                   help="training images held out for validation, the figures every choice is made "
                        "on (the test set is read once, at the end; default %(default)s)")
    p.add_argument("--augment", choices=AUGMENTATIONS, help="as for train")
    p.add_argument("--epochs", type=float, default=d.epochs)
    p.add_argument("--optimizer", choices=["adam", "sgd"], default=d.optimizer)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--devices", help="comma-separated devices to train the runs on concurrently, one "
                                     "worker process each, e.g. cuda:0,cuda:1 (default: every CUDA "
                                     "device when there are two or more, else --device)")
    p.add_argument("--ood", nargs="*")
    p.add_argument("--out", required=True)
    p.add_argument("--quiet", action="store_true")


def _run_sweep(args) -> int:
    from .sweep import FIGURES, sweep

    gammas = [_gamma(g) for g in args.gammas.split(",") if g.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    base = T.TrainConfig(dataset=args.dataset, root=args.root, download=args.download,
                         preset=args.preset, epochs=args.epochs, optimizer=args.optimizer,
                         seed=args.seed, device=args.device, out=args.out, augment=args.augment,
                         model_overrides=dict(args.arch))
    rows = sweep(base, gammas, modes, args.out, args.ood, progress=not args.quiet, devices=devices)
    print(markdown_table({r["name"]: r["report"] for r in rows}, dataset_note(args.dataset)))
    figures = [name for name in FIGURES if (Path(args.out) / name).exists()]
    print(f"written: {args.out}/sweep.md, {', '.join(['sweep.json', *figures])}")
    return 0


def _add_zoo(sub) -> None:
    p = sub.add_parser("zoo", help="the pretrained models: list, add, rebuild")
    p.add_argument("--markdown", action="store_true",
                   help="print every card's full Table 1 row and compute as Markdown tables")
    p.add_argument("--dataset", help="only this family (fashion-mnist, cifar10)")
    p.add_argument("--claims", action="store_true",
                   help="print the paper's qualitative claims checked on each family's cards "
                        "(Markdown)")
    p.add_argument("--plot", metavar="FILE",
                   help="draw one family's metric-vs-γ curves (Fig. 6) from its cards to FILE "
                        "(.html: interactive plotly, else PNG)")
    zsub = p.add_subparsers(dest="zoo_command")
    add = zsub.add_parser("add", help="package a finished run as a pretrained model")
    add.add_argument("run", help="run folder (with model.safetensors and metrics.json)")
    add.add_argument("--name", required=True, help="<family>/<model>, e.g. fashion-mnist/gamma-1")
    add.add_argument("--command", required=True, dest="train_command",
                     help="the `ibinn train ...` command that made it")
    add.add_argument("--data", help="test data for the card (default: the model's data set)")
    add.add_argument("--root", help="folder of the torchvision data sets")
    add.add_argument("--notes", default="")
    rebuild = zsub.add_parser("rebuild", help="retrain and re-evaluate from the cards' training configs")
    rebuild.add_argument("--dataset", help="only this family (fashion-mnist, cifar10)")
    rebuild.add_argument("--root", help="data folder to use in place of the cards' data folder")
    rebuild.add_argument("--device", help="device to train on in place of the cards' (e.g. cuda)")
    rebuild.add_argument("--work", help="folder for the runs, kept: a later call resumes there")
    rebuild.add_argument("--budget-minutes", type=float, help="retrain under the default recipe, "
                         "each model sized to this many minutes (default: the cards' own configs)")
    rebuild.add_argument("--epochs", type=float, help="in place of --budget-minutes: this many "
                         "epochs of the default recipe a model, the same compute on any machine")
    _add_settings(rebuild, *ARCH_FLAG)
    _add_settings(rebuild, "--set", zoo.REBUILD_SETTINGS, "recipe field of every model, e.g. sigma=0.001")
    rebuild.add_argument("--max-minutes", type=float, help="stop after this many minutes with a "
                         "checkpoint in --work (exit status 3); the same command continues")
    rebuild.add_argument("--train-only", action="store_true", help="train into --work, do not package")
    zsub.add_parser("manifest", help="rewrite pretrained/manifest.json from the files")
    derive = zsub.add_parser("derive", help="recompute the arrays shipped beside each model from its weights")
    derive.add_argument("--dataset", help="only this family (fashion-mnist, cifar10)")
    reevaluate = zsub.add_parser("evaluate", help="re-evaluate every card from its stored weights "
                                                  "(full test set and demo set), no training")
    reevaluate.add_argument("--dataset", help="only this family (fashion-mnist, cifar10)")
    reevaluate.add_argument("--root", help="data folder: torchvision sets in <root>/<name> or "
                                           "<root>, the cards' image folders by name in <root>")
    reevaluate.add_argument("--all", action="store_true", dest="everything",
                            help="also cards already evaluated under the current conventions")


def _run_zoo(args) -> int:
    commands = {"add": _zoo_add, "rebuild": _zoo_rebuild, "manifest": _zoo_manifest,
                "evaluate": _zoo_evaluate, "derive": _zoo_derive}
    return commands.get(args.zoo_command, _zoo_show)(args)


def _zoo_add(args) -> int:
    card = zoo.add(args.run, args.name, args.train_command, test_data=args.data,
                   root_data=args.root, notes=args.notes)
    print(f"added {card.name}: test error {card.metrics['test']['error']:.2f}%")
    return 0


def _zoo_rebuild(args) -> int:
    if (args.max_minutes is not None or args.train_only) and not args.work:
        raise ValueError("--max-minutes and --train-only need --work, a folder the next call resumes from")
    cards, done = zoo.rebuild(args.dataset, args.root, device=args.device, work=args.work,
                              should_stop=_deadline(args.max_minutes), budget_minutes=args.budget_minutes,
                              epochs=args.epochs, arch=dict(args.arch), recipe=dict(args.set),
                              package=not args.train_only)
    for card in cards:
        print(f"rebuilt {card.name}: test error {card.metrics['test']['error']:.2f}%")
    if not done:
        print(f"not complete: stopped by --max-minutes with a checkpoint in {args.work}, or a model trains "
              f"in another process; the same command continues (the zoo changes once all have trained)")
        return 3
    print(f"every model has trained in {args.work}; the same command without --train-only packages "
          f"them" if args.train_only else f"rebuilt {len(cards)} models in this call; the zoo is complete")
    return 0


def _zoo_manifest(args) -> int:
    print(f"written {zoo.write_manifest()}")
    return 0


def _zoo_evaluate(args) -> int:
    def report(card) -> None:
        print(f"re-evaluated {card.name}: test error {card.metrics['test']['error']:.2f}%, OoD AUC geo-mean "
              f"{card.metrics['ood_average']['auc_typicality'] or float('nan'):.2f}", flush=True)

    zoo.reevaluate(args.dataset, args.root, everything=args.everything, on_card=report)
    return 0


def _zoo_derive(args) -> int:
    for card in zoo.list_models():
        if args.dataset in (None, card.family):
            path = zoo.write_derived(card.name, manifest=False)
            print(f"written {path} ({path.stat().st_size / 1024:.0f} KiB)")
    zoo.write_manifest()
    return 0


def _zoo_show(args) -> int:
    """``ibinn zoo`` without a subcommand: the cards as a table, or what its options ask for."""
    cards = [c for c in zoo.list_models() if args.dataset in (None, c.family)]
    if not cards:
        print("no pretrained models found in", zoo.PRETRAINED_DIR)
        return 0
    if args.plot:
        _zoo_plot(cards, args.plot)
    if args.markdown:
        print(zoo.markdown_report(cards))
    if args.claims:
        from . import claims

        print(claims.markdown_report(cards))
    if not (args.plot or args.markdown or args.claims):
        print(zoo.text_table(cards))
    return 0


def _zoo_plot(cards: list[zoo.ModelCard], file: str) -> None:
    """Fig. 6 of one family's cards, drawn to ``file`` (``--plot``)."""
    from . import plots

    families = sorted({c.family for c in cards})
    if len(families) > 1:
        raise SystemExit(f"--plot draws one family; choose one with --dataset ({', '.join(families)})")
    if missing := plots.missing_libraries([file]):
        raise SystemExit(f"ibinn zoo: --plot {file} needs {missing[0]}, which is not "
                         f"installed: {plots.INSTALL}")
    baselines = {c.name.split("/", 1)[1]: c.metrics for c in cards if c.kind != "ibinn"}
    path = plots.write_curves(zoo.sweep_rows(cards), file, baselines,
                              cards[0].dataset_label, dataset_note(cards[0].metrics.get("data", "")))
    print(f"written {path}")


def _run_info(args) -> int:
    from . import load

    model = load(args.model, device="cpu")
    print(model.describe())
    folder = Path(args.model) if Path(args.model).is_dir() else Path(args.model).parent
    metrics = folder / T.METRICS_FILE
    if metrics.exists():
        print(json.dumps(json.loads(metrics.read_text()), indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    """The ``ibinn`` command's argument parser."""
    parser = argparse.ArgumentParser(prog="ibinn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_sweep(sub)
    _add_zoo(sub)
    info = sub.add_parser("info", help="describe a saved model")
    info.add_argument("model", help="a .safetensors file or a run folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # which options were given, not defaulted (see _given_options)
    from .checkpoint import CheckpointError, RunFolderBusy
    from .data import DataError

    try:
        commands = {"train": _run_train, "evaluate": _run_evaluate, "sweep": _run_sweep,
                    "zoo": _run_zoo, "info": _run_info}
        return commands[args.command](args)
    except (DataError, CheckpointError, FileExistsError, RunFolderBusy, ValueError) as err:
        print(f"ibinn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be read or written: one line, not a traceback
        print(f"ibinn {args.command}: error: {err.strerror or err}: {err.filename or ''}", file=sys.stderr)
        return 2
    except T.TrainingDiverged as err:
        print(f"ibinn {args.command}: training diverged: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

