"""GET /model and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.deps import EngineDep, MetricsDep
from app.schemas import NOT_READY_RESPONSE, ModelInfo
from model.imaging.preprocess import LANES
from model.network import Net
from model.refusal import DEFAULT_RATE

router = APIRouter(tags=["info"])


def _layers(net: Net) -> list[str]:
    c = net.config
    side = c.image_size
    return [
        f"input ({c.in_channels}, {side}, {side})",
        f"conv {c.kernel_size}x{c.kernel_size}, {c.conv1_filters} filters -> max-pool 2 -> ReLU: "
        f"({c.conv1_filters}, {side // 2}, {side // 2})",
        f"conv {c.kernel_size}x{c.kernel_size}, {c.conv2_filters} filters -> max-pool 2 -> ReLU: "
        f"({c.conv2_filters}, {side // 4}, {side // 4})",
        f"flatten: {c.flat_features}",
        f"fully connected {c.fc_size} -> ReLU",
        f"fully connected {c.num_classes} (logits; softmax with temperature for probabilities)",
    ]


def _refusal(engine: EngineDep) -> dict[str, Any] | None:
    refusal = engine.model.refusal
    if refusal is None:
        return None
    rate, below = engine.predictor.refusal_rate, engine.predictor.refuse_below
    return {
        **refusal.to_meta(),
        # the operating point in each input lane: DIGITS_REFUSAL_RATE, else the checkpoint's default there
        "rates": {lane: refusal.default_rates.get(lane, DEFAULT_RATE) if rate is None else rate for lane in LANES},
        "threshold": None if below is None else below["clean"],  # null: refusal turned off (DIGITS_REFUSAL_RATE=0)
        "lane_thresholds": below,  # the threshold in use in each input lane
    }


@router.get(
    "/model",
    response_model=ModelInfo,
    responses={503: NOT_READY_RESPONSE},
)
async def model_info(engine: EngineDep) -> ModelInfo:
    """The network, its checkpoint and how it was trained and measured."""
    m = engine.model
    meta = m.meta
    return ModelInfo(
        architecture={"name": "tutorial two-layer CNN", "config": m.net.config.to_dict(), "layers": _layers(m.net)},
        parameters=m.parameters,
        checkpoint={
            "file": m.path.name,
            "sha256": m.sha256,
            "version": m.version,
            "format_version": meta.get("format_version"),
        },
        metrics=dict(meta.get("metrics", {})),
        train_config=dict(meta.get("train_config", {})),
        distilled_from=meta.get("distilled_from"),
        finetuned=meta.get("finetuned"),
        gate_from=meta.get("gate_from"),
        preprocess=dict(meta.get("preprocess", {})),
        created_at=meta.get("created_at"),
        refusal=_refusal(engine),
        torch_version=meta.get("torch_version"),
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"example": "digits_http_requests_total{...} 3.0"}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(metrics: MetricsDep) -> Response:
    """Requests, latency, answers by digit, confidence and batch sizes, for Prometheus."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
