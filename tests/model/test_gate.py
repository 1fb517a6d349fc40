"""The digit gate (model.gate) and the input lanes: a checkpoint carries a gate beside the CNN and
refusal thresholds per lane; each upload is refused or answered by its own lane's threshold, on
every route; a gate and its refusal data are checked together at load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from model.checkpoint import CheckpointError, LoadedModel, load_checkpoint, save_checkpoint
from model.contract import to_tensor
from model.data import MnistSplit
from model.gate import Gate, GateConfig, inference_gate
from model.imaging.errors import PreprocessError
from model.imaging.number import preprocess_number
from model.imaging.preprocess import preprocess
from model.network import Net
from model.refusal import GATE_SCORE, RATES, Refusal, RefusalDataError
from model.synth.negatives import make_drawn
from model.synth.realworld import make_canvas
from model.train.gate import main as gate_main
from tests.conftest import TINY
from tests.helpers import canvas, draw_seven, encode

SMALL = GateConfig(conv1_filters=2, conv2_filters=2, fc_size=4)
PAPER = encode(draw_seven())  # a 7 on white paper: the clean lane
CANVAS = canvas((0, 0, 0))  # a 7 on a transparent canvas: the canvas lane


def uneven_photo() -> bytes:
    """A 7 on paper lit from one side, with grain: no even border, so the photo lane."""
    rng = np.random.default_rng(0)
    light = np.tile(np.linspace(110, 245, 400), (300, 1)) + rng.normal(0, 6, (300, 400))
    seven = np.asarray(draw_seven(size=(400, 300), offset=(150, 90), scale=1.2), dtype=np.float64)
    pixels = np.where(seven < 128, 40, light).clip(0, 255).astype(np.uint8)
    return encode(Image.fromarray(pixels, "L").convert("RGB"), "JPEG", quality=90)


def constant_gate(p: float) -> Gate:
    """A gate that says `p` of every image."""
    gate = Gate(SMALL)
    with torch.no_grad():
        for param in gate.parameters():
            param.zero_()
        gate.fc2.bias.fill_(float(np.log(p / (1 - p))))
    return gate


def table(value: float) -> dict[float, float]:
    return dict.fromkeys(RATES, value)


def gated_checkpoint(tmp_path: Path, lanes: dict[str, dict[float, float]], p: float = 0.5) -> Path:
    """The tiny CNN with a gate saying `p` of everything, and per-lane thresholds."""
    torch.manual_seed(0)
    refusal = Refusal(table(0.0), "a test's numbers", "none: set by hand", GATE_SCORE, lanes)
    path = tmp_path / "gated.pt"
    save_checkpoint(path, Net(TINY), {"metrics": {}, "refusal": refusal.to_meta()}, constant_gate(p))
    return path


@pytest.fixture
def strict_canvas(tmp_path: Path) -> Iterator[TestClient]:
    """Every image scores 0.5; the canvas lane refuses under 0.9, the others under 0.1."""
    path = gated_checkpoint(tmp_path, {"canvas": table(0.9), "photo": table(0.1), "clean": table(0.1)})
    with TestClient(create_app(Settings(checkpoint=path, torch_threads=1)), raise_server_exceptions=False) as c:
        yield c


def test_each_upload_takes_its_lane() -> None:
    assert preprocess(CANVAS).lane == "canvas"
    assert preprocess(PAPER).lane == "clean"
    assert preprocess(uneven_photo()).lane == "photo"
    opaque = np.dstack([np.asarray(draw_seven())] * 3 + [np.full((160, 200), 255, np.uint8)])
    assert preprocess(encode(Image.fromarray(opaque, "RGBA"))).lane == "clean"  # alpha, but nothing transparent
    assert {slot.lane for slot in preprocess_number(CANVAS)} == {"canvas"}
    assert {slot.lane for slot in preprocess_number(PAPER)} == {"clean"}


def test_the_lanes_threshold_decides_on_every_route(strict_canvas: TestClient) -> None:
    png = {"content-type": "image/png"}
    for body in (CANVAS, PAPER):
        refused = body is CANVAS
        fast = strict_canvas.post("/predict", content=body, headers=png)
        routed = strict_canvas.post("/predict?explain=true", content=body, headers=png)
        number = strict_canvas.post("/predict/number", content=body, headers=png)
        for r in (fast, routed, number):
            assert r.status_code == (422 if refused else 200), r.text
            if refused:
                assert r.json()["error"]["code"] == "not_a_digit"
                assert "refusal score 0.500 is under the threshold 0.900" in r.json()["error"]["message"]
    files = [("files", ("c.png", CANVAS, "image/png")), ("files", ("p.png", PAPER, "image/png"))]
    results = strict_canvas.post("/predict/batch", files=files).json()["results"]
    assert results[0]["error"]["code"] == "not_a_digit"
    assert "prediction" in results[1]
    anyway = strict_canvas.post("/predict?refuse=false", content=CANVAS, headers=png).json()["refusal"]
    assert anyway == {"refused": True, "score": pytest.approx(0.5), "threshold": pytest.approx(0.9)}


def test_model_says_the_threshold_of_each_lane(strict_canvas: TestClient) -> None:
    refusal = strict_canvas.get("/model").json()["refusal"]
    assert refusal["score"] == GATE_SCORE
    assert refusal["lane_thresholds"] == {"canvas": 0.9, "photo": 0.1, "clean": 0.1}
    assert refusal["threshold"] == 0.1  # the clean lane's
    assert refusal["rates"] == {"canvas": 0.002, "photo": 0.002, "clean": 0.002}
    assert "state_dict" not in str(strict_canvas.get("/model").json())  # the gate's weights stay in the file


def test_default_rates_are_per_lane_and_the_setting_overrides_them() -> None:
    rising = dict(zip(RATES, np.linspace(0.1, 0.8, len(RATES)).tolist(), strict=True))
    refusal = Refusal(rising, "", "", GATE_SCORE, {"canvas": rising}, {"canvas": 0.05})
    assert refusal.threshold(None, "canvas") == pytest.approx(0.8)  # its own default: the last point
    assert refusal.threshold(None, "photo") == pytest.approx(refusal.threshold(0.002))
    assert refusal.threshold(0.0005, "canvas") == pytest.approx(0.1)
    assert Refusal.from_meta({"refusal": refusal.to_meta()}) == refusal
    meta = refusal.to_meta() | {"default_rates": {"canvas": 0.5}}  # outside the stored points
    with pytest.raises(RefusalDataError, match="outside the operating points"):
        Refusal.from_meta({"refusal": meta})
    with pytest.raises(RefusalDataError, match="rising"):
        Refusal.from_meta({"refusal": refusal.to_meta() | {"lanes": {"canvas": {"0.001": 0.5, "0.002": 0.4}}}})


def test_gate_and_its_refusal_data_are_checked_together(tmp_path: Path) -> None:
    path = gated_checkpoint(tmp_path, {})
    loaded = load_checkpoint(path)
    assert loaded.gate is not None
    assert "gate" not in loaded.meta
    x = torch.zeros(3, 1, 28, 28)
    assert inference_gate(loaded.gate)(x).tolist() == pytest.approx([0.5] * 3)
    no_gate = Refusal(table(0.1), "", "", GATE_SCORE).to_meta()
    save_checkpoint(tmp_path / "a.pt", Net(TINY), {"metrics": {}, "refusal": no_gate})
    save_checkpoint(tmp_path / "b.pt", Net(TINY), {"metrics": {}}, constant_gate(0.5))  # a gate, no thresholds
    for name in ("a.pt", "b.pt"):
        with pytest.raises(CheckpointError, match="digit gate"):
            load_checkpoint(tmp_path / name)
    broken = Gate(SMALL)
    save_checkpoint(tmp_path / "c.pt", Net(TINY), {"metrics": {}, "refusal": no_gate}, broken)
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    payload["gate"]["config"]["fc_size"] = 5  # the weights no longer fit
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "c.pt", verify=False)


def test_a_gate_is_carried_to_another_cnn_unchanged(tmp_path: Path) -> None:
    """`python -m model.train.gate --carry`: the CNN of one checkpoint, the gate and thresholds of
    another, and which checkpoint they came from; a checkpoint without a gate has none to carry."""
    source = load_checkpoint(gated_checkpoint(tmp_path, {"canvas": table(0.3)}, p=0.2))
    torch.manual_seed(1)
    cnn = Net(TINY)
    save_checkpoint(tmp_path / "cnn.pt", cnn, {"metrics": {"temperature": 0.7}})
    save_checkpoint(tmp_path / "plain.pt", cnn, {"metrics": {}})
    assert gate_main(["--checkpoint", str(tmp_path / "cnn.pt"), "--carry", str(source.path)]) == 0
    carried = load_checkpoint(tmp_path / "cnn.pt")
    assert carried.gate is not None
    assert source.gate is not None
    for name, tensor in source.gate.state_dict().items():
        assert torch.equal(carried.gate.state_dict()[name], tensor)
    assert carried.refusal == source.refusal
    assert carried.meta["gate_from"] == source.version
    assert carried.temperature == pytest.approx(0.7)
    for name, tensor in cnn.state_dict().items():  # its own CNN, not the source's
        assert torch.equal(carried.net.state_dict()[name], tensor)
    assert not torch.equal(carried.net.fc2.weight, source.net.fc2.weight)
    with pytest.raises(SystemExit, match="no digit gate"):
        gate_main(["--checkpoint", str(tmp_path / "cnn.pt"), "--carry", str(tmp_path / "plain.pt")])


def test_the_inference_gate_matches_the_module() -> None:
    torch.manual_seed(1)
    gate = Gate(SMALL).eval()
    x = torch.randn(9, 1, 28, 28)
    with torch.no_grad():
        expected = torch.sigmoid(gate(x))
    assert inference_gate(gate)(x).tolist() == pytest.approx(expected.tolist(), abs=1e-6)


@torch.inference_mode()
def answered(model: LoadedModel, images: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Each upload's lane's verdict from the shipped gate at its default operating point, and the
    CNN's best digit (-1 where preprocessing refuses the upload itself)."""
    gate = None if model.gate is None else inference_gate(model.gate)
    refused, best = np.ones(len(images), bool), np.full(len(images), -1)
    for i, data in enumerate(images):
        try:
            pre = preprocess(data)
        except PreprocessError:
            continue
        assert gate is not None
        assert model.refusal is not None
        x = pre.tensor.unsqueeze(0)
        refused[i] = float(gate(x)) < model.refusal.threshold(None, pre.lane)
        best[i] = int(model.net(x).argmax())
    return refused, best


def test_the_shipped_checkpoint_refuses_drawn_letters_and_doodles(shipped_model: LoadedModel) -> None:
    """A fixed, seeded set the gate never trained on (its training used other seeds): letters and
    doodles drawn on a transparent canvas as the page sends them."""
    assert shipped_model.gate is not None
    rng = np.random.default_rng(20261206)
    refused, _ = answered(shipped_model, [make_drawn(rng)[0] for _ in range(100)])
    assert refused.sum() >= 97, f"{refused.sum()} of 100 refused"


@torch.inference_mode()
def test_the_shipped_checkpoint_keeps_real_digits(shipped_model: LoadedModel, mnist_test: MnistSplit) -> None:
    """MNIST's test set, counting refusals as errors, at least 99.5%; of 300 of its digits drawn on
    a transparent canvas, at most 2 read right are turned away."""
    images = mnist_test.images.float() / 255
    x = to_tensor(images)
    right = model_answers(shipped_model, x) == mnist_test.labels
    assert shipped_model.gate is not None
    assert shipped_model.refusal is not None
    refused = inference_gate(shipped_model.gate)(x) < shipped_model.refusal.threshold(None, "clean")
    assert float((right & ~refused).float().mean()) >= 0.995
    rng = np.random.default_rng(20261207)
    picks = rng.integers(len(images), size=300)
    refused_canvas, best = answered(shipped_model, [make_canvas(mnist_test.images[i].numpy(), rng)[0] for i in picks])
    labels = mnist_test.labels[picks].numpy()
    assert (refused_canvas & (best == labels)).sum() <= 2


def model_answers(model: LoadedModel, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.net(part) for part in x.split(2000)]).argmax(1)
