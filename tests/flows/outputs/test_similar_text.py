"""`dawnchorus similar --text`: words embedded by a CLAP run's own text tower rank the run's
stored audio embeddings (a tiny random MS-CLAP 2023 release, so the order is checked against the
model's own text tower and the stored vectors, not against meaning); a model with no text tower
is refused in one line."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from connectors.catalog import CatalogReader
from connectors.errors import ConfigError
from flows.outputs.similar import EmbeddedRun, text_query
from tests.support.synth_audio import make_deployment


def test_text_is_refused_for_a_model_without_a_text_tower():
    from naturelm_core.backend import load_backend

    birdnet = load_backend("birdnet")
    run = EmbeddedRun("fp1", "birdnet-v2.4@sha256:0", 1024, 3, None)
    with pytest.raises(ConfigError, match="needs embeddings of a model with a text tower .*birdnet"):
        text_query(birdnet, run, "a frog croaking")


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_similar_text_ranks_stored_clap_audio_by_the_runs_own_text_tower(tmp_path, capsys):
    from flows.cli.main import main
    from flows.outputs.similar import similar
    from naturelm_core.clap.checkpoint import load_msclap
    from naturelm_core.clap.msclap import MSClapConfig
    from naturelm_core.clap.tiny import build_tiny_msclap

    weights, text_dir, config = build_tiny_msclap(tmp_path / "tiny")
    start = datetime(2024, 5, 1, 4, 0, tzinfo=timezone.utc)
    make_deployment(tmp_path / "source", "dep-c", [start], 35.0, 48_000,
                    events={0: [(2.0, 3.0, 3000.0), (16.0, 2.0, 800.0)]})
    results = tmp_path / "res"
    assert main([
        "run", "--source", str(tmp_path / "source"), "--results", str(results), "--model", "clap",
        "--weights", str(weights), "--window-s", "7", "--batch-size", "2", "--embeddings",
        "--option", f"text_model={text_dir}", "--option", f"model_config={config}",
        "--option", f"labels={json.dumps(['Eurasian Wren', 'Tawny Owl'])}",
    ]) == 0
    result = similar(str(results), text="Tawny Owl calling", top=5)
    assert result.query == "the text 'Tawny Owl calling'"
    # The same order from the model's own text tower against the stored vectors (float16: the
    # embedding_vectors view shows the numbers).
    model = load_msclap(weights, text_dir, MSClapConfig.from_dict(json.loads(config.read_text())))
    text = model.text_embeddings(["Tawny Owl calling"]).float().detach().numpy()[0]
    with CatalogReader(results) as reader:
        rows = reader.query("select window_index, vector from embedding_vectors").to_pylist()
    vectors = np.array([r["vector"] for r in rows], np.float64)
    cosines = vectors @ text / np.linalg.norm(vectors, axis=1) / np.linalg.norm(text)
    expected = [rows[i]["window_index"] for i in np.argsort(-cosines, kind="stable")]
    assert [h["window_index"] for h in result.hits] == expected
    np.testing.assert_allclose([h["cosine"] for h in result.hits], np.sort(cosines)[::-1], atol=1e-5)
    capsys.readouterr()
    assert main(["similar", "--results", str(results), "--text", "Tawny Owl calling", "--top", "2"]) == 0
    assert "2 windows most like the text 'Tawny Owl calling'" in capsys.readouterr().out
