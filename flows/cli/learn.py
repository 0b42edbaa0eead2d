"""`dawnchorus learn`: train a classifier for a new sound from examples on stored embeddings,
store it and apply it (`flows.outputs.learn`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from connectors.location import ResultsLocation
from flows.outputs.examples import ANNOTATION_COLUMNS
from flows.outputs.learn import WEAK_NEGATIVES, learn


def _metric(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_learn(args: argparse.Namespace) -> int:
    location = ResultsLocation.resolve(args.results, args.catalog)
    result = learn(location, args.label, examples=args.examples or (), name=args.name,
                   config_fingerprint=args.config_fingerprint, by=args.by,
                   annotation_column=args.annotation_column, weak_negatives=args.weak_negatives,
                   apply=not args.no_apply, keep_examples=args.keep_examples)
    c, mapped = result.classifier, result.mapped
    for line in result.skipped + mapped.problems:
        print(f"not used: {line}")
    print(f"examples: {mapped.positives} positive and {mapped.negatives} negative windows, "
          f"{c.n_weak_negative} unlabelled windows as weak negatives "
          f"(fingerprint {c.embedding_fingerprint}, {c.embedding_model_id})")
    metrics = json.loads(c.metrics)
    if c.cv_folds:
        print(f"cross-validated ({c.cv_folds} folds, at 0.5): precision {_metric(c.cv_precision)}, "
              f"recall {_metric(c.cv_recall)}, ROC AUC {_metric(c.cv_roc_auc)}")
    else:
        print(f"not cross-validated: {metrics.get('why')}")
    state = "stored" if result.new_version else "unchanged (same examples, same weights)"
    print(f"classifier {c.classifier_id} {state}: model {c.model_id}, "
          f"fingerprint {c.config_fingerprint}")
    if result.applied is not None:
        a = result.applied
        print(f"applied: {a.windows} windows scored, {a.above_half} at 0.5 or more "
              f"(dawnchorus query --results {args.results} \"from detections where "
              f"config_fingerprint = '{c.config_fingerprint}'\")")
    return 0


def add_learn_parser(sub: Any) -> None:
    p = sub.add_parser("learn", help="train a classifier for a new sound from examples on stored "
                                     "embeddings, and apply it to the season")
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it: a SQLite file or "
                                     "postgresql://... (default: <results>/catalog.sqlite)")
    p.add_argument("--label", required=True, help="the sound's name (its predictions' label)")
    p.add_argument("--examples", action="append", metavar="TABLE.txt",
                   help="Raven selection table of examples (repeatable); default: the catalog's "
                        "verdicts on LABEL")
    p.add_argument("--annotation-column", help="the table's column naming each selection's sound "
                                               "(default: the first of " + ", ".join(ANNOTATION_COLUMNS)
                                               + " present)")
    p.add_argument("--name", help="the classifier's name (default: the label); retraining a name "
                                  "adds a version")
    p.add_argument("--fingerprint", "--config-fingerprint", dest="config_fingerprint", metavar="PREFIX", help="embeddings of this fingerprint (default: the only one)")
    p.add_argument("--by", help="who trains it (default: the login name)")
    p.add_argument("--weak-negatives", type=int, default=WEAK_NEGATIVES,
                   help=f"unlabelled windows drawn as weak negatives (default {WEAK_NEGATIVES})")
    p.add_argument("--keep-examples", action="store_true",
                   help="also the newest version of --name's examples that did not come from "
                        "verdicts (a Raven table's), as the review page's Retrain does")
    p.add_argument("--no-apply", action="store_true", help="store the classifier, score nothing")
    p.set_defaults(func=cmd_learn)
