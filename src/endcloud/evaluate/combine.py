"""Eq. 1 of the paper, with the Θ rule, per query, keeping every component.

    Final = α·Sim(end reply, cloud reply) + (1 − α)·Match(query, end reply)      (Eq. 1)
    but if Match(query, cloud reply) < Θ:  Final = Sim(end reply, cloud reply)  (the Θ rule)

α = 0.8 and Θ = 0.2 as in the paper (Section IV-C). The Θ rule exists because a low match of the
*cloud* reply says the matcher, not the reply, is out of its depth; then only similarity counts.
Boundary: Match(query, cloud) exactly Θ is not below Θ, so Eq. 1 applies in full.

Without a cloud reply (`match_reference` is None, e.g. `endcloud evaluate score` on pairs with no
`reference`) Sim cannot be computed and Final = Match(query, end reply): rule "match_only".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

ALPHA = 0.8
THETA = 0.2

Rule = Literal["eq1", "sim_only", "match_only"]


@dataclass(frozen=True)
class Combined:
    sim: float | None  # Sim(end reply, cloud reply); None without a cloud reply
    match: float  # Match(query, end reply)
    match_reference: float | None  # Match(query, cloud reply); None without a cloud reply
    final: float
    rule: Rule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def combine(sim: float | None, match: float, match_reference: float | None,
            alpha: float = ALPHA, theta: float = THETA) -> Combined:
    """One query's Final score and the rule that produced it.

    >>> combine(0.5, 1.0, 0.3).final        # 0.8·0.5 + 0.2·1.0
    0.6
    """
    _check_unit("match", match)
    if match_reference is None or sim is None:
        if (match_reference is None) != (sim is None):
            raise ValueError("sim and match_reference come together (both need a cloud reply)")
        return Combined(None, match, None, match, "match_only")
    _check_unit("sim", sim)
    _check_unit("match_reference", match_reference)
    if match_reference < theta:
        return Combined(sim, match, match_reference, sim, "sim_only")
    final = alpha * sim + (1.0 - alpha) * match
    return Combined(sim, match, match_reference, final, "eq1")


def _check_unit(name: str, x: float) -> None:
    if not (isinstance(x, (int, float)) and math.isfinite(x) and 0.0 <= x <= 1.0):
        raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")
