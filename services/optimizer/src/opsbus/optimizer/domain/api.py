"""Request and response models of the optimizer's request-reply endpoints
(`opsbus.svc.optimizer.list_recommendations`, `.apply_recommendation`, `.usage`).

They live in `opsbus.common.api.optimizer` (DESIGN.md section 2: the gateway calls these endpoints); this
module names them for the optimizer's own code so there is one definition on the wire."""

from __future__ import annotations

from opsbus.common.api.optimizer import (
    ApplyRecommendationRequest,
    ApplyRecommendationResponse,
    ListRecommendationsRequest,
    RecommendationList,
    RecommendationView,
    UsageRequest,
    UsageResponse,
)

__all__ = [
    "ApplyRecommendationRequest",
    "ApplyRecommendationResponse",
    "ListRecommendationsRequest",
    "RecommendationList",
    "RecommendationView",
    "UsageRequest",
    "UsageResponse",
]
