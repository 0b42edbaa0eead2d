"""`dawnchorus report`: rebuild a run's report (`flows.outputs.report`)."""

from __future__ import annotations

from typing import Any



def cmd_report(args: Any) -> int:
    from connectors.location import ResultsLocation
    from flows.outputs.report import latest_run_id, write_report

    location = ResultsLocation.resolve(args.results, args.catalog)
    run_id = args.run or latest_run_id(location)
    print(write_report(location, run_id, threshold=args.threshold,
                       location_threshold=args.location_threshold))
    return 0


def add_report_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="rebuild a run's report (plots, tables, index.html)")
    p.add_argument("--results", required=True, help="results root: a local folder or s3://...")
    p.add_argument("--catalog", help="the catalog, as the run named it (default: "
                                     "<results>/catalog.sqlite)")
    p.add_argument("--run", help="run id (default: the latest run)")
    p.add_argument("--threshold", type=float,
                   help="detection threshold (default: the catalog's, calibrated ones per species)")
    p.add_argument("--location-threshold", type=float, metavar="P",
                   help="location-filter threshold (default: the catalog's; 0 shows every species)")
    p.set_defaults(func=cmd_report)
