"""The experiment form: HTML form fields ↔ :class:`experiments.manage.ExperimentSpec`.

Parsing only converts types and reports what cannot be read (``"abc"`` as a weight); the rules (ranges,
uniqueness, status) live in ``experiments.manage`` so the CLI and the tests enforce the same ones. Percentages
are entered as percent (coverage 50 = 0.5). The form always shows ``VARIANT_ROWS`` variant rows; a row with an
empty key is ignored, so adding an arm needs no JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from experiments.manage import ExperimentSpec, VariantSpec

VARIANT_ROWS = 4


def parse_float(
    form: Mapping[str, str], name: str, default: float, errors: dict[str, str], *, scale: float = 1.0
) -> float:
    raw = (form.get(name) or "").strip().replace(",", ".").rstrip("%").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        errors[name] = f"{raw[:20]!r} is not a number"
        return default
    if not math.isfinite(value):
        errors[name] = "must be a finite number"
        return default
    return value / scale


def _int(form: Mapping[str, str], name: str, default: int, errors: dict[str, str]) -> int:
    raw = (form.get(name) or "").strip()
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        errors[name] = f"{raw[:20]!r} is not a whole number"
        return default


def _optional_int(form: Mapping[str, str], name: str, errors: dict[str, str]) -> int | None:
    """An empty field means "not set" (the deployment default decides), not 0."""
    if not (form.get(name) or "").strip():
        return None
    value = _int(form, name, 0, errors)
    return None if name in errors else value


def _list(raw: str | None, *, upper: bool) -> list[str]:
    items = [part.strip() for part in (raw or "").replace(";", ",").split(",")]
    return [item.upper() if upper else item.lower() for item in items if item]


def parse_form(form: Mapping[str, str], *, key: str | None = None) -> tuple[ExperimentSpec, dict[str, str]]:
    """The spec the form describes, and the fields that could not be read (``key`` fixes it when editing)."""
    errors: dict[str, str] = {}
    variants: list[VariantSpec] = []
    for row in range(VARIANT_ROWS):
        prefix = f"variants-{row}-"
        variant_key = (form.get(prefix + "key") or "").strip().lower()
        if not variant_key:
            continue
        index = len(variants)
        row_errors: dict[str, str] = {}
        variant = VariantSpec(
            key=variant_key,
            name=(form.get(prefix + "name") or "").strip(),
            weight=parse_float(form, prefix + "weight", 1.0, row_errors),
            rerank=form.get(prefix + "rerank") in ("on", "1", "true", "yes"),
            model=(form.get(prefix + "model") or "").strip() or None,
            first_stage_top_k=_int(form, prefix + "first_stage_top_k", 100, row_errors),
            device_preference=(form.get(prefix + "device_preference") or "").strip().lower() or None,
            rerank_max_depth=_optional_int(form, prefix + "rerank_max_depth", row_errors),
            passage_tokens=_optional_int(form, prefix + "passage_tokens", row_errors),
        )
        errors.update({f"variants[{index}].{name.removeprefix(prefix)}": msg for name, msg in row_errors.items()})
        variants.append(variant)
    namespace = (form.get("namespace") or "").strip().lower() or None
    spec = ExperimentSpec(
        key=key if key is not None else (form.get("key") or "").strip().lower(),
        name=(form.get("name") or "").strip(),
        hypothesis=(form.get("hypothesis") or "").strip(),
        kind=(form.get("kind") or "ab").strip(),
        coverage=parse_float(form, "coverage", 1.0, errors, scale=100),
        seed=(form.get("seed") or "").strip(),
        namespace=namespace,
        namespace_start=parse_float(form, "namespace_start", 0.0, errors, scale=100),
        namespace_end=parse_float(form, "namespace_end", 1.0, errors, scale=100),
        languages=_list(form.get("languages"), upper=False),
        markets=_list(form.get("markets"), upper=True),
        primary_metric=(form.get("primary_metric") or "ctr").strip(),
        target_mde=parse_float(form, "target_mde", 0.05, errors, scale=100),
        variants=variants,
    )
    return spec, errors


def form_values(spec: ExperimentSpec) -> dict[str, Any]:
    """Field values to render the form from a spec (percent fields in percent)."""
    values: dict[str, Any] = {
        "key": spec.key,
        "name": spec.name,
        "hypothesis": spec.hypothesis,
        "kind": spec.kind,
        "coverage": _pct(spec.coverage),
        "seed": spec.seed,
        "namespace": spec.namespace or "",
        "namespace_start": _pct(spec.namespace_start),
        "namespace_end": _pct(spec.namespace_end),
        "languages": ", ".join(spec.languages),
        "markets": ", ".join(spec.markets),
        "primary_metric": spec.primary_metric,
        "target_mde": _pct(spec.target_mde),
    }
    rows = []
    for row in range(VARIANT_ROWS):
        v = spec.variants[row] if row < len(spec.variants) else None
        rows.append(
            {
                "key": v.key if v else "",
                "name": v.name if v else "",
                "weight": f"{v.weight:g}" if v else "1",
                "rerank": v.rerank if v else True,
                "model": (v.model or "") if v else "",
                "first_stage_top_k": v.first_stage_top_k if v else 100,
                "device_preference": (v.device_preference or "") if v else "",
                "rerank_max_depth": v.rerank_max_depth if v and v.rerank_max_depth is not None else "",
                "passage_tokens": v.passage_tokens if v and v.passage_tokens is not None else "",
            }
        )
    values["variants"] = rows
    return values


def _pct(value: float) -> str:
    return f"{value * 100:g}"


def default_spec() -> ExperimentSpec:
    return ExperimentSpec(
        key="",
        name="",
        variants=[
            VariantSpec("control", "Control (first stage only)", rerank=False),
            VariantSpec("rerank", "Cross-encoder rerank", rerank=True),
        ],
    )
