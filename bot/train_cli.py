"""The `train` and `eval` commands: arguments in, figures printed, one line and exit 2 on bad input."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.corpus_file import CORPUS_PATH, FIGURES_PATH, MODES, CorpusError, load_corpus
from dialogs.evaluation import evaluate, mean_figures
from dialogs.ngram_model import MODEL_PATH

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"refund-advisor: {message}", file=sys.stderr)
    return EXIT_USAGE


def _needs_training_libraries() -> str | None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "training needs scikit-learn: pip install -e '.[train]'"
    return None


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "train":
            return _train(args)
        return _eval(args)
    except CorpusError as exc:
        return _fail(str(exc))


def _train(args: argparse.Namespace) -> int:
    missing = _needs_training_libraries()
    if missing:
        return _fail(missing)
    from bot.train import train
    corpus = Path(args.corpus) if args.corpus else CORPUS_PATH
    out = Path(args.out) if args.out else MODEL_PATH
    # Figures are recorded only for the repository's own corpus and weights.
    figures = FIGURES_PATH if corpus.resolve() == CORPUS_PATH and out.resolve() == MODEL_PATH else None
    result = train(corpus, out, figures)
    counts = result["corpus"]
    print(f"trained on {counts['training']} of {counts['records']} stories; weights in {out}")
    print(f"held out: {counts['held_out']} stories")
    for mode, f in result["held_out"].items():
        print(f"  {mode:<6} macro-F1 {f['macro_f1']:.3f}  scam recall {f['scam_recall']:.3f} "
              f"precision {f['scam_precision']:.3f}  prefill precision {f['prefill_precision']}")
    if figures:
        print(f"figures recorded in {figures}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    path = Path(args.file)
    is_corpus = path.resolve() == CORPUS_PATH
    records = load_corpus(path, strict=is_corpus)
    modes = MODES if args.mode == "all" else (args.mode,)
    if args.cv is not None:
        if args.cv < 2:
            return _fail("--cv needs at least 2 folds")
        missing = _needs_training_libraries()
        if missing:
            return _fail(missing)
        from bot.train import cross_validate, cv_table
        reports = cross_validate(records, args.cv, modes)
        if args.json:
            print(json.dumps({m: mean_figures(r) for m, r in reports.items()}, indent=2))
        else:
            print(f"{args.cv}-fold cross-validation on the training split "
                  f"({sum(not r.held_out for r in records)} stories):")
            print(cv_table(reports))
        return 0
    split = ("held-out" if is_corpus else "all") if args.split == "auto" else args.split
    chosen = [r for r in records if split == "all" or r.held_out == (split == "held-out")]
    if not chosen:
        return _fail(f"no stories in the {split} split of {path}")
    by_mode = {mode: evaluate(chosen, mode) for mode in modes}
    if args.json:
        print(json.dumps({m: r.to_dict() for m, r in by_mode.items()}, ensure_ascii=False, indent=2))
        return 0
    print(f"{path}: {len(chosen)} stories ({split})")
    for report in by_mode.values():
        print(report.format())
        print()
    return 0
