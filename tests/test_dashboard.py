"""Merchandiser dashboard (SQLite and PostgreSQL): login, roles, CSRF, forms with validation, start/stop,
the experiment page with simulated traffic (charts, numbers, SRM banner, per-language table) and CSV export."""

from __future__ import annotations

import csv
import io
import re
import uuid
from html.parser import HTMLParser

import pytest

from experiments.manage import get_experiment, ranking_config
from experiments.store import ingest_events, parse_events
from experiments.store.exposures import log_exposure
from shopctl.simulator import FlaskTransport, SimulationConfig, Simulator
from shoprank.users import create_user
from tests.experiment_support import reset_experiments

PASSWORD = "correct horse battery"


@pytest.fixture
def dashboard(shop_services, shop_app):
    reset_experiments(shop_services)
    with shop_services.db.session() as session:
        create_user(session, "merch@example.com", PASSWORD, "merchandiser")
        create_user(session, "ops@example.com", PASSWORD, "ops")
    yield shop_app
    reset_experiments(shop_services)


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the form"
    return match.group(1)


def _login(client, email: str = "merch@example.com", password: str = PASSWORD):
    token = _token(client.get("/dashboard/login").get_data(as_text=True))
    return client.post("/dashboard/login", data={"email": email, "password": password, "csrf_token": token})


def _form(key: str, **overrides) -> dict[str, str]:
    data = {
        "key": key,
        "name": f"Dashboard {key}",
        "hypothesis": "Reranking lifts CTR",
        "kind": "ab",
        "primary_metric": "ctr",
        "target_mde": "10",
        "coverage": "100",
        "variants-0-key": "control",
        "variants-0-weight": "1",
        "variants-0-first_stage_top_k": "100",
        "variants-1-key": "rerank",
        "variants-1-weight": "1",
        "variants-1-rerank": "on",
        "variants-1-first_stage_top_k": "50",
    }
    data.update(overrides)
    return data


def test_login_required_roles_and_passwords(dashboard):
    client = dashboard.test_client()
    response = client.get("/dashboard/")
    assert response.status_code == 302 and "/dashboard/login" in response.headers["Location"]
    assert _login(client, password="wrong password!").status_code == 401
    assert _login(client, email="nobody@example.com").status_code == 401
    ops = dashboard.test_client()
    assert _login(ops, email="ops@example.com").status_code == 302
    assert ops.get("/dashboard/").status_code == 403
    response = _login(client)
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard/")
    assert client.get("/dashboard/").status_code == 200
    # an attacker-supplied next= cannot send the user off-site
    other = dashboard.test_client()
    token = _token(other.get("/dashboard/login").get_data(as_text=True))
    redirect = other.post(
        "/dashboard/login?next=//evil.example/x",
        data={"email": "merch@example.com", "password": PASSWORD, "csrf_token": token},
    )
    assert redirect.headers["Location"].endswith("/dashboard/")


def test_every_form_needs_the_csrf_token(dashboard):
    client = dashboard.test_client()
    assert client.post("/dashboard/login", data={"email": "merch@example.com", "password": PASSWORD}).status_code == 400
    _login(client)
    assert client.post("/dashboard/experiments/new", data=_form("nocsrf")).status_code == 400
    bad = _form("badcsrf", csrf_token="forged")
    assert client.post("/dashboard/experiments/new", data=bad).status_code == 400
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    assert client.post("/dashboard/experiments/new", data=_form("withcsrf", csrf_token=token)).status_code == 302
    assert client.post("/dashboard/logout").status_code == 400
    assert client.post("/dashboard/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/dashboard/").status_code == 302  # signed out


def test_create_validate_start_edit_stop(dashboard, shop_services):
    client = dashboard.test_client()
    _login(client)
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    invalid = client.post(
        "/dashboard/experiments/new",
        data=_form("Bad Key", csrf_token=token, coverage="150", **{"variants-1-weight": "abc"}),
    )
    html = invalid.get_data(as_text=True)
    assert invalid.status_code == 422 and "lower-case letters" in html and "not a number" in html
    created = client.post("/dashboard/experiments/new", data=_form("flow", csrf_token=token))
    assert created.status_code == 302 and created.headers["Location"].endswith("/dashboard/experiments/flow")
    page = client.get("/dashboard/experiments/flow").get_data(as_text=True)
    assert "draft" in page and "Start experiment" in page
    assert client.post("/dashboard/experiments/flow/start", data={"csrf_token": token}).status_code == 302
    assert shop_services.search.resolver.snapshot().running[0].definition.key == "flow"
    edit = client.get("/dashboard/experiments/flow/edit").get_data(as_text=True)
    assert "only the name, hypothesis" in edit
    frozen = client.post(
        "/dashboard/experiments/flow/edit", data=_form("flow", csrf_token=token, **{"variants-1-weight": "2"})
    )
    assert frozen.status_code == 422 and "cannot change while the experiment is running" in frozen.get_data(
        as_text=True
    )
    renamed = client.post("/dashboard/experiments/flow/edit", data=_form("flow", csrf_token=token, name="Renamed"))
    assert renamed.status_code == 302
    assert client.post("/dashboard/experiments/flow/stop", data={"csrf_token": token}).status_code == 422  # unconfirmed
    assert (
        client.post("/dashboard/experiments/flow/stop", data={"csrf_token": token, "confirm_key": "flow"}).status_code
        == 302
    )
    page = client.get("/dashboard/experiments/flow").get_data(as_text=True)
    assert "Renamed" in page and "stopped" in page
    assert page.count("by merch@example.com") == 4  # created, started, updated, stopped
    listing = client.get("/dashboard/").get_data(as_text=True)
    assert "Renamed" in listing and "0 running · 0 draft · 1 stopped" in listing


class _FormFields(HTMLParser):
    """What a browser would submit for the page's form: inputs (checked boxes only), selects, textareas."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and "name" in a and (a.get("type") != "checkbox" or "checked" in a):
            self.fields[a["name"]] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a.get("name")
            self.fields[self._textarea or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data


def _form_fields(html: str) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(html)
    return parser.fields


def _depths(shop_services, key: str) -> list[int | None]:
    with shop_services.db.session() as session:
        return [v.rerank_max_depth for v in get_experiment(session, key).variants]


def test_passage_token_budget_round_trips_through_the_form_and_bad_ones_are_422(dashboard, shop_services):
    client = dashboard.test_client()
    _login(client)
    new = client.get("/dashboard/experiments/new").get_data(as_text=True)
    token = _token(new)
    assert "Passage tokens" in new
    for bad, message in (("8", "from 16 to 512"), ("4096", "from 16 to 512"), ("abc", "whole number")):
        invalid = client.post(
            "/dashboard/experiments/new",
            data=_form("budget", csrf_token=token, **{"variants-1-passage_tokens": bad}),
        )
        html = invalid.get_data(as_text=True)
        assert invalid.status_code == 422 and "variants[1].passage_tokens" in html and message in html, bad
    created = client.post(
        "/dashboard/experiments/new",
        data=_form("budget", csrf_token=token, **{"variants-1-passage_tokens": "128"}),
    )
    assert created.status_code == 302
    with shop_services.db.session() as session:
        variants = get_experiment(session, "budget").variants
        assert [v.passage_tokens for v in variants] == [None, 128]
        assert [ranking_config(v).passage_tokens for v in variants] == [None, 128]
    edit = _form_fields(client.get("/dashboard/experiments/budget/edit").get_data(as_text=True))
    assert edit["variants-0-passage_tokens"] == "" and edit["variants-1-passage_tokens"] == "128"


def test_max_rerank_depth_round_trips_through_the_form(dashboard, shop_services):
    client = dashboard.test_client()
    _login(client)
    default = f"default ({shop_services.settings.rerank_max_depth})"
    new = client.get("/dashboard/experiments/new").get_data(as_text=True)
    token = _token(new)
    assert f'placeholder="{default}"' in new and "Max rerank depth" in new
    for bad, message in (("500", "first-stage top-K (50)"), ("0", "first-stage top-K (50)"), ("abc", "whole number")):
        invalid = client.post(
            "/dashboard/experiments/new",
            data=_form("depth", csrf_token=token, **{"variants-1-rerank_max_depth": bad}),
        )
        html = invalid.get_data(as_text=True)
        assert invalid.status_code == 422 and "variants[1].rerank_max_depth" in html and message in html, bad
    created = client.post(
        "/dashboard/experiments/new",
        data=_form("depth", csrf_token=token, **{"variants-1-rerank_max_depth": "20", "variants-0-rerank": "on"}),
    )
    assert created.status_code == 302
    assert _depths(shop_services, "depth") == [None, 20]
    page = client.get("/dashboard/experiments/depth").get_data(as_text=True)
    assert re.findall(r'class="num rerank-depth">([^<]+)<', page) == [default, "20"]
    edit = _form_fields(client.get("/dashboard/experiments/depth/edit").get_data(as_text=True))
    assert edit["variants-0-rerank_max_depth"] == "" and edit["variants-1-rerank_max_depth"] == "20"
    edit["variants-0-rerank_max_depth"] = "30"  # a draft may change it
    assert client.post("/dashboard/experiments/depth/edit", data=edit).status_code == 302
    assert _depths(shop_services, "depth") == [30, 20]

    assert client.post("/dashboard/experiments/depth/start", data={"csrf_token": token}).status_code == 302
    running = client.get("/dashboard/experiments/depth/edit").get_data(as_text=True)
    assert '<input type="hidden" name="variants-1-rerank_max_depth" value="20">20' in running
    fields = _form_fields(running)
    renamed = client.post("/dashboard/experiments/depth/edit", data={**fields, "name": "Depth renamed"})
    assert renamed.status_code == 302  # the hidden depths came back unchanged, so only the name changed
    assert _depths(shop_services, "depth") == [30, 20]
    deeper = client.post("/dashboard/experiments/depth/edit", data={**fields, "variants-1-rerank_max_depth": "40"})
    assert deeper.status_code == 422 and "cannot change while the experiment is running" in deeper.get_data(
        as_text=True
    )
    assert _depths(shop_services, "depth") == [30, 20]

    # The delivery panel puts each variant's cap next to the depth its searches were actually served at.
    served = [("control", 30), ("control", 28), ("rerank", 20), ("rerank", 12)]
    events = [
        {
            "id": uuid.uuid4().hex,
            "type": "impression",
            "unit": f"depth-unit-{i}",
            "experiment": "depth",
            "variant": variant,
            "query": "q",
            "items": ["sku-1"],
            "rerank_status": "ok",
            "rerank_depth": depth,
            "scorer": {"kind": "cross-encoder", "model_id": "x"},
        }
        for i, (variant, depth) in enumerate(served)
    ]
    with shop_services.db.session() as session:
        ingest_events(session, parse_events(events))
    page = client.get("/dashboard/experiments/depth").get_data(as_text=True)
    cells = re.findall(r'<tr data-variant="(\w+)".*?<td class="num">([^<]*<span class="muted">.*?)</td>', page, re.S)
    rows = {variant: re.sub(r"<[^>]+>", "", cell) for variant, cell in cells}  # the cell's text
    assert rows == {"control": "30 (28–30) of 100, max 30", "rerank": "20 (12–20) of 50, max 20"}


def test_experiment_page_with_simulated_traffic(dashboard, shop_services):
    client = dashboard.test_client()
    _login(client)
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    client.post("/dashboard/experiments/new", data=_form("sim", csrf_token=token))
    client.post("/dashboard/experiments/sim/start", data={"csrf_token": token})
    config = SimulationConfig(users=60, ctr_lift=0.5, cvr_lift=0.3, days=3, seed=3, results_per_page=5)
    result = Simulator(FlaskTransport(dashboard), config).run()
    assert result.experiments["sim"] == 60 and set(result.variants) == {"control", "rerank"}

    page = client.get("/dashboard/experiments/sim")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'class="chart lift-chart"' in html and 'class="chart series-chart"' in html
    assert 'class="band"' in html and '<circle class="point"' in html
    assert 'id="summary-table"' in html and 'id="language-table"' in html
    total = re.search(r'id="total-units">([\d,]+)<', html).group(1)
    assert int(total.replace(",", "")) == 60
    assert "srm-banner" not in html
    for metric in ("ctr", "conversion_rate", "revenue_per_unit"):
        assert f'data-metric="{metric}" data-variant="rerank"' in html
    sequential = client.get("/dashboard/experiments/sim?sequential=1").get_data(as_text=True)
    assert "always-valid confidence sequences" in sequential

    export = client.get("/dashboard/experiments/sim/export.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    overall = [r for r in rows if r["segment"] == "all"]
    assert {r["variant"] for r in overall} == {"control", "rerank"}
    assert sum(int(r["units"]) for r in overall if r["metric"] == "ctr") == 60
    assert any(r["segment"].startswith("language:") for r in rows)


def test_srm_banner_when_units_are_not_split_as_configured(dashboard, shop_services):
    client = dashboard.test_client()
    _login(client)
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    client.post("/dashboard/experiments/new", data=_form("skewed", csrf_token=token))
    client.post("/dashboard/experiments/skewed/start", data={"csrf_token": token})
    with shop_services.db.session() as session:
        for i in range(1300):
            log_exposure(session, experiment="skewed", unit_id=f"s{i}", variant="control" if i < 750 else "rerank")
    html = client.get("/dashboard/experiments/skewed").get_data(as_text=True)
    assert 'id="srm-banner"' in html and "do not act on these results" in html
    # issue 15: exact wording, never "(χ² p = < 0.001 < 0.001)"
    assert "(χ² test p &lt; 0.0001, below the 0.001 threshold)" in html and "p = &lt;" not in html
    assert "SRM detected · χ² p &lt; 0.0001" in html
    assert "SRM" in client.get("/dashboard/").get_data(as_text=True)


def test_sample_size_calculator_agrees_with_statsmodels(dashboard):
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    client = dashboard.test_client()
    _login(client)
    html = client.get("/dashboard/calculator?baseline=5&mde=10&alpha=5&power=80&variants=2&units=20000").get_data(
        as_text=True
    )
    shown = int(re.search(r'id="per-variant">([\d,]+)<', html).group(1).replace(",", ""))
    # statsmodels with Cohen's h is an approximation of the same two-proportion power: within 1 %
    effect = proportion_effectsize(0.055, 0.05)
    reference = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    assert abs(shown - reference) / reference < 0.01
    assert 'id="detectable"' in html
    bad = client.get("/dashboard/calculator?baseline=abc").get_data(as_text=True)
    assert "is not a number" in bad


def test_rerank_depth_labels_say_what_a_variant_can_really_reach(dashboard):
    from webapp.dashboard.views import rerank_depth_label

    with dashboard.app_context():
        default = dashboard.extensions["shoprank"].settings.rerank_max_depth
        assert rerank_depth_label(20, 50) == "20"
        assert rerank_depth_label(None) == f"default ({default})"
        assert rerank_depth_label(None, default + 5) == f"default ({default})"
        assert rerank_depth_label(None, 5) == f"5 (default {default}, top-K 5)"  # no deeper than its candidates
        assert rerank_depth_label(None, "5") == f"default ({default})"  # form text is not a number yet
        assert rerank_depth_label(20, 50, rerank=False) == "–"  # a first-stage-only variant has no depth


# --- issue 22 item 1: extreme stored weights never break a page; the form refuses them -----------------------------


def get_experiment_status(services, key: str) -> str:
    with services.db.session() as session:
        experiment = get_experiment(session, key)
        assert experiment is not None
        return experiment.status


@pytest.mark.parametrize("weights", [(1e308, 1e308), (1e308, 5e-324)])
def test_extreme_stored_weights_never_500_any_view(dashboard, shop_services, weights):
    from experiments.store.experiment_models import ExperimentVariant

    client = dashboard.test_client()
    _login(client)
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    client.post("/dashboard/experiments/new", data=_form("huge", csrf_token=token))
    client.post("/dashboard/experiments/huge/start", data={"csrf_token": token})
    with shop_services.db.session() as session:  # as an older version or a direct SQL edit could leave them
        for variant in session.query(ExperimentVariant).all():
            variant.weight = weights[0] if variant.key == "control" else weights[1]
    assert get_experiment_status(shop_services, "huge") == "running"
    with shop_services.db.session() as session:
        for i in range(40):
            log_exposure(session, experiment="huge", unit_id=f"h{i}", variant="control" if i % 2 else "rerank")
    for path in ("/dashboard/", "/dashboard/experiments/huge", "/dashboard/experiments/huge/export.csv"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    client.post("/dashboard/experiments/huge/stop", data={"csrf_token": token})
    for path in ("/dashboard/", "/dashboard/experiments/huge", "/dashboard/experiments/huge/export.csv",
                 "/dashboard/experiments/huge/ship?variant=rerank"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("weight", ["1e308", "5e-324", "1e7", "0.0000001"])
def test_form_refuses_weights_outside_the_bounds_naming_the_field(dashboard, weight):
    client = dashboard.test_client()
    _login(client)
    token = _token(client.get("/dashboard/experiments/new").get_data(as_text=True))
    form = _form("bounded", csrf_token=token, **{"variants-1-weight": weight})
    page = client.post("/dashboard/experiments/new", data=form)
    assert page.status_code in (400, 422, 200)
    html = page.get_data(as_text=True)
    assert "between" in html and "weight" in html
    assert client.get("/dashboard/experiments/bounded").status_code == 404
