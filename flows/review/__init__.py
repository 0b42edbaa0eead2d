"""Review and calibration: people judge detections in the browser (or in Raven), and their
verdicts become per-species thresholds for a target precision.

- `service` + `app` + `server`: the review page (`dawnchorus review`).
- `calibrate`: logistic fits of verdict on logit(score) (`dawnchorus calibrate`).
- `raven` + `exchange`: reviews to and from Raven selection tables.
- `curves`: calibration curve PNGs for the run report.
- `commands`: the two subcommands' arguments and bodies.

See docs/review.md.
"""
