"""Dashboard pages. Views stay thin: parsing in ``forms``, rules in ``experiments.manage``, numbers in
``experiments.report``, drawing in ``charts``."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from cachetools import TTLCache
from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from experiments.delivery import model_matches
from experiments.manage import (
    ExperimentError,
    create_experiment,
    get_experiment,
    spec_of,
    start_experiment,
    stop_experiment,
    update_experiment,
    validate_spec,
)
from experiments.report import DASHBOARD_METRICS, METRIC_FORMATS, METRIC_LABELS, Report, build_report, report_csv
from experiments.ship import ShipRequest, ship_variant
from experiments.stats.analysis import Engine
from experiments.store.currency import parse_rates, reporting_rates
from experiments.store.experiment_models import INTERLEAVED_VARIANT, PRIMARY_METRICS, Experiment, RankingDefault
from webapp.background import BackgroundSnapshot
from webapp.context import app_services
from webapp.dashboard import auth_users
from webapp.dashboard.blueprint import bp
from webapp.dashboard.charts import (
    LiftRow,
    SeriesPoint,
    format_percent,
    lift_chart,
    outcome_bar,
    progress_bar,
    series_chart,
)
from webapp.dashboard.forms import default_spec, form_values, parse_float, parse_form
from webapp.http import reject_unstorable_form_fields

bp.before_request(auth_users.protect_csrf)  # every state-changing dashboard request needs the CSRF token
bp.before_request(reject_unstorable_form_fields)  # a NUL in a name or hypothesis is a 400, not a database error

REPORT_TTL_SECONDS = 15
_reports_lock = threading.Lock()


def _report_cache() -> TTLCache[tuple[Any, ...], Report]:
    """Per app (tests run several apps in one process); guarded by ``_reports_lock``."""
    extensions = current_app.extensions
    if "dashboard_reports" not in extensions:
        extensions["dashboard_reports"] = TTLCache(maxsize=256, ttl=REPORT_TTL_SECONDS)
    cache: TTLCache[tuple[Any, ...], Report] = extensions["dashboard_reports"]
    return cache


def _rates() -> dict[str, float]:
    settings = app_services().settings
    return reporting_rates(settings.reporting_currency, parse_rates(settings.fx_rates))


def report_for(
    experiment: Experiment,
    *,
    sequential: bool = False,
    fresh: bool = False,
    engine: Engine = "frequentist",
    cuped: bool = False,
) -> Report:
    """The experiment's report, computed at most every few seconds per process (list and page share it)."""
    cache_key = (experiment.key, sequential, engine, cuped)
    with _reports_lock:
        cached = None if fresh else _report_cache().get(cache_key)
    if cached is not None and cached.generated_at >= _aware(experiment.updated_at):
        return cached
    report = build_report(
        app_services().db.scoped(),
        experiment,
        rates=_rates(),
        currency=app_services().settings.reporting_currency.upper(),
        sequential=sequential,
        engine=engine,
        cuped=cuped,
    )
    with _reports_lock:
        _report_cache()[cache_key] = report
    return report


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive UTC, PostgreSQL aware datetimes."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _changed() -> None:
    """After a definition change: searches in this process see it at once, other processes within seconds."""
    invalidate = getattr(app_services().search.resolver, "invalidate", None)
    if callable(invalidate):
        invalidate()
    with _reports_lock:
        _report_cache().clear()


def _actor() -> str:
    user = auth_users.current_user()
    return user.email if user else "unknown"


def _experiment_or_404(key: str) -> Experiment:
    experiment = get_experiment(app_services().db.scoped(), key)
    if experiment is None:
        abort(404, description=f"No experiment with key {key!r}.")
    return experiment


# --- formatting helpers for templates --------------------------------------------------------------------------------


@bp.app_template_filter("metric_value")
def metric_value(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    kind = METRIC_FORMATS.get(metric, "number")
    if kind == "percent":
        return format_percent(value, 2)
    if kind == "money":
        return f"{value:,.2f} {app_services().settings.reporting_currency.upper()}"
    return f"{value:,.3f}"


@bp.app_template_filter("pct")
def pct(value: float | None, digits: int = 1, signed: bool = False) -> str:
    return format_percent(value, digits, signed)


#: Thresholds a shown p-value is read against (alpha, the SRM bar): its rounding must never cross one.
P_THRESHOLDS = (0.05, 0.01, 0.001)


def format_p(value: float) -> str:
    """Two significant digits, more where rounding would cross a threshold (0.00114 is "0.0011", never "0.001";
    0.0496 is "0.0496", never "0.050"); below 0.0001 just "< 0.0001"."""
    if value < 0.0001:
        return "< 0.0001"
    for digits in range(2, 7):
        shown = float(f"{value:.{digits}g}")
        if all((shown < t) == (value < t) for t in P_THRESHOLDS):
            break
    return f"{shown:.{digits}g}"


@bp.app_template_filter("pvalue")
def pvalue(value: float | None) -> str:
    """A p-value for a table cell: ``0.0011``, ``0.046``, ``< 0.0001``."""
    return "–" if value is None else format_p(value)


@bp.app_template_filter("p_text")
def p_text(value: float | None) -> str:
    """A p-value in a sentence: ``p = 0.0011`` or ``p < 0.0001`` (never ``p = < 0.001``)."""
    if value is None:
        return "p not computable"
    shown = format_p(value)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


@bp.app_template_filter("thousands")
def thousands(value: float | int | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


# --- auth ----------------------------------------------------------------------------------------------------------


#: One answer for a wrong email, a wrong password and a locked account (no account enumeration); it tells a
#: locked-out user what to do without saying that this account is the locked one.
LOGIN_FAILED = (
    "Wrong email or password. After several failed attempts an account is locked for {minutes} minutes: "
    "if that may be you, wait and try again, or ask an admin to unlock it."
)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error, status, headers = None, 200, {}
    if request.method == "POST":
        outcome = auth_users.login_attempt(request.form.get("email", ""), request.form.get("password", ""))
        if isinstance(outcome, auth_users.LoginThrottled):
            error = f"Too many sign-in attempts from your network. Wait {outcome.retry_after} seconds and try again."
            status, headers = 429, {"Retry-After": str(outcome.retry_after)}
        elif outcome is not None:
            if not request.args.get("next") and not outcome.has_role("merchandiser"):
                return redirect(url_for("dashboard.ops"))  # ops users have no experiment pages
            return redirect(auth_users._safe_next(request.args.get("next")))
        else:
            minutes = max(1, round(app_services().settings.login_lockout_seconds / 60))
            error, status = LOGIN_FAILED.format(minutes=minutes), 401
    html = render_template("dashboard/login.html", error=error, email=request.form.get("email", ""))
    return html, status, headers


@bp.post("/logout")
def logout() -> Any:
    auth_users.logout()
    return redirect(url_for("dashboard.login"))


# --- experiments ---------------------------------------------------------------------------------------------------


@bp.get("/")
@auth_users.login_required()
def experiment_list() -> Any:
    rows = []
    experiments = app_services().db.scoped().scalars(select(Experiment).order_by(Experiment.created_at.desc())).all()
    order = {"running": 0, "draft": 1, "stopped": 2}
    shipped = {
        key: variant
        for key, variant in app_services()
        .db.scoped()
        .execute(select(RankingDefault.experiment_key, RankingDefault.variant_key).order_by(RankingDefault.id))
    }  # newest last: an experiment shipped twice shows its latest variant
    for experiment in sorted(experiments, key=lambda e: order.get(e.status, 3)):
        report = report_for(experiment) if experiment.status != "draft" else None
        rows.append(
            {
                "experiment": experiment,
                "report": report,
                "headline": report.headline() if report else None,
                "shipped": shipped.get(experiment.key),
            }
        )
    counts = {status: sum(1 for e in experiments if e.status == status) for status in ("running", "draft", "stopped")}
    return render_template("dashboard/list.html", rows=rows, counts=counts, metric_labels=METRIC_LABELS)


def _render_form(
    values: dict[str, Any], errors: dict[str, str], experiment: Experiment | None, status: int = 200
) -> tuple[str, int]:
    return (
        render_template(
            "dashboard/form.html",
            values=values,
            errors=errors,
            experiment=experiment,
            primary_metrics=[(key, METRIC_LABELS[key]) for key in PRIMARY_METRICS],
        ),
        status,
    )


@bp.get("/experiments/new")
@auth_users.login_required()
def experiment_new() -> Any:
    return _render_form(form_values(default_spec()), {}, None)


@bp.post("/experiments/new")
@auth_users.login_required()
def experiment_create() -> Any:
    spec, errors = parse_form(request.form)
    if errors:  # show every problem at once: what could not be read, and what breaks the rules
        errors = {**validate_spec(spec), **errors}
    else:
        db_session = app_services().db.scoped()
        try:
            experiment = create_experiment(db_session, spec, _actor())
            db_session.commit()
        except ExperimentError as exc:
            db_session.rollback()
            errors = exc.errors
        else:
            _changed()
            flash(f"Experiment {experiment.key} created as a draft. Review it, then start it.", "ok")
            return redirect(url_for("dashboard.experiment_detail", key=experiment.key))
    return _render_form(form_values(spec), errors, None, 422)


@bp.get("/experiments/<key>/edit")
@auth_users.login_required()
def experiment_edit(key: str) -> Any:
    experiment = _experiment_or_404(key)
    return _render_form(form_values(spec_of(experiment)), {}, experiment)


@bp.post("/experiments/<key>/edit")
@auth_users.login_required()
def experiment_update(key: str) -> Any:
    experiment = _experiment_or_404(key)
    spec, errors = parse_form(request.form, key=experiment.key)
    if errors:
        errors = {**validate_spec(spec), **errors}
    else:
        db_session = app_services().db.scoped()
        try:
            changes = update_experiment(db_session, experiment, spec, _actor())
            db_session.commit()
        except ExperimentError as exc:
            db_session.rollback()
            errors = exc.errors
            experiment = _experiment_or_404(key)
        else:
            _changed()
            flash(f"Saved: {', '.join(sorted(changes))}." if changes else "Nothing changed.", "ok")
            return redirect(url_for("dashboard.experiment_detail", key=key))
    return _render_form(form_values(spec), errors, experiment, 422)


def _transition(key: str, action: Any, message: str) -> Any:
    experiment = _experiment_or_404(key)
    db_session = app_services().db.scoped()
    try:
        action(db_session, experiment, _actor())
        db_session.commit()
    except ExperimentError as exc:
        db_session.rollback()
        flash(" ".join(exc.errors.values()), "error")
    else:
        _changed()
        flash(message.format(key=key), "ok")
    return redirect(url_for("dashboard.experiment_detail", key=key))


@bp.post("/experiments/<key>/start")
@auth_users.login_required()
def experiment_start(key: str) -> Any:
    return _transition(key, start_experiment, "Experiment {key} is running: new shoppers are being assigned.")


@bp.get("/experiments/<key>/stop")
@auth_users.login_required()
def experiment_stop_confirm(key: str) -> Any:
    """Stopping is final, so it takes a second step: this page asks for the experiment's key."""
    return render_template("dashboard/stop_confirm.html", experiment=_experiment_or_404(key), error=None)


@bp.post("/experiments/<key>/stop")
@auth_users.login_required()
def experiment_stop(key: str) -> Any:
    """Stops only with ``confirm_key`` equal to the key (checked here, not in the browser); else the page again."""
    if (request.form.get("confirm_key") or "").strip().lower() != key:
        experiment = _experiment_or_404(key)
        error = f"Type {key} exactly to stop the experiment; it is still {experiment.status}."
        return render_template("dashboard/stop_confirm.html", experiment=experiment, error=error), 422
    return _transition(key, stop_experiment, "Experiment {key} stopped: everyone now gets control.")


def _lift_rows(report: Report) -> list[LiftRow]:
    rows = []
    for metric in DASHBOARD_METRICS:
        for comparison in (report.analysis or {}).get("comparisons", []):
            if comparison["metric"] != metric:
                continue
            relative = comparison["relative"] or {}
            interval = comparison.get("interval") or {}
            rows.append(
                LiftRow(
                    f"{METRIC_LABELS[metric].split(' (')[0]} · {comparison['variant']}",  # the chart's short label
                    relative.get("estimate"),
                    interval.get("lower"),
                    interval.get("upper"),
                    comparison["verdict"],
                )
            )
    return rows


def _series_charts(report: Report) -> list[tuple[str, Any]]:
    charts = []
    for variant in report.variants[1:]:
        points = []
        for point in report.series:
            lift = point["lifts"].get(variant)
            points.append(
                SeriesPoint(
                    dt.date.fromisoformat(point["day"]),
                    lift and lift["estimate"],
                    lift and lift["ci_lower"],
                    lift and lift["ci_upper"],
                )
            )
        title = f"{METRIC_LABELS[report.primary_metric]}: cumulative lift of {variant} (always-valid 95 % band)"
        charts.append((variant, series_chart(points, title=title)))
    return charts


def _interleaving_chart(report: Report) -> Any:
    points = []
    for point in (report.interleaving or {}).get("series", []):
        ci = point["b_win_share_ci"]
        points.append(
            SeriesPoint(
                dt.date.fromisoformat(point["day"]),
                point["b_win_share"],
                ci[0] if ci else None,
                ci[1] if ci else None,
            )
        )
    return series_chart(
        points,
        width=1240,
        height=300,
        title="Cumulative share of decisive impressions won by B (95 % CI)",
        baseline=0.5,
        percent_of_baseline=False,
        limits=(0.0, 1.0),  # a share of impressions: the axis never reaches 120 %
    )


ENGINES = ("frequentist", "bayesian")


def _analysis_mode() -> dict[str, Any]:
    """``sequential``, ``engine`` and ``cuped`` from the query string; an unknown engine is a 400 naming it."""
    engine = request.args.get("engine", "frequentist")
    if engine not in ENGINES:
        abort(400, description=f"engine must be one of {', '.join(ENGINES)}; got {engine!r}.")
    return {
        "sequential": request.args.get("sequential") == "1",
        "engine": engine,
        "cuped": request.args.get("cuped") == "1",
    }


@bp.get("/experiments/<key>")
@auth_users.login_required()
def experiment_detail(key: str) -> Any:
    experiment = _experiment_or_404(key)
    mode = _analysis_mode()
    sequential = mode["sequential"]
    report = report_for(experiment, **mode)
    context: dict[str, Any] = {
        "mode": mode,
        "experiment": experiment,
        "report": report,
        "sequential": sequential,
        "metric_labels": METRIC_LABELS,
        "dashboard_metrics": DASHBOARD_METRICS,
        "audit": list(reversed(experiment.audit))[:50],
        "headline": report.headline(),
        "currency": report.currency,
    }
    if report.interleaving is not None:
        total = report.interleaving["total"]
        context["outcome_bar"] = outcome_bar(total["wins_a"], total["ties"], total["wins_b"])
        context["interleaving_chart"] = _interleaving_chart(report)
    else:
        context["lift_chart"] = lift_chart(_lift_rows(report), title="Relative lift vs control (95 % CI)")
        context["series_charts"] = _series_charts(report)
        size = report.sample_size
        context["progress_bar"] = progress_bar(size.fraction if size else None)
        context["comparisons"] = {
            (c["metric"], c["variant"]): c for c in (report.analysis or {}).get("comparisons", [])
        }
        context["language_comparisons"] = {
            language: {(c["metric"], c["variant"]): c for c in analysis["comparisons"]}
            for language, analysis in report.languages.items()
        }
    return render_template("dashboard/experiment.html", **context)


def reasons_to_doubt(report: Report, variant: str) -> list[str]:
    """What on the report says not to ship ``variant`` on these numbers (shipping then needs an acknowledgement)."""
    reasons = []
    if (report.analysis or {}).get("srm", {}).get("flagged"):
        reasons.append("Sample ratio mismatch: units are not split as configured, so no result can be trusted.")
    for delivery in report.delivery_problems:
        if delivery["variant"] in (variant, report.variants[0], INTERLEAVED_VARIANT):
            reasons.append(f"{delivery['variant']} was not delivered as configured: {' '.join(delivery['problems'])}.")
    for flag in report.guardrail_flags:
        if flag["variant"] == variant:
            reasons.append(f"Guardrail: {flag['label']} is significantly worse in {variant}.")
    for guard in report.guardrails_untestable:
        if guard["variant"] == variant:
            reasons.append(f"Guardrail: {guard['label']} cannot be tested yet ({guard['reason']}).")
    if report.interleaving is not None:
        total = report.interleaving["total"]
        if variant == report.variants[1] and total["winner"] != "B":
            reasons.append(f"Shoppers did not significantly prefer {variant} (team B) in the interleaving test.")
        if variant == report.variants[0] and total["winner"] != "A":
            reasons.append(f"Shoppers did not significantly prefer {variant} (team A) in the interleaving test.")
        reasons.append("Interleaving measures click preference, not revenue: confirm with an A/B test before shipping.")
        return reasons
    if variant != report.variants[0]:
        headline = next(
            (
                c
                for c in (report.analysis or {}).get("comparisons", [])
                if c["metric"] == report.primary_metric and c["variant"] == variant
            ),
            None,
        )
        if headline is None or headline["verdict"] != "better":
            label = METRIC_LABELS.get(report.primary_metric, report.primary_metric)
            reasons.append(f"{variant} is not a significant win on the primary metric ({label}).")
    return reasons


def model_loaded_nowhere(report: Report, variant: Any) -> str | None:
    """Why ``variant`` cannot be shipped at all: it reranks with a named model that served none of its searches
    (no worker or web process has it), so shipping it would serve everyone the fallback. None when it can."""
    if not variant.rerank or not variant.model:
        return None
    delivery = next((d for d in report.delivery if d["variant"] == variant.key), None)
    if delivery is None or not delivery["reported"]:
        return None
    if any(model_matches(variant.model, s["model"]) and s["kind"] == "cross-encoder" for s in delivery["scorers"]):
        return None
    return (
        f"{variant.key} reranks with {variant.model}, which served none of its {delivery['reported']:,} searches: "
        "no worker or web process has that model loaded, so shipping it would serve everyone the fallback. "
        "Load the model (and check the delivery table) before shipping."
    )


def _ship_page(
    experiment: Experiment, variant_key: str, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    """The confirmation page: the ranking that would serve everyone and the report's reasons for doubt."""
    variant = next((v for v in experiment.variants if v.key == variant_key), None)
    if variant is None:
        abort(404, description=f"No variant {variant_key!r} in {experiment.key}.")
    report = report_for(experiment)
    reasons = reasons_to_doubt(report, variant_key)
    blocked = model_loaded_nowhere(report, variant)
    html = render_template(
        "dashboard/ship.html",
        experiment=experiment,
        variant=variant,
        reasons=reasons,
        values=values,
        errors=errors,
        blocked=blocked,
    )
    return html, status


@bp.get("/experiments/<key>/ship")
@auth_users.login_required()
def experiment_ship_confirm(key: str) -> Any:
    experiment = _experiment_or_404(key)
    if experiment.status == "draft":
        abort(409, description="A draft has no results to ship.")
    return _ship_page(experiment, request.args.get("variant", ""), {"confirm_key": "", "note": ""}, {})


@bp.post("/experiments/<key>/ship")
@auth_users.login_required()
def experiment_ship(key: str) -> Any:
    """Server-side confirmation: the typed key (and, when the report has doubts, their acknowledgement)."""
    experiment = _experiment_or_404(key)
    values = {name: request.form.get(name, "") for name in ("variant", "confirm_key", "note")}
    report = report_for(experiment, fresh=True)
    reasons = reasons_to_doubt(report, values["variant"])
    target = next((v for v in experiment.variants if v.key == values["variant"]), None)
    blocked = model_loaded_nowhere(report, target) if target is not None else None
    if blocked:  # no acknowledgement ships a ranking that nothing can serve
        return _ship_page(experiment, values["variant"], values, {"model": blocked}, 422)
    ship = ShipRequest(
        values["variant"], values["confirm_key"], values["note"], request.form.get("acknowledged") == "yes"
    )
    db_session = app_services().db.scoped()
    try:
        ship_variant(db_session, experiment, ship, _actor(), reasons_to_doubt=reasons)
        db_session.commit()
    except ExperimentError as exc:
        db_session.rollback()
        experiment = _experiment_or_404(key)
        if "variant" in exc.errors or "status" in exc.errors:
            abort(422, description=" ".join(exc.errors.values()))
        return _ship_page(experiment, values["variant"], values, exc.errors, 422)
    _changed()
    flash(f"Shipped {ship.variant}: its ranking now serves all traffic outside running experiments.", "ok")
    return redirect(url_for("dashboard.experiment_detail", key=key))


@bp.get("/experiments/<key>/export.csv")
@auth_users.login_required()
def experiment_csv(key: str) -> Response:
    experiment = _experiment_or_404(key)
    report = report_for(experiment, **_analysis_mode())
    stamp = report.generated_at.strftime("%Y%m%d-%H%M")
    return Response(
        report_csv(report),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{experiment.key}-{stamp}.csv"'},
    )


@bp.app_template_global("background_work")
def background_work() -> BackgroundSnapshot | None:
    """The work this process still does in the background (the demo's simulated traffic), for base.html's notice:
    experiment numbers are still filling in while it runs."""
    return app_services().background.current()


@bp.app_template_global("language_label")
def language_label(code: str) -> str:
    from shoprank.languages import language_name

    if code == "unknown":
        return "Unknown"
    name = language_name(code, "en")
    return f"{name} ({code})" if name != code else code


@bp.app_template_global("rerank_depth_label")
def rerank_depth_label(depth: int | None, top_k: object = None, rerank: bool = True) -> str:
    """A variant's maximum rerank depth as merchandisers read it: unset shows the deployment's value, since that
    (``SHOPRANK_RERANK_MAX_DEPTH``) is what its searches get and it differs between deployments; with the
    variant's ``top_k`` the value it can really reach (no deeper than its candidates); ``–`` when the variant
    does not rerank at all."""
    if not rerank:
        return "–"
    if depth is not None:
        return str(depth)
    default = app_services().settings.rerank_max_depth
    if isinstance(top_k, int) and top_k < default:  # a form re-shown after an error may hold text: ignored
        return f"{top_k} (default {default}, top-K {top_k})"
    return f"default ({default})"


def _form_float(name: str, default: float, low: float, high: float, errors: dict[str, str]) -> float:
    value = parse_float(request.args, name, default, errors)
    if name not in errors and not low <= value <= high:
        errors[name] = f"must be between {low:g} and {high:g}"
        return default
    return value


@bp.get("/calculator")
@auth_users.login_required()
def calculator() -> Any:
    """Sample size for a conversion-style rate, and the MDE a given number of shoppers can detect."""
    from experiments.stats import minimum_detectable_effect, required_sample_size_proportion

    errors: dict[str, str] = {}
    values = {
        "baseline": _form_float("baseline", 5.0, 0.01, 99.99, errors),
        "mde": _form_float("mde", 5.0, 0.1, 500.0, errors),
        "alpha": _form_float("alpha", 5.0, 0.1, 20.0, errors),
        "power": _form_float("power", 80.0, 50.0, 99.9, errors),
        "variants": int(_form_float("variants", 2, 2, 6, errors)),
        "units": int(_form_float("units", 10000, 10, 1e9, errors)),
    }
    result: dict[str, Any] = {}
    if not errors:
        rate, comparisons = values["baseline"] / 100, int(values["variants"]) - 1
        try:
            size = required_sample_size_proportion(
                baseline_rate=rate,
                mde=values["mde"] / 100,
                alpha=values["alpha"] / 100,
                power=values["power"] / 100,
                num_comparisons=comparisons,
            )
            result["per_variant"] = max(size.n_control, size.n_treatment)
            result["total"] = result["per_variant"] * values["variants"]
        except ValueError as exc:
            errors["mde"] = str(exc)
        result["detectable"] = minimum_detectable_effect(
            baseline_mean=rate,
            baseline_variance=rate * (1 - rate),
            n_control=values["units"],
            n_treatment=values["units"],
            alpha=values["alpha"] / 100,
            power=values["power"] / 100,
            num_comparisons=comparisons,
        )
    return render_template("dashboard/calculator.html", values=values, errors=errors, result=result)
