"""Refusing what is not a digit (model.refusal, app.responses.accepted): the thresholds a checkpoint
carries, DIGITS_REFUSAL_RATE, 422 not_a_digit through the fast path, the route and in a batch's
slot, ?refuse=false, and checkpoints without refusal data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.network import Net
from model.refusal import RATES, Refusal, fit_thresholds
from tests.conftest import TINY
from tests.helpers import draw_seven, encode

SEVEN = encode(draw_seven())


def checkpoint_with(tmp_path: Path, thresholds: dict[float, float] | None, name: str = "r.pt") -> Path:
    torch.manual_seed(0)
    meta: dict[str, object] = {"metrics": {"test_accuracy": 0.1}}
    if thresholds is not None:
        meta["refusal"] = Refusal(thresholds, "a test's numbers", "none: set by hand").to_meta()
    save_checkpoint(tmp_path / name, Net(TINY), meta)
    return tmp_path / name


#: The untrained tiny network is never sure of anything (about 0.1 a digit): all of it is refused
STRICT = dict(zip(RATES, np.linspace(0.9, 0.99, len(RATES)).tolist(), strict=True))


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(checkpoint=checkpoint_with(tmp_path, STRICT), torch_threads=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def test_thresholds_are_fitted_as_shares_of_digits_and_interpolated() -> None:
    scores = np.linspace(0, 1, 10001)
    fitted = fit_thresholds(scores)
    assert fitted[0.01] == pytest.approx(0.01)
    assert fitted[0.05] == pytest.approx(0.05)
    refusal = Refusal(fitted, "x", "y")
    assert refusal.threshold(0.0075) == pytest.approx(0.0075)  # between 0.005 and 0.01
    with pytest.raises(ValueError, match="outside the operating points"):
        refusal.threshold(0.2)
    assert Refusal.from_meta({"refusal": refusal.to_meta()}) == refusal
    assert Refusal.from_meta({}) is None


def test_the_fast_path_and_the_route_refuse_alike(strict: TestClient) -> None:
    fast = strict.post("/predict", content=SEVEN, headers={"content-type": "image/png"})  # no query: fast path
    routed = strict.post("/predict?refuse=true", files={"file": ("7.png", SEVEN, "image/png")})
    explained = strict.post("/predict?explain=true", content=SEVEN, headers={"content-type": "image/png"})
    for r in (fast, routed, explained):
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "not_a_digit"
        assert "does not look like a digit" in error["message"]
        assert "?refuse=false" in error["message"]


def test_refuse_false_gives_the_best_digit_with_its_score(strict: TestClient) -> None:
    r = strict.post("/predict?refuse=false", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 200
    body = r.json()
    assert body["refusal"]["refused"] is True
    assert body["refusal"]["score"] == body["confidence"]
    assert body["refusal"]["threshold"] == pytest.approx(Refusal(STRICT, "", "").threshold(0.002))
    assert body["digit"] == int(np.argmax(body["probabilities"]))


def test_a_batch_refuses_in_the_slot(strict: TestClient) -> None:
    files = [
        ("files", ("7.png", SEVEN, "image/png")),
        ("files", ("blank.png", encode(draw_seven(ink=255)), "image/png")),
    ]
    body = strict.post("/predict/batch", files=files).json()
    assert [item["error"]["code"] for item in body["results"]] == ["not_a_digit", "no_ink"]
    anyway = strict.post("/predict/batch?refuse=false", files=files).json()["results"]
    assert anyway[0]["prediction"]["refusal"]["refused"] is True
    assert anyway[1]["error"]["code"] == "no_ink"


def test_model_says_how_it_refuses(strict: TestClient, client: TestClient) -> None:
    refusal = strict.get("/model").json()["refusal"]
    assert refusal["score"] == "max_softmax"
    assert refusal["rates"] == {"canvas": 0.002, "photo": 0.002, "clean": 0.002}  # no lanes of its own: the default
    assert refusal["threshold"] == pytest.approx(Refusal(STRICT, "", "").threshold(0.002))
    assert refusal["lane_thresholds"] == {lane: refusal["threshold"] for lane in ("canvas", "photo", "clean")}
    assert client.get("/model").json()["refusal"] is None  # the tiny checkpoint has no refusal data


def test_a_checkpoint_without_refusal_data_answers_as_before(client: TestClient) -> None:
    r = client.post("/predict?refuse=false", content=SEVEN, headers={"content-type": "image/png"})
    assert r.status_code == 200
    assert r.json()["refusal"] == {"refused": False, "score": r.json()["confidence"], "threshold": None}
    assert client.post("/predict", content=SEVEN, headers={"content-type": "image/png"}).status_code == 200


def test_the_rate_setting_moves_the_threshold_or_turns_refusal_off(tmp_path: Path) -> None:
    path = checkpoint_with(tmp_path, STRICT)
    for rate, status in ((0.0, 200), (0.05, 422)):
        with TestClient(create_app(Settings(checkpoint=path, torch_threads=1, refusal_rate=rate))) as c:
            assert c.post("/predict", content=SEVEN, headers={"content-type": "image/png"}).status_code == status
    loose = {r: 0.0 for r in RATES}  # a checkpoint that refuses nothing at any point
    with TestClient(create_app(Settings(checkpoint=checkpoint_with(tmp_path, loose, "l.pt"), torch_threads=1))) as c:
        assert c.post("/predict", content=SEVEN, headers={"content-type": "image/png"}).status_code == 200


def test_a_rate_the_checkpoint_does_not_hold_stops_the_start(tmp_path: Path) -> None:
    thin = {0.001: 0.5, 0.002: 0.6}
    settings = Settings(checkpoint=checkpoint_with(tmp_path, thin), torch_threads=1, refusal_rate=0.01)
    with (
        pytest.raises(CheckpointError, match=r"DIGITS_REFUSAL_RATE=0.01: .*outside the operating points"),
        TestClient(create_app(settings)),
    ):
        pass


@pytest.mark.parametrize(
    "refusal",
    [
        {"score": "energy", "thresholds": {"0.002": 0.5}, "fitted_on": "", "method": ""},
        {"score": "max_softmax", "thresholds": {"0.002": 1.5}, "fitted_on": "", "method": ""},
        {"score": "max_softmax", "thresholds": {"0.001": 0.6, "0.002": 0.5}, "fitted_on": "", "method": ""},
        {"score": "max_softmax", "fitted_on": ""},
        "not a mapping",
    ],
    ids=["other-score", "not-a-probability", "falling", "missing-keys", "not-a-mapping"],
)
def test_malformed_refusal_data_is_refused_at_load(tmp_path: Path, refusal: object) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, Net(TINY), {"metrics": {}, "refusal": refusal})
    with pytest.raises(CheckpointError, match=r"m\.pt: .*refusal"):
        load_checkpoint(path)
