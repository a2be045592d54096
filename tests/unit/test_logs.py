"""goldwire.service.logs and the request-id middleware on their own: the JSON and console
line formats, the context fields, arq's per-job lines, bad settings refused at start."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from goldwire.service.logs import (
    ConsoleFormatter,
    JsonFormatter,
    configure_logging,
    log_context,
    log_fields,
    use_log_fields,
)
from goldwire.service.request_id import RequestIdMiddleware


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own whose one handler writes `formatter`'s lines to a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"goldwire.test.{id(out)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_carries_the_process_and_context_fields() -> None:
    logger, out = capture(JsonFormatter("gateway", "gw-1"))
    with log_context(conn="gw-1.7", user="ada", request_id=None):
        logger.warning("slow %s", "consumer")
    logger.info("after")
    first, second = json_lines(out)
    assert first == {"ts": first["ts"], "level": "warning", "logger": logger.name,
                     "message": "slow consumer", "service": "gateway", "node": "gw-1",
                     "conn": "gw-1.7", "user": "ada"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert "conn" not in second and second["message"] == "after"  # the block restored it


def test_an_exception_is_one_json_line_with_its_traceback_as_exc() -> None:
    logger, out = capture(JsonFormatter("presence"))
    try:
        raise ValueError("bad entry\nsecond line")
    except ValueError:
        logger.exception("job: skipped %s", "x")
    assert len(out.getvalue().splitlines()) == 1
    (line,) = json_lines(out)
    assert line["level"] == "error" and line["message"] == "job: skipped x"
    assert line["exc"].startswith("Traceback") and "ValueError: bad entry" in line["exc"]
    assert "node" not in line  # none was given to the formatter


def test_fields_a_connection_fills_in_later_reach_its_lines() -> None:
    logger, out = capture(JsonFormatter("gateway"))
    fields = {"conn": "gw-1.1"}
    context = contextvars.copy_context()
    context.run(use_log_fields, fields)
    context.run(logger.info, "before connect")
    fields["user"] = "ada"
    context.run(logger.info, "after connect")
    logger.info("elsewhere")
    before, after, elsewhere = json_lines(out)
    assert before["conn"] == "gw-1.1" and "user" not in before
    assert after["conn"] == "gw-1.1" and after["user"] == "ada"
    assert "conn" not in elsewhere
    assert log_fields() == {}


def test_console_line_is_short_with_context_before_a_traceback() -> None:
    logger, out = capture(ConsoleFormatter("sessions"))
    logger.info("started")
    with log_context(conn="gw-1.2", user="bob"):
        try:
            raise KeyError("k")
        except KeyError:
            logger.exception("failed")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} sessions INFO {logger.name}: started",
                        lines[0])
    assert lines[1].endswith(f"sessions ERROR {logger.name}: failed [conn=gw-1.2 user=bob]")
    assert lines[2].startswith("Traceback")


@pytest.mark.parametrize(("environ", "named"), [
    ({"LOG_FORMAT": "yaml"}, "LOG_FORMAT='yaml' is not one of: console, json"),
    ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud' is not one of: debug, info, warning"),
])
def test_an_unknown_setting_stops_the_process_with_one_line(
        environ: dict[str, str], named: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        configure_logging("presence", environ=environ)
    message = str(stopped.value.code)
    assert message.startswith(f"goldwire presence: {named}")
    assert "\n" not in message


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging changes process-wide loggers: put them back after the test."""
    root, worker = logging.getLogger(), logging.getLogger("arq.worker")
    quieted = [logging.getLogger(n) for n in ("arq.jobs", "httpx", "httpcore")]
    saved = (root.handlers[:], root.level, worker.filters[:], [q.level for q in quieted])
    yield
    root.handlers, root.level, worker.filters = saved[0], saved[1], saved[2]
    for logger, level in zip(quieted, saved[3], strict=True):
        logger.setLevel(level)


def arq_line(level: int, func: str) -> logging.LogRecord:
    """A record as arq's worker logs it from `func` (arq gives job lines no logger)."""
    return logging.getLogger("arq.worker").makeRecord(
        "arq.worker", level, "worker.py", 1, "%6.2fs → %s()", (0.01, "gw:presence:cron:x"),
        None, func=func)


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_arq_job_lines_are_debug_lines(
        capsys: pytest.CaptureFixture[str], level: str, shown: bool) -> None:
    configure_logging("presence", "n1", environ={"LOG_FORMAT": "json", "LOG_LEVEL": level})
    worker = logging.getLogger("arq.worker")
    for func in ("run_job", "record_health"):
        worker.handle(arq_line(logging.INFO, func))
    worker.handle(arq_line(logging.INFO, "main"))  # "Starting worker for 2 functions"
    worker.handle(arq_line(logging.WARNING, "run_job"))  # a failed job
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    levels = [line["level"] for line in lines]
    assert levels == (["debug", "debug", "info", "warning"] if shown else ["info", "warning"])
    assert {line["service"] for line in lines} == {"presence"}


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_a_line_per_outgoing_request_only_when_debugging(
        capsys: pytest.CaptureFixture[str], level: str, shown: bool) -> None:
    configure_logging("gateway", environ={"LOG_FORMAT": "json", "LOG_LEVEL": level})
    logging.getLogger("httpx").info('HTTP Request: GET http://127.0.0.1:8001/readyz "200 OK"')
    logging.getLogger("httpcore.connection").debug("connect_tcp.started")
    logging.getLogger("httpx").warning("a warning still shows")
    lines = [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == (3 if shown else 1) and lines[-1] == "a warning still shows"


@pytest.mark.usefixtures("restored_logging")
def test_configuring_again_replaces_its_own_handler_only(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    others = root.handlers[:]
    configure_logging("gateway", environ={})
    configure_logging("gateway", environ={"LOG_FORMAT": "json"})
    assert len(root.handlers) == len(others) + 1 and root.handlers[:-1] == others
    logging.getLogger("uvicorn.error").info("Started server process")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["logger"] == "uvicorn.error"


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[list[Any], dict[str, Any]]:
    """One HTTP request through the middleware in front of `app`, no socket."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await RequestIdMiddleware(app)({"type": "http", "headers": headers}, receive, send)
    return sent, dict(sent[0]["headers"])


async def fields_app(scope: Any, receive: Any, send: Any) -> None:
    body = json.dumps(dict(log_fields())).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def test_a_given_request_id_is_logged_and_echoed() -> None:
    sent, headers = await call(fields_app, [(b"x-request-id", b"abc-123")])
    assert headers[b"x-request-id"] == b"abc-123"
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(sent[1]["body"]) == {"request_id": "abc-123"}
    assert log_fields() == {}


@pytest.mark.parametrize("given", [None, b"has space", b"x" * 129, b""])
async def test_a_missing_or_unfit_request_id_is_made_here(given: bytes | None) -> None:
    sent, headers = await call(fields_app, [] if given is None else [(b"x-request-id", given)])
    made = headers[b"x-request-id"].decode()
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert json.loads(sent[1]["body"]) == {"request_id": made}


async def test_requests_at_once_keep_their_own_ids() -> None:
    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        await fields_app(scope, receive, send)

    results = await asyncio.gather(*(call(slow_app, [(b"x-request-id", b"r%d" % i)])
                                     for i in range(5)))
    assert [json.loads(sent[1]["body"])["request_id"] for sent, _ in results] == [
        f"r{i}" for i in range(5)]
