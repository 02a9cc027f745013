"""ONNX Runtime backend and backend selection, on a real tiny XLM-R cross-encoder exported for real."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from reranking import load_scorer
from reranking.loading import ScorerSpec, choose_backend
from reranking.onnx_export import FP32_FILE, INT8_FILE, MANIFEST_FILE, OnnxExportMissingError, find_onnx_export
from shopctl.cli import cli
from shoprank.config import ConfigError, Settings

QUERIES = ["wireless noise cancelling headphones", "无线降噪耳机", "zapatillas para correr", "кофемашина", "水筒"]
PASSAGES = [
    "Title: Sony WH-1000XM5\nDescription: Over-ear headphones with active noise cancellation.\nPrice: $399.00",
    "Title: Headphone stand\nPrice: $19.99",
    "Title: Nike Pegasus 41 Women's Road Running Shoes\nDescription: " + "Responsive foam. " * 20,
    "Title: 咖啡机 全自动\nPrice: CN¥1,999.00",
    "Title: Thermos stainless steel bottle 500 ml",
    "Title: Garden hose 20 m",
]
PAIRS = [(q, p) for q in QUERIES for p in PASSAGES]


@pytest.fixture(scope="module")
def exported_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model with ``onnx/`` exported by the CLI (a copy, so other tests' auto stays torch)."""
    model_dir = tmp_path_factory.mktemp("exported") / "tiny"
    shutil.copytree(tiny_model_dir, model_dir)
    result = CliRunner().invoke(
        cli, ["model", "export-onnx", "--model", str(model_dir), "--out", str(model_dir / "onnx"), "--int8"]
    )
    assert result.exit_code == 0, result.output
    return model_dir


@pytest.fixture(scope="module")
def onnx_fp32(exported_model_dir: Path):
    return load_scorer(model=str(exported_model_dir), backend="onnx", int8=False, allow_fallback=False)


@pytest.fixture(scope="module")
def onnx_int8(exported_model_dir: Path):
    return load_scorer(model=str(exported_model_dir), backend="onnx", allow_fallback=False)


def test_export_writes_verified_graphs_tokenizer_and_manifest(exported_model_dir):
    out = exported_model_dir / "onnx"
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["fp32_max_abs_diff"] < 1e-4  # checked against torch before the files were kept
    assert manifest["source_model"] == str(exported_model_dir)
    assert (out / FP32_FILE).is_file() and (out / INT8_FILE).is_file()
    assert (out / INT8_FILE).stat().st_size < (out / FP32_FILE).stat().st_size / 2  # embeddings quantized too
    assert (out / "tokenizer.json").is_file() and (out / "config.json").is_file()
    assert find_onnx_export(exported_model_dir, int8=True) == out / INT8_FILE
    assert find_onnx_export(out, int8=False) == out / FP32_FILE  # the export dir works on its own
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".onnx-")], "staging folder left behind"


def test_onnx_fp32_agrees_with_torch_fp32(onnx_fp32, tiny_scorer_fp32):
    torch_scores = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    onnx_scores = np.array(onnx_fp32.compute_score(PAIRS))
    assert torch_scores.std() > 0.05, "scores should differ between pairs, else the test proves nothing"
    assert np.abs(torch_scores - onnx_scores).max() < 1e-4
    # padding, batching and order restoration are the shared pipeline's: batch size must not matter
    assert np.abs(np.array(onnx_fp32.compute_score(PAIRS, batch_size=1)) - onnx_scores).max() < 1e-4


def test_onnx_int8_agrees_with_fp32_like_torch_int8_does(onnx_int8, tiny_scorer_fp32):
    fp32 = np.array(tiny_scorer_fp32.compute_score(PAIRS))
    int8 = np.array(onnx_int8.compute_score(PAIRS))
    spread = float(fp32.std())
    rho = spearmanr(fp32, int8).statistic
    top10 = len(set(np.argsort(-fp32)[:10]) & set(np.argsort(-int8)[:10])) / 10
    print(f"ONNX INT8 vs fp32 on tiny model: spearman={rho:.4f} max|diff|={np.abs(fp32 - int8).max():.4f}")
    # Same bounds as test_scoring's torch INT8 test (a 32-wide model quantizes coarsely).
    assert rho >= 0.95
    assert np.abs(fp32 - int8).mean() <= 0.3 * spread
    assert np.abs(fp32 - int8).max() <= 0.75 * spread
    assert top10 >= 0.8
    normalized = np.array(onnx_int8.compute_score(PAIRS, normalize=True))
    assert ((normalized > 0) & (normalized < 1)).all()


def test_describe_reports_onnxruntime_and_a_cache_namespace_of_its_own(onnx_int8, onnx_fp32, tiny_scorer_int8):
    info = onnx_int8.describe()
    assert info["backend"] == "onnxruntime" and info["dtype"] == "int8" and info["quantized"] is True
    assert info["kind"] == "cross-encoder" and info["device"] == "cpu" and info["fallback_reason"] is None
    assert onnx_fp32.describe()["dtype"] == "fp32" and onnx_fp32.describe()["quantized"] is False
    namespaces = {s.info.cache_namespace for s in (onnx_int8, onnx_fp32, tiny_scorer_int8)}
    assert len(namespaces) == 3


def test_auto_takes_onnx_int8_only_on_cpu_int8_with_an_export(exported_model_dir, tiny_model_dir):
    with_export = ScorerSpec(model=str(exported_model_dir), device="cpu", allow_fallback=False)
    assert choose_backend(with_export) == "onnx"
    assert load_scorer(with_export).describe()["backend"] == "onnxruntime"
    assert choose_backend(with_export.replace(int8=False)) == "torch"  # fp32 stays on torch
    assert choose_backend(with_export.replace(backend="torch")) == "torch"
    assert choose_backend(ScorerSpec(model=str(tiny_model_dir), device="cpu")) == "torch"  # no export


def test_explicit_onnx_without_export_fails_loudly_instead_of_falling_back(tiny_model_dir):
    with pytest.raises(OnnxExportMissingError, match="export-onnx"):
        load_scorer(model=str(tiny_model_dir), backend="onnx")  # fallback allowed: still no silent e5


def test_without_onnxruntime_auto_uses_torch_and_onnx_says_what_to_install(exported_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    scorer = load_scorer(model=str(exported_model_dir), device="cpu", allow_fallback=False)
    assert scorer.describe()["backend"] == "torch" and scorer.describe()["dtype"] == "int8"
    with pytest.raises(ImportError, match="onnxruntime"):
        load_scorer(model=str(exported_model_dir), backend="onnx", allow_fallback=False)


def test_missing_model_with_onnx_backend_still_falls_back_to_e5(tmp_path):
    scorer = load_scorer(model=str(tmp_path / "absent"), backend="onnx")
    assert scorer.describe()["kind"] == "bi-encoder-fallback"


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="backend"):
        load_scorer(model=str(tiny_model_dir), backend="tensorrt", allow_fallback=False)


def test_backend_setting_from_the_environment():
    assert Settings.from_env({}).scorer_spec().backend == "auto"
    assert Settings.from_env({"SHOPRANK_RERANKER_BACKEND": "onnx"}).scorer_spec().backend == "onnx"
    with pytest.raises(ConfigError, match="RERANKER_BACKEND"):
        Settings.from_env({"SHOPRANK_RERANKER_BACKEND": "tensorrt"})


def test_cli_scores_with_the_onnx_backend(exported_model_dir):
    result = CliRunner().invoke(
        cli, ["score", "wireless headphones", "Title: Sony WH-1000XM5", "--model", str(exported_model_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output and 0 < float(result.stdout.strip().splitlines()[-1]) < 1


def test_cli_export_reports_a_missing_model_clearly(tmp_path):
    result = CliRunner().invoke(
        cli, ["model", "export-onnx", "--model", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0 and "does not exist" in result.output


def test_onnx_pool_does_not_spin_unless_the_wait_policy_is_active(exported_model_dir):
    """Spinning pool threads take the shared cores the web tier needs (docs/cpu-serving.md): off by default."""
    quiet = load_scorer(model=str(exported_model_dir), backend="onnx", allow_fallback=False)
    options = quiet.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert Settings.from_env({}).scorer_spec().spinning is False
    active = Settings.from_env({"SHOPRANK_OMP_WAIT_POLICY": "active"}).scorer_spec()
    assert active.spinning is True
    spinning = load_scorer(active.replace(model=str(exported_model_dir), backend="onnx", allow_fallback=False))
    assert spinning.session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
