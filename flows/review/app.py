"""The review page as a web app (FastAPI): server-rendered HTML, a little plain JavaScript.

Routes:
    GET  /                         the page: one detection to judge, filters, progress per species
    GET  /api/spectrogram.png?key  the window +- 1 s as a spectrogram
    GET  /api/audio.wav?key        the same span as a 16-bit WAV
    POST /api/verdicts             one verdict (JSON), needs the server's token
    GET  /api/queue, /api/progress the same data as JSON
    GET  /?classifier=NAME         a classifier's active-learning queue (docs/learn.md)
    GET  /api/learn/classifiers    each classifier's newest version: examples, metrics
    GET  /api/learn/queue?classifier=NAME  its unjudged windows, uncertain and top in turn
    POST /api/learn/retrain        train it again from the verdicts (JSON), needs the token
    GET  /?mark=LABEL&windows=K,K  mark any windows (e.g. `similar` hits) as examples of LABEL
    POST /api/examples             one mark (JSON: key, label, positive|negative|unsure), token
    GET  /static/review.js|.css

Safe by default: a request names a window key, looked up in the catalog, never a path; every
state-changing request carries the per-server token (header X-Review-Token, given to the page
only); requests naming a Host the server was not bound as are refused (DNS rebinding); bad
requests get a 4xx with a one-line reason, never a traceback.

On a network (any address beyond loopback) the server also has an access key, a secret printed
in the terminal and never sent by the server: the user opens ``/?access=KEY`` once, the answer
moves the key into an HttpOnly, SameSite=Strict cookie and sends the browser on to ``/``; every
other request without that cookie is refused (401) before anything is read or written, so the
page and its token are handed only to callers who hold the key.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from urllib.parse import urlencode
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectors.clips import SourceChanged, SourceMissing, wav_bytes
from connectors.errors import InputError
from flows.outputs.privacy import WITHHELD_STATUS, SpeechWithheld
from flows.review.service import (
    MAX_LABEL_CHARS,
    MAX_REVIEWER_CHARS,
    BadRequest,
    Busy,
    Filters,
    NotInCatalog,
    ReviewService,
    WindowKey,
)
from flows.review.defaults import MAX_MARK_WINDOWS
from flows.review.spectrogram import spectrogram_png
from flows.review.ultrasound import Listening, listening

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Review-Token"
ACCESS_PARAM = "access"
"""Query parameter carrying the access key, once, on the first visit."""
PUBLIC_PATHS = frozenset({"/favicon.ico", "/static/review.js", "/static/review.css"})
"""What a caller without the access key may fetch: nothing about the catalog."""
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; media-src 'self'; "
                               "script-src 'self'; style-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class VerdictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=300)
    label: str = Field(max_length=MAX_LABEL_CHARS)
    verdict: str = Field(max_length=20)
    reviewer: str = Field(max_length=MAX_REVIEWER_CHARS)
    corrected_label: str | None = Field(None, max_length=MAX_LABEL_CHARS)


class MarkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=300)
    label: str = Field(max_length=MAX_LABEL_CHARS)
    mark: str = Field(max_length=20)
    reviewer: str = Field(max_length=MAX_REVIEWER_CHARS)


class RetrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classifier: str = Field(max_length=MAX_LABEL_CHARS)
    reviewer: str = Field(max_length=MAX_REVIEWER_CHARS)


#: The most time expansion /api/audio.wav gives (?slower=N).
MAX_SLOWER = 20


def window_listening(w: dict[str, Any]) -> Listening:
    """How the page shows and plays the window `w` (a `window_source` row)."""
    return listening(w.get("band_low_hz"), w.get("band_high_hz"), w.get("sample_rate_hz"))


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"detail": reason}, status_code=status, headers=SECURITY_HEADERS)


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where or 'request'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _filters(deployment: str | None, species: str | None, fingerprint: str | None) -> Filters:
    return Filters(deployment=deployment or None, label=species or None,
                   fingerprint=fingerprint or None)


def access_cookie_name(access_key: str) -> str:
    """The cookie holding an access key: named after a hash of the key, so two review servers on
    one machine (cookies ignore the port) never overwrite each other's."""
    return "dawnchorus_review_" + hashlib.sha256(access_key.encode()).hexdigest()[:12]


def _access_refusal(request: Request, access_key: str) -> Response | None:
    """None when the request holds the access key; else the answer (a redirect that stores a
    key given in the address, or a refusal naming what is missing)."""
    cookie = access_cookie_name(access_key)
    given = request.query_params.get(ACCESS_PARAM)
    if given is not None:
        if not secrets.compare_digest(given.encode(), access_key.encode()):
            return _error(403, "wrong access key: open the address `dawnchorus review` printed "
                               "in its terminal")
        if request.method != "GET" or request.url.path != "/":
            return _error(400, f"the access key goes only in the page's address (/?{ACCESS_PARAM}=...)")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != ACCESS_PARAM]
        response = Response(status_code=303, headers={
            "Location": "/" + (f"?{urlencode(rest)}" if rest else ""), **SECURITY_HEADERS})
        response.set_cookie(cookie, access_key, httponly=True, samesite="strict", path="/")
        return response
    if request.url.path in PUBLIC_PATHS:
        return None
    held = request.cookies.get(cookie, "")
    if held and secrets.compare_digest(held.encode(), access_key.encode()):
        return None
    return _error(401, "this review page needs its access key: open the address "
                       "`dawnchorus review` printed in its terminal (it ends in ?access=...)")


def create_app(service: ReviewService, *, token: str | None = None,
               allowed_hosts: frozenset[str] | None = None,
               access_key: str | None = None) -> FastAPI:
    """The app over `service`. `allowed_hosts`: Host header values served (None = any);
    `access_key`: the secret every request must hold (None = none, for loopback)."""
    token = token or secrets.token_urlsafe(32)
    app = FastAPI(title="dawnchorus review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = token
    here = files("flows.review")
    pages = Environment(loader=FileSystemLoader(str(here)), autoescape=select_autoescape(["html"]))
    static = {name: here.joinpath(name).read_bytes() for name in STATIC}

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if allowed_hosts is not None and request.headers.get("host", "") not in allowed_hosts:
            return _error(400, f"host {request.headers.get('host', '')[:80]!r} is not served here")
        if access_key is not None:
            refusal = _access_refusal(request, access_key)
            if refusal is not None:
                return refusal
        if request.method not in ("GET", "HEAD"):
            sent = request.headers.get(TOKEN_HEADER, "")
            if not sent:
                return _error(403, f"missing {TOKEN_HEADER} header: state-changing requests "
                                   "need the token the review page carries")
            if not secrets.compare_digest(sent.encode(), token.encode()):
                return _error(403, f"wrong review token ({TOKEN_HEADER}): this server was "
                                   "started with another; reload the page")
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(NotInCatalog)
    async def not_in_catalog(request: Request, exc: NotInCatalog) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(SpeechWithheld)
    async def withheld(request: Request, exc: SpeechWithheld) -> JSONResponse:
        return _error(WITHHELD_STATUS, str(exc))  # the privacy gate (docs/privacy.md)

    @app.exception_handler(InputError)
    async def source_problem(request: Request, exc: InputError) -> JSONResponse:
        status = 404 if isinstance(exc, SourceMissing) else 409 if isinstance(exc, SourceChanged) else 502
        return _error(status, f"audio not available: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(400, _validation_reason(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("review page: %s %s failed", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.get("/", response_class=HTMLResponse)
    def page(deployment: str | None = Query(None, max_length=MAX_LABEL_CHARS),
             species: str | None = Query(None, max_length=MAX_LABEL_CHARS),
             fingerprint: str | None = Query(None, max_length=MAX_LABEL_CHARS),
             classifier: str | None = Query(None, max_length=MAX_LABEL_CHARS),
             mark: str | None = Query(None, max_length=MAX_LABEL_CHARS),
             windows: str | None = Query(None, max_length=MAX_MARK_WINDOWS * 300)) -> HTMLResponse:
        filters = _filters(deployment, species, fingerprint)
        marking = None
        if mark or windows:
            # ?mark=LABEL&windows=K,K,...: mark these windows (a `similar` result) as examples
            if not (mark and windows):
                raise BadRequest("marking windows needs both ?mark=LABEL and &windows=KEY,KEY,...")
            rows = service.mark_list(mark, service.mark_keys(windows))
            marking = {"label": rows[0]["label"], "rows": rows,
                       "counts": {m: sum(r["mark"] == m for r in rows)
                                  for m in ("positive", "negative", "unsure")}}
            left = [r for r in rows if r["mark"] is None]
            item = left[0] if left else None
            learning = None
        else:
            # ?classifier=NAME: that classifier's active-learning queue instead of the stratified one
            learning = service.classifier(classifier) if classifier else None
            queue = (service.learn_queue(classifier, limit=1) if learning
                     else service.queue(filters, limit=1))
            item = queue[0] if queue else None
        if item is not None and not item.get("withheld"):
            item = {**item, "listen": window_listening(service.window(WindowKey.parse(item["key"])))}
        html = pages.get_template("page.html").render(
            token=token, results=str(service.writer.root), reviewer=service.settings.reviewer,
            filters=filters, options=service.options(), item=item,
            progress=service.progress(filters), goal=service.settings.goal,
            learning=learning, classifiers=service.classifiers(), marking=marking,
            retrain_every=service.settings.retrain_every,
            auto_retrain=service.auto_retrains.get(learning["name"]) if learning else None,
        )
        return HTMLResponse(html)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; an empty answer keeps the console clean

    @app.get("/static/{name}")
    def static_file(name: str) -> Response:
        if name not in STATIC:
            return _error(404, f"no static file {name[:80]!r}")
        return Response(static[name], media_type=STATIC[name])

    @app.get("/api/audio.wav")
    def audio(key: str = Query(max_length=300),
              slower: int = Query(1, ge=1, le=MAX_SLOWER)) -> Response:
        span, _ = service.clip(WindowKey.parse(key))
        return Response(wav_bytes(span, slower), media_type="audio/wav")

    @app.get("/api/spectrogram.png")
    def spectrogram(key: str = Query(max_length=300)) -> Response:
        window_key = WindowKey.parse(key)
        span, w = service.clip(window_key)
        png = spectrogram_png(span, w["offset_s"], w["offset_s"] + w["window_s"],
                              listen=window_listening(w))
        return Response(png, media_type="image/png")

    @app.post("/api/verdicts", status_code=201)
    def verdict(body: VerdictIn) -> dict[str, Any]:
        review = service.add_verdict(WindowKey.parse(body.key), body.label, body.verdict,
                                     body.reviewer, body.corrected_label)
        return {"review_id": review.review_id, "key": body.key, "label": review.label,
                "verdict": review.verdict, "score": review.score,
                "retrained": service.retrain_if_due(review)}

    @app.post("/api/examples", status_code=201)
    def example(body: MarkIn) -> dict[str, Any]:
        review = service.add_mark(WindowKey.parse(body.key), body.label, body.mark, body.reviewer)
        return {"review_id": review.review_id, "key": body.key, "label": review.label,
                "mark": body.mark, "verdict": review.verdict, "score": review.score,
                "retrained": service.retrain_if_due(review)}

    @app.get("/api/queue")
    def queue(deployment: str | None = Query(None, max_length=MAX_LABEL_CHARS),
              species: str | None = Query(None, max_length=MAX_LABEL_CHARS),
              fingerprint: str | None = Query(None, max_length=MAX_LABEL_CHARS),
              limit: int = Query(20, ge=1, le=1000)) -> list[dict[str, Any]]:
        return service.queue(_filters(deployment, species, fingerprint), limit=limit)

    @app.get("/api/progress")
    def progress(deployment: str | None = Query(None, max_length=MAX_LABEL_CHARS),
                 species: str | None = Query(None, max_length=MAX_LABEL_CHARS),
                 fingerprint: str | None = Query(None, max_length=MAX_LABEL_CHARS)
                 ) -> list[dict[str, Any]]:
        return service.progress(_filters(deployment, species, fingerprint))

    # -- active learning (docs/learn.md): a queue per classifier, a retrain action ------------
    @app.get("/api/learn/classifiers")
    def learn_classifiers() -> list[dict[str, Any]]:
        return service.classifiers()

    @app.get("/api/learn/queue")
    def learn_queue(classifier: str = Query(max_length=MAX_LABEL_CHARS),
                    limit: int = Query(20, ge=1, le=1000)) -> list[dict[str, Any]]:
        return service.learn_queue(classifier, limit=limit)

    @app.post("/api/learn/retrain")
    def retrain(body: RetrainIn) -> dict[str, Any]:
        return service.retrain(body.classifier, body.reviewer)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return _error(409, str(exc))

    return app
