"""The review page's and calibration's defaults, light enough for the CLI's parser to import
(the page's own modules pull in FastAPI and uvicorn, calibration the catalog)."""

DEFAULT_HOST = "127.0.0.1"  # this machine only
DEFAULT_PORT = 8765
DEFAULT_PRECISION = 0.9  # P(correct) a calibrated threshold is set for
DEFAULT_MIN_REVIEWS = 30  # verdicts a species needs before it gets a threshold
#: The most windows one marking list (`/?mark=LABEL&windows=...`, `similar --review`) names: the
#: keys travel in the page's address, which must stay under the server's 16 KB request line.
MAX_MARK_WINDOWS = 200
