"""BirdNET V2.4 backend and the species-label helpers it shares with NatureLM-audio.

Synthetic audio only, except `test_real_clips_top1`, which runs when DAWNCHORUS_TEST_CLIPS names a
folder holding `manifest.csv` and the clips it lists.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

from naturelm_core.backend import BackendError
from naturelm_core.birdnet.backend import (
    BIRDNET_MODEL_FILE,
    DEFAULT_MIN_CONF,
    BirdNETBackend,
    chunk_starts,
    select_classes,
)
from naturelm_core.labels import (
    Species,
    SpeciesIndex,
    birdnet_asset,
    birdnet_labels,
    is_animal,
    split_birdnet_label,
)

RATE_HZ = 48_000


@pytest.fixture(scope="module")
def birdnet() -> BirdNETBackend:
    """No floor and a top 3, so that the chunk and label tests below see a fixed number of
    answers per window whatever the synthetic audio scores (the floor has tests of its own)."""
    return BirdNETBackend(num_threads=1, chunk_batch_size=16, min_conf=0.0, top_k=3)


def bird_like(duration_s: float, seed: int) -> np.ndarray:
    """Repeated down-sweeping whistles in light noise: something for BirdNET to score."""
    n = int(duration_s * RATE_HZ)
    t_s = np.arange(n) / RATE_HZ
    phase_s = t_s % 0.5  # a 0.3-s whistle every 0.5 s
    freq_hz = 4500 - 6000 * phase_s
    whistle = np.sin(2 * np.pi * np.cumsum(freq_hz) / RATE_HZ) * (phase_s < 0.3)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(n)
    return (0.3 * whistle + noise).astype(np.float32)


def one_window(samples: np.ndarray, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """`samples` zero-padded to a (1, window) batch, with its valid length."""
    audio = np.zeros((1, int(window_s * RATE_HZ)), dtype=np.float32)  # (B, S)
    audio[0, : samples.shape[0]] = samples
    return audio, np.array([samples.shape[0]])


# --- chunk layout -------------------------------------------------------------------------


def test_ten_second_window_is_covered_by_chunks_at_0_3_6_7_s():
    starts_s = [s / RATE_HZ for s in chunk_starts(10 * RATE_HZ)]
    assert starts_s == [0.0, 3.0, 6.0, 7.0]


@pytest.mark.parametrize(
    "window_s, expected_s",
    [
        (0.5, [0.0]),
        (3.0, [0.0]),
        (6.0, [0.0, 3.0]),
        (9.5, [0.0, 3.0, 6.0, 6.5]),
        (12.0, [0.0, 3.0, 6.0, 9.0]),
    ],
)
def test_chunk_layout_other_lengths(window_s, expected_s):
    assert [s / RATE_HZ for s in chunk_starts(int(window_s * RATE_HZ))] == expected_s


def test_chunk_layout_rejects_empty_window():
    with pytest.raises(ValueError, match="window_samples"):
        chunk_starts(0)


# --- scoring --------------------------------------------------------------------------------


def test_chunks_wholly_in_padding_are_not_scored(birdnet):
    clip = bird_like(2.5, seed=1)
    long_audio, long_valid = one_window(clip, 10.0)  # chunks at 3, 6, 7 s are all padding
    short_audio, short_valid = one_window(clip, 3.0)
    long_scores, _ = birdnet.window_scores(long_audio, long_valid)
    short_scores, _ = birdnet.window_scores(short_audio, short_valid)
    np.testing.assert_array_equal(long_scores, short_scores)
    # The check above can fail: scoring the silent chunks does change the window's scores.
    as_if_valid, _ = birdnet.window_scores(long_audio, np.array([long_audio.shape[1]]))
    assert not np.array_equal(as_if_valid, short_scores)


def test_window_score_is_the_max_over_its_chunks(birdnet):
    first, second = bird_like(3.0, seed=11), 0.1 * bird_like(3.0, seed=12)[::-1]
    window, valid = one_window(np.concatenate([first, second]), 6.0)  # chunks at 0 and 3 s
    pooled, _ = birdnet.window_scores(window, valid)
    parts, _ = birdnet.window_scores(np.stack([first, second]), np.array([3 * RATE_HZ] * 2))
    assert not np.array_equal(parts[0], parts[1])
    np.testing.assert_array_equal(pooled[0], parts.max(axis=0))


def test_window_shorter_than_a_chunk_is_zero_padded(birdnet):
    clip = bird_like(1.0, seed=2)
    tiny = clip[None, :]  # (1, 48000): the whole window is shorter than one chunk
    padded_audio, padded_valid = one_window(clip, 3.0)
    got = birdnet.predict(tiny, np.array([clip.shape[0]]), ["detect", "classify"])
    want = birdnet.predict(padded_audio, padded_valid, ["detect", "classify"])
    assert got == want and len(got) == 1 + birdnet.top_k


def test_zero_valid_window_gets_no_predictions_and_is_not_run(birdnet):
    audio = np.stack([bird_like(4.0, seed=3), np.zeros(4 * RATE_HZ, np.float32)])  # (2, S)
    predictions = birdnet.predict(audio, np.array([4 * RATE_HZ, 0]), ["detect", "classify"])
    assert {p.item for p in predictions} == {0}
    _, scored = birdnet.window_scores(audio, np.array([4 * RATE_HZ, 0]))
    assert scored.tolist() == [True, False]


def test_batching_is_bit_identical_across_chunk_batch_sizes(birdnet):
    audio = np.stack([bird_like(10.0, seed=s) for s in (4, 5, 6)])  # (3, 480000), 12 chunks
    valid = np.array([10 * RATE_HZ, 7 * RATE_HZ, 2 * RATE_HZ])
    odd_batches = BirdNETBackend(num_threads=1, chunk_batch_size=5)  # calls of 5, 5, 2 chunks
    batched, _ = odd_batches.window_scores(audio, valid)
    for w in range(audio.shape[0]):
        alone, _ = birdnet.window_scores(audio[w : w + 1], valid[w : w + 1])
        np.testing.assert_array_equal(batched[w], alone[0])


def test_interpreters_side_by_side_answer_exactly_as_one(birdnet):
    """Two interpreters share one call's chunks (3 windows x 4 chunks in batches of 2, taken in
    turn); every window's scores and embedding are those of a single interpreter, bit for bit."""
    audio = np.stack([bird_like(10.0, seed=s) for s in (4, 5, 6)])  # (3, 480000), 12 chunks
    valid = np.array([10 * RATE_HZ, 7 * RATE_HZ, 2 * RATE_HZ])  # 4 + 3 + 1 chunks
    pair = BirdNETBackend(num_threads=2, chunk_batch_size=2, min_conf=0.0, top_k=3)
    assert pair.interpreters == 2 and len({id(lane.engine) for lane in pair._lanes}) == 2
    calls = {0: 0, 1: 0}
    for i, lane in enumerate(pair._lanes):
        real = lane.run
        lane.run = lambda chunks, real=real, i=i: calls.__setitem__(i, calls[i] + 1) or real(chunks)
    shared, shared_scored = pair.window_scores(audio, valid)
    assert calls == {0: 2, 1: 2}  # 8 chunks in 4 batches of 2, two per interpreter
    alone, alone_scored = birdnet.window_scores(audio, valid)
    np.testing.assert_array_equal(shared, alone)
    assert shared_scored.tolist() == alone_scored.tolist()
    # The logits are identical; the float64 projection to embeddings sums in a batch-shaped order.
    np.testing.assert_allclose(pair.embed(audio, valid), birdnet.embed(audio, valid), rtol=1e-9, atol=1e-12)
    assert pair.predict(audio, valid, ["detect", "classify"]) == birdnet.predict(audio, valid, ["detect", "classify"])


def test_threads_are_shared_out_between_interpreters():
    three = BirdNETBackend(num_threads=3, interpreters=2)
    assert three.interpreters == 2 and three.num_threads == 3
    with pytest.raises(BackendError, match="interpreters must be between 1 and num_threads \\(2\\), got 3"):
        BirdNETBackend(num_threads=2, interpreters=3)


def test_embedding_is_the_mean_global_avg_pool_tensor_of_the_windows_chunks(birdnet):
    """Oracle: the same model with every intermediate tensor kept, read at GLOBAL_AVG_POOL."""
    from ai_edge_litert.interpreter import Interpreter

    audio = np.stack([bird_like(10.0, seed=8), bird_like(10.0, seed=9)])  # (2, 480000)
    valid = np.array([10 * RATE_HZ, 4 * RATE_HZ])  # chunks at 0, 3, 6, 7 s and at 0, 3 s
    ours = birdnet.embed(audio, valid)
    oracle = Interpreter(model_path=str(birdnet.model_path), num_threads=1, experimental_preserve_all_tensors=True)
    (pool,) = [d["index"] for d in oracle.get_tensor_details() if d["name"] == "model/GLOBAL_AVG_POOL/Mean"]
    expected = []
    for w, starts_s in enumerate([(0, 3, 6, 7), (0, 3)]):
        chunks = np.stack([audio[w, s * RATE_HZ : (s + 3) * RATE_HZ] for s in starts_s])  # (N, 144000)
        oracle.resize_tensor_input(0, list(chunks.shape))
        oracle.allocate_tensors()
        oracle.set_tensor(0, chunks)
        oracle.invoke()
        expected.append(oracle.get_tensor(pool).mean(axis=0))
    assert ours.shape == (2, 1024) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, np.stack(expected), atol=5e-5)
    assert np.abs(ours[0] - ours[1]).max() > 1e-2
    with pytest.raises(ValueError, match=r"rows \[1\] have no valid samples"):
        birdnet.embed(audio, np.array([RATE_HZ, 0]))


def test_sensitivity_scales_the_logit(birdnet):
    audio, valid = one_window(bird_like(6.0, seed=7), 6.0)
    base, _ = birdnet.window_scores(audio, valid)
    steep, _ = BirdNETBackend(num_threads=1, sensitivity=1.5).window_scores(audio, valid)
    flat, _ = BirdNETBackend(num_threads=1, sensitivity=0.5).window_scores(audio, valid)
    base, steep, flat = (x[0].astype(np.float64) for x in (base, steep, flat))
    # Max over chunks commutes with a monotone sigmoid: logit(p_s) = s * logit(p_1).
    usable = (base > 1e-4) & (base < 1 - 1e-4)
    logit = np.log(base[usable] / (1 - base[usable]))
    np.testing.assert_allclose(np.log(steep[usable] / (1 - steep[usable])), 1.5 * logit, atol=1e-3)
    # Monotone: a higher slope pushes every score further from 0.5, on its own side.
    above = base > 0.5
    assert np.all(steep[above] >= base[above]) and np.all(base[above] >= flat[above])
    assert np.all(steep[~above] <= base[~above]) and np.all(base[~above] <= flat[~above])


def test_predictions_use_birdnet_labels(birdnet):
    audio, valid = one_window(bird_like(3.0, seed=8), 3.0)
    scores, _ = birdnet.window_scores(audio, valid)
    predictions = birdnet.predict(audio, valid, ["detect", "classify"])
    (detect,) = [p for p in predictions if p.task == "detect"]
    classify = sorted((p for p in predictions if p.task == "classify"), key=lambda p: p.rank)
    assert [p.rank for p in classify] == [1, 2, 3]
    for p in classify:
        species = split_birdnet_label(p.answer_text)
        assert (p.label, p.scientific_name) == (species.common_name, species.scientific_name)
        assert p.prompt_id == "birdnet:species"
        assert p.score == pytest.approx(scores[0, birdnet.labels.index(p.answer_text)])
    assert detect.label == "animal" and detect.scientific_name is None
    assert detect.answer_text == classify[0].answer_text and detect.score == classify[0].score


def test_non_animal_classes_are_never_answered(birdnet, tmp_path):
    audio, valid = one_window(bird_like(3.0, seed=9), 3.0)
    before = sorted(birdnet.predict(audio, valid, ["classify"]), key=lambda p: p.rank)
    # Relabel today's best answer as a non-animal class: it must drop out of the ranking.
    labels = list(birdnet.labels)
    labels[labels.index(before[0].answer_text)] = "Engine_Engine"
    labels_path = tmp_path / "labels.txt"
    labels_path.write_text("\n".join(labels), encoding="utf-8")
    relabelled = BirdNETBackend(num_threads=1, labels_path=str(labels_path), min_conf=0.0)
    after = sorted(relabelled.predict(audio, valid, ["detect", "classify"]), key=lambda p: p.rank)
    classify = [p for p in after if p.task == "classify"]
    assert [p.answer_text for p in classify[:2]] == [b.answer_text for b in before[1:3]]
    assert all(is_animal(p.answer_text) for p in after)
    assert relabelled.settings()["labels_sha256"] != birdnet.settings()["labels_sha256"]


def test_every_class_above_the_floor_is_kept_and_top_k_only_limits():
    scores = np.array([0.09, 0.93, 0.55, 0.99, 0.62, 0.71, 0.10])
    animal = np.array([True, True, True, True, True, False, True])
    # Four animal species above 0.5 in one window: all four, best first; the non-animal class
    # (0.71) and the one below the floor (0.09) never; 0.10 reaches the floor.
    assert select_classes(scores, animal, 0.1).tolist() == [3, 1, 4, 2, 6]
    assert select_classes(scores, animal, 0.5).tolist() == [3, 1, 4, 2]
    assert select_classes(scores, animal, 0.5, top_k=3).tolist() == [3, 1, 4]
    assert select_classes(scores, animal, 0.995).tolist() == []


@pytest.mark.parametrize("floor", [DEFAULT_MIN_CONF, 0.001])
def test_the_floor_holds_for_every_classify_answer_of_the_real_model(floor):
    backend = BirdNETBackend(num_threads=1, min_conf=floor)
    audio = np.stack([bird_like(3.0, seed=s) for s in range(6)])  # (6, 144000)
    valid = np.full(6, audio.shape[1])
    scores, _ = backend.window_scores(audio, valid)
    predictions = backend.predict(audio, valid, ["detect", "classify"])
    classify = [p for p in predictions if p.task == "classify"]
    assert all(p.score >= floor for p in classify)
    for w in range(6):
        # Exactly the animal classes at or above the floor: none lost to a fixed top k.
        expected = {backend.labels[c] for c in np.flatnonzero(scores[w] >= floor)
                    if is_animal(backend.labels[c])}
        assert {p.answer_text for p in classify if p.item == w} == expected
    if floor < DEFAULT_MIN_CONF:
        assert len(classify) > 3 * 6  # more than a top 3 would have kept: the floor decides
    # Every window still has its detect answer, whatever the floor.
    assert sorted(p.item for p in predictions if p.task == "detect") == list(range(6))


def test_unknown_task_names_the_supported_ones(birdnet):
    audio, valid = one_window(bird_like(3.0, seed=10), 3.0)
    with pytest.raises(ValueError, match=r"caption.*detect.*classify"):
        birdnet.predict(audio, valid, ["detect", "caption"])


# --- construction ---------------------------------------------------------------------------


def test_model_id_is_the_model_file_digest(birdnet):
    digest = hashlib.sha256(birdnet_asset(BIRDNET_MODEL_FILE).read_bytes()).hexdigest()
    assert birdnet.model_id == f"birdnet-v2.4@sha256:{digest[:12]}"


def test_settings_name_what_changes_answers():
    settings = BirdNETBackend(num_threads=1, top_k=5, sensitivity=1.25, min_conf=0.25).settings()
    assert settings["top_k"] == 5 and settings["sensitivity"] == 1.25
    assert settings["min_conf"] == 0.25
    # The floor changes answers, so it is part of the settings the fingerprint hashes.
    default = BirdNETBackend(num_threads=1).settings()
    assert default["min_conf"] == DEFAULT_MIN_CONF == 0.1 and default["top_k"] is None
    # No floor and a top 3 is the old behaviour, spelled as it was: old fingerprints continue.
    old = BirdNETBackend(num_threads=1, min_conf=0.0, top_k=3).settings()
    assert old == {"top_k": 3, "sensitivity": 1.0, "chunk_s": 3.0, "chunk_layout": old["chunk_layout"],
                   "chunk_pooling": "max", "exclude_non_animal": True,
                   "labels_sha256": old["labels_sha256"]}
    assert settings["chunk_s"] == 3.0 and settings["exclude_non_animal"] is True
    assert settings["chunk_layout"]


@pytest.mark.parametrize("option", ["model_path", "labels_path"])
def test_missing_file_is_named(option, tmp_path):
    missing = tmp_path / "nowhere" / "file"
    with pytest.raises(BackendError, match=re.escape(str(missing))):
        BirdNETBackend(num_threads=1, **{option: str(missing)})


def test_labels_that_do_not_match_the_model_are_refused(tmp_path):
    labels_path = tmp_path / "short.txt"
    labels_path.write_text("\n".join(birdnet_labels()[:10]), encoding="utf-8")
    with pytest.raises(BackendError, match="6522 outputs.*10 labels"):
        BirdNETBackend(num_threads=1, labels_path=str(labels_path))


@pytest.mark.parametrize(
    "options", [{"top_k": 0}, {"chunk_batch_size": 0}, {"sensitivity": 0.0}, {"num_threads": 0},
                {"interpreters": 0}, {"min_conf": 1.5}, {"min_conf": -0.1}, {"top_k": 2.5}]
)
def test_bad_options_are_refused(options):
    with pytest.raises(BackendError, match=next(iter(options))):
        BirdNETBackend(**options)


# --- labels -------------------------------------------------------------------------------


def test_label_file_has_6522_birdnet_classes():
    labels = birdnet_labels()
    assert len(labels) == 6522 and len(set(labels)) == 6522
    assert "Turdus merula_Eurasian Blackbird" in labels


@pytest.fixture(scope="module")
def index() -> SpeciesIndex:
    return SpeciesIndex.from_birdnet()


BLACKBIRD = Species("Turdus merula", "Eurasian Blackbird")


@pytest.mark.parametrize(
    "text",
    [
        "Eurasian Blackbird",
        "eurasian blackbird",
        "  EURASIAN   BLACKBIRD ",
        "Turdus merula",
        "turdus merula.",
        "The answer is Eurasian Blackbird.",
        "the eurasian blackbird",
        "A Eurasian blackbird is singing",
        "Turdus merula_Eurasian Blackbird",
    ],
)
def test_lookup_finds_the_blackbird(index, text):
    assert index.lookup(text) == BLACKBIRD


@pytest.mark.parametrize(
    "text, scientific_name",
    [
        ("black capped chickadee", "Poecile atricapillus"),  # hyphen in the label
        ("Coopers Hawk", "Accipiter cooperii"),  # apostrophe in the label
        ("Ruppell's Starling", "Lamprotornis purpuroptera"),  # umlaut in the label
        ("American Robin", "Turdus migratorius"),
    ],
)
def test_lookup_ignores_punctuation_and_accents(index, text, scientific_name):
    found = index.lookup(text)
    assert found is not None and found.scientific_name == scientific_name


@pytest.mark.parametrize("text", ["", "   ", "a purple unicorn", "Turdus"])
def test_lookup_returns_none_for_non_species(index, text):
    assert index.lookup(text) is None


def test_species_index_rejects_ambiguous_names():
    with pytest.raises(ValueError, match="Twin"):
        SpeciesIndex(["Aus bus_Twin", "Cus dus_Twin"])


@pytest.mark.parametrize(
    "label, expected",
    [
        ("Engine_Engine", False),
        ("Human vocal_Human vocal", False),
        ("Power tools", False),
        ("Siren_Siren", False),
        ("Dog_Dog", True),
        ("Turdus merula_Eurasian Blackbird", True),
    ],
)
def test_is_animal(label, expected):
    assert is_animal(label) is expected


def test_split_birdnet_label():
    assert split_birdnet_label("Turdus merula_Eurasian Blackbird") == BLACKBIRD
    with pytest.raises(ValueError, match="no underscore"):
        split_birdnet_label("no underscore")


# --- real audio (opt in) ------------------------------------------------------------------

CLIPS_ENV = "DAWNCHORUS_TEST_CLIPS"
# Measured on /work/shared/data/clips (4 eligible bird clips): top-1 right for 2 of 4, labelled
# species within the top 3 for 3 of 4. Floors sit at those measurements.
TOP1_FLOOR = 0.5
TOP3_FLOOR = 0.75


def load_mono_48k(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    samples, rate_hz = sf.read(path, dtype="float32", always_2d=True)  # (S, C)
    mono = samples.mean(axis=1)
    if rate_hz != RATE_HZ:
        mono = soxr.resample(mono, rate_hz, RATE_HZ)
    return mono.astype(np.float32)


def ten_second_windows(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    window = 10 * RATE_HZ
    n_windows = max(1, -(-samples.shape[0] // window))
    audio = np.zeros((n_windows, window), dtype=np.float32)  # (B, S)
    valid = np.zeros(n_windows, dtype=np.int64)
    for w in range(n_windows):
        piece = samples[w * window : (w + 1) * window]
        audio[w, : piece.shape[0]] = piece
        valid[w] = piece.shape[0]
    return audio, valid


@pytest.mark.skipif(
    not os.environ.get(CLIPS_ENV), reason=f"set {CLIPS_ENV} to a folder of clips + manifest.csv"
)
def test_real_clips_top1(birdnet):
    folder = Path(os.environ[CLIPS_ENV])
    known = {split_birdnet_label(label).scientific_name for label in birdnet.labels}
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    top1_hits, top3_hits, outcomes = 0, 0, []
    eligible = 0
    for row in rows:
        targets = {n.strip() for n in row["label_scientific_name"].split(";")} & known
        if row["taxon_group"] != "bird" or not targets:
            continue
        eligible += 1
        audio, valid = ten_second_windows(load_mono_48k(folder / row["file"]))
        best: dict[str, float] = {}  # scientific name -> best score over the clip's windows
        for p in birdnet.predict(audio, valid, ["classify"]):
            best[p.scientific_name] = max(best.get(p.scientific_name, 0.0), p.score)
        # Any clip-level top-3 species is in the top 3 of its best window, so this is exact.
        names = sorted(best, key=best.__getitem__, reverse=True)[:3]
        top1_hits += bool(names) and names[0] in targets
        top3_hits += bool(set(names) & targets)
        outcomes.append(f"{row['file']}: {sorted(targets)} -> {names}")
    if eligible == 0:
        pytest.skip(f"no bird clip in {folder} is labelled with a BirdNET species")
    report = "\n".join(outcomes)
    assert top1_hits / eligible >= TOP1_FLOOR, report
    assert top3_hits / eligible >= TOP3_FLOOR, report


@pytest.mark.skipif(
    not os.environ.get(CLIPS_ENV), reason=f"set {CLIPS_ENV} to a folder of clips + manifest.csv"
)
def test_a_dawn_chorus_window_keeps_all_four_species_above_one_half():
    """opensoundscape's one-minute AudioMoth dawn chorus (Pennsylvania), 48-51 s: Wood Thrush,
    Louisiana Waterthrush, Hooded Warbler and American Redstart all score above 0.5 there. A
    fixed top 3 lost the fourth (the Redstart, 0.69); the floor keeps all four."""
    samples = load_mono_48k(Path(os.environ[CLIPS_ENV]) / "opensoundscape_1min.wav")
    audio = samples[None, 48 * RATE_HZ: 51 * RATE_HZ].copy()  # (1, 144000)
    valid = np.array([audio.shape[1]])
    kept = BirdNETBackend(num_threads=1).predict(audio, valid, ["classify"])
    strong = [p.label for p in kept if p.score > 0.5]
    assert len(strong) >= 4 and "American Redstart" in strong, kept
    assert all(p.score >= DEFAULT_MIN_CONF for p in kept)
    top3 = BirdNETBackend(num_threads=1, top_k=3).predict(audio, valid, ["classify"])
    assert [p.label for p in top3] == strong[:3]  # the old limit, now an option, drops the rest
