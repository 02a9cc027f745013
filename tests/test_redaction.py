"""No secrets in logs: the redaction filter on real handlers (a stream handler and pytest's caplog handler)."""

from __future__ import annotations

import io
import logging

import pytest

from shoprank.redaction import MASK, install_redaction, redact

SECRET_KEY = "k3y-" + "x9" * 20


@pytest.fixture
def stream_logger():
    """A logger with its own real StreamHandler, the filter installed the way the CLI does it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    install_redaction(logger, secrets=(SECRET_KEY,))
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("Authorization: Bearer srk_abcdefghijklmnop1234", "srk_abcdefghijklmnop1234"),
        ("headers={'Authorization': 'Bearer eyJhbGciOi.payload.sig'}", "eyJhbGciOi.payload.sig"),
        ("calling with key srk_Zz9-_abcdefgh", "Zz9-_abcdefgh"),
        ("form: email=a@b.c&password=hunter2hunter2&csrf_token=tok123", "hunter2hunter2"),
        ('{"password": "s3cr3t pass", "email": "a@b.c"}', "s3cr3t"),
        ("connecting to postgresql+psycopg://shop:db-p4ss@db:5432/shop", "db-p4ss"),
        ("broker redis://:r3dis-pw@redis:6379/0 unreachable", "r3dis-pw"),
        (f"config secret is {SECRET_KEY}", SECRET_KEY),
        ("SHOPRANK_SECRET_KEY=anything-at-all-here", "anything-at-all-here"),
    ],
)
def test_secrets_are_masked_in_written_logs(stream_logger, message, secret):
    logger, stream = stream_logger
    logger.info("event: %s", message)
    written = stream.getvalue()
    assert secret not in written and MASK in written, written


def test_exception_tracebacks_are_masked(stream_logger):
    logger, stream = stream_logger
    try:
        raise RuntimeError("could not connect to redis://:tr4ceback-pw@cache:6379/0")
    except RuntimeError:
        logger.exception("startup failed with token=abc123secret")
    written = stream.getvalue()
    assert "tr4ceback-pw" not in written and "abc123secret" not in written
    assert "RuntimeError" in written and "Traceback" in written


def test_root_handlers_mask_records_from_child_loggers(caplog):
    """caplog's handler sits on the root logger, like the CLI's basicConfig handler."""
    install_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("webapp.some.module").info("Authorization: Bearer srk_childloggertoken99")
    assert "srk_childloggertoken99" not in caplog.text and MASK in caplog.text


def test_ordinary_messages_are_untouched():
    text = "search q='wireless headphones' took 12 ms; 20 results; user merch@example.com signed in"
    assert redact(text) == text


def test_the_cli_installs_redaction_on_the_root_handlers():
    from click.testing import CliRunner

    from shopctl.cli import cli
    from shoprank.redaction import RedactionFilter

    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        CliRunner().invoke(cli, ["--help"], catch_exceptions=False)  # --help exits before the group callback
        CliRunner().invoke(cli, ["user", "--help"], catch_exceptions=False)  # the group callback runs first
        assert any(isinstance(f, RedactionFilter) for f in handler.filters)
    finally:
        root.removeHandler(handler)


def test_create_app_installs_redaction(shop_services):
    from shoprank.redaction import RedactionFilter
    from webapp import create_app

    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        create_app(services=shop_services)
        assert any(isinstance(f, RedactionFilter) for f in handler.filters)
        root.warning("leak %s", shop_services.settings.secret_key)
        assert shop_services.settings.secret_key not in handler.stream.getvalue()
    finally:
        root.removeHandler(handler)
