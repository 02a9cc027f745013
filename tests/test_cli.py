"""The `shoprank` console commands, run in-process with click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shopctl.cli import cli


def _run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env or {}, catch_exceptions=False)
    return result


def test_score_one_pair(tiny_model_dir):
    result = _run("score", "wireless headphones", "Title: Sony WH-1000XM5", "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    value = float(result.stdout.strip().splitlines()[-1])
    assert 0 < value < 1


def test_rerank_prints_a_ranked_table(tiny_model_dir, tmp_path):
    products = tmp_path / "products.jsonl"
    rows = [{"sku": f"SKU-{i}", "title": f"Product {i}", "price": 10 + i, "currency": "EUR"} for i in range(15)]
    products.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = _run(
        "rerank",
        "--query",
        "headphones",
        "--products",
        str(products),
        "--top",
        "5",
        "--model",
        str(tiny_model_dir),
        "--no-int8",
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines[0].split()[:2] == ["rank", "score"]
    assert len(lines) == 6 and "€" in lines[1]
    scores = [float(line.split()[1]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)

    as_json = json.loads(
        _run("rerank", "-q", "headphones", "--products", str(products), "--json", "--model", str(tiny_model_dir)).stdout
    )
    assert as_json["scorer"]["kind"] == "cross-encoder" and len(as_json["results"]) == 10


def test_rerank_reports_bad_lines_clearly(tmp_path, tiny_model_dir):
    products = tmp_path / "bad.jsonl"
    products.write_text('{"title": "ok"}\n{not json}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["rerank", "-q", "x", "--products", str(products), "--model", str(tiny_model_dir)])
    assert result.exit_code != 0
    assert "bad.jsonl:2: invalid JSON" in result.output


def test_demo_trap_with_the_offline_fallback_is_honest(tmp_path):
    result = _run("demo-trap", "--model", str(tmp_path / "missing-model"))
    assert result.exit_code == 0, result.output
    assert "bi-encoder-fallback" in result.stdout
    assert "FALLBACK" in result.stdout
    assert result.stdout.count("query:") == 3
    assert "traps avoided by bi-encoder-fallback" in result.stdout


def test_demo_trap_with_a_cross_encoder(tiny_model_dir):
    result = _run("demo-trap", "--model", str(tiny_model_dir))
    assert result.exit_code == 0, result.output
    assert "[cross-encoder, torch, cpu, int8]" in result.stdout
