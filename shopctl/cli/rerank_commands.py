"""Reranking from the command line: one pair, a product file, the keyword-trap demo."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import click

from reranking import Reranker, ScorerSpec, format_passage, load_scorer
from reranking.scorers.base import Scorer
from shopctl.cli import context


def scorer_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--model --device --no-int8 --max-length --backend``, defaulting to the environment's settings."""
    options = [
        click.option("--model", help="Hub id or local directory of a cross-encoder [env SHOPRANK_RERANKER_MODEL]."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where to run the model."),
        click.option("--no-int8", is_flag=True, help="On CPU, run fp32 instead of INT8 dynamic quantization."),
        click.option("--max-length", type=click.IntRange(16, 8192), help="Token limit per (query, passage) pair."),
        click.option(
            "--backend",
            type=click.Choice(["auto", "torch", "onnx"]),
            help="Runtime; auto = ONNX Runtime INT8 on CPU when MODEL/onnx has an export "
            "[env SHOPRANK_RERANKER_BACKEND].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _load(
    model: str | None, device: str | None, no_int8: bool, max_length: int | None, backend: str | None = None
) -> Scorer:
    overrides: dict[str, Any] = {}
    if backend:
        overrides["backend"] = backend
    if model:
        overrides["model"] = model
    if device:
        overrides["device"] = device
    if no_int8:
        overrides["int8"] = False
    if max_length:
        overrides["max_length"] = max_length
    spec: ScorerSpec = context.settings().scorer_spec(**overrides)
    logging.getLogger("reranking").setLevel(logging.INFO)  # the user should see which model answers
    return load_scorer(spec)


def _describe(scorer: Scorer) -> str:
    info = scorer.info
    line = f"scorer: {info.model_id} [{info.kind}, {info.backend}, {info.device}, {info.dtype}]"
    if info.fallback_reason:
        line += f"\n  FALLBACK: {info.fallback_reason}"
    return line


@click.command()
@click.argument("query")
@click.argument("passage")
@click.option("--raw", is_flag=True, help="Print the raw logit instead of the sigmoid-normalized score.")
@scorer_options
def score(query: str, passage: str, raw: bool, **options: Any) -> None:
    """Score one (QUERY, PASSAGE) pair."""
    scorer = _load(**options)
    click.echo(_describe(scorer), err=True)
    value = scorer.compute_score([query, passage], normalize=not raw)
    click.echo(f"{value:.6f}")


def read_products(path: Path) -> list[dict[str, Any]]:
    """JSON Lines, one product object per line; blank lines skipped, errors name the line."""
    products = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise click.ClickException(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(item, dict) or not str(item.get("title") or "").strip():
                raise click.ClickException(f"{path}:{number}: expected an object with a non-empty 'title'")
            products.append(item)
    if not products:
        raise click.ClickException(f"{path}: no products")
    return products


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.option("--query", "-q", required=True, help="The shopper's query, any language.")
@click.option(
    "--products",
    "products_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON Lines file of products (title, description, price, currency, ...).",
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(1), help="How many results to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@scorer_options
def rerank(query: str, products_file: Path, top: int, as_json: bool, **options: Any) -> None:
    """Rerank the products in a file for QUERY and print the best ones."""
    products = read_products(products_file)
    scorer = _load(**options)
    outcome = Reranker(scorer).rerank(query, products, top_n=top)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "scorer": scorer.describe(),
                    "results": [
                        {
                            "rank": r + 1,
                            "index": d.index,
                            "score": d.score,
                            "sku": products[d.index].get("sku"),
                            "title": products[d.index].get("title"),
                        }
                        for r, d in enumerate(outcome.results)
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    click.echo(_describe(scorer), err=True)
    click.echo(f"{'rank':>4}  {'score':>8}  {'#':>4}  {'sku':<14} {'price':>12}  title")
    for rank, doc in enumerate(outcome.results, start=1):
        product = products[doc.index]
        price = format_passage({"title": "-", "price": product.get("price"), "currency": product.get("currency")})
        price = price.split("Price: ")[-1] if "Price: " in price else ""
        click.echo(
            f"{rank:>4}  {doc.score:8.4f}  {doc.index:>4}  {_clip(str(product.get('sku', '')), 14):<14} "
            f"{price:>12}  {_clip(str(product['title']), 70)}"
        )
    click.echo(f"{len(products)} products scored in {outcome.seconds * 1000:.0f} ms", err=True)


#: Each case: a query, a passage that repeats its words but does not answer it, and one that does.
KEYWORD_TRAPS: list[dict[str, Any]] = [
    {
        "query": "wireless noise cancelling headphones",
        "trap": {
            "title": "Headphone Stand for Wireless Noise Cancelling Headphones",
            "description": "Stand for wireless headphones. Fits noise cancelling headphones, wireless "
            "headphones and over-ear headphones.",
            "price": 19.99,
            "currency": "USD",
        },
        "answer": {
            "title": "Sony WH-1000XM5",
            "brand": "Sony",
            "description": "Over-ear Bluetooth headset with industry-leading active noise cancellation, "
            "30-hour battery and multipoint pairing.",
            "price": 399,
            "currency": "USD",
        },
    },
    {
        "query": "无线降噪耳机",  # Chinese: wireless noise-cancelling headphones
        "trap": {
            "title": "耳机收纳盒 适用于无线降噪耳机",
            "description": "无线耳机 降噪耳机 耳机 收纳 保护盒",
            "price": 39,
            "currency": "CNY",
        },
        "answer": {
            "title": "Bose QuietComfort Ultra Headphones",
            "description": "Wireless over-ear headphones with world-class active noise cancelling.",
            "price": 449,
            "currency": "USD",
        },
    },
    {
        "query": "zapatillas para correr mujer",  # Spanish: women's running shoes
        "trap": {
            "title": "Cordones para zapatillas de correr",
            "description": "Cordones de repuesto para zapatillas, zapatillas de correr, zapatillas mujer.",
            "price": 4.5,
            "currency": "EUR",
        },
        "answer": {
            "title": "Nike Pegasus 41 Women's Road Running Shoes",
            "description": "Responsive ReactX foam cushioning for daily training runs.",
            "price": 139.99,
            "currency": "EUR",
        },
    },
]


@click.command("demo-trap")
@scorer_options
def demo_trap(**options: Any) -> None:
    """Keyword-trap demo: does the model prefer the product that answers the query over one that parrots it?"""
    scorer = _load(**options)
    click.echo(_describe(scorer))
    wins = 0
    for case in KEYWORD_TRAPS:
        trap, answer = format_passage(case["trap"]), format_passage(case["answer"])
        trap_score, answer_score = cast(  # a list of pairs gives a list of scores
            list[float], scorer.compute_score([[case["query"], trap], [case["query"], answer]], normalize=True)
        )
        won = answer_score > trap_score
        wins += won
        click.echo(f"\nquery: {case['query']}")
        click.echo(f"  trap   {trap_score:.4f}  {case['trap']['title']}")
        click.echo(f"  answer {answer_score:.4f}  {case['answer']['title']}")
        click.echo(f"  -> {'answer wins' if won else 'TRAP WINS'}")
    click.echo(f"\n{wins}/{len(KEYWORD_TRAPS)} traps avoided by {scorer.info.kind} {scorer.info.model_id}")
    if scorer.info.kind != "cross-encoder":
        click.echo("(bi-encoder fallback: no cross-encoder weights on this machine; see docs/reranking.md)", err=True)
    sys.stdout.flush()
