"""Scorers: a pair of texts -> a number in [0, 1], behind one interface, registered by name.

    sim = get_scorer("similarity")          # SimBERT's role: end reply vs cloud reply
    match = get_scorer("match")             # RocketQA's role: user query vs reply (trained matcher)
    match.score(["发货了吗"], ["亲，今天下午发出哦"])   # array([0.9...])

| name            | role       | what                                                            |
|-----------------|------------|-----------------------------------------------------------------|
| `similarity`    | Sim        | USE-multilingual cosine, Platt-calibrated                       |
| `match`         | Match      | the trained matcher shipped with the package (`evaluate/matcher`); |
|                 |            | `weights` / $ENDCLOUD_MATCHER name another one                   |
| `match-trained` | Match      | the same (the name earlier configs used)                         |
| `match-e5`      | Match      | zero-shot multilingual-e5-small cosine, Platt-calibrated         |
| `ngram`         | either     | char 1-3-gram cosine: no model, the tiny/CI path                 |

The non-answer guard (`endcloud.evaluate.nonanswer`: empty, echo, restatement, stock filler, each
with a documented cap) applies to the Match *role*, whatever scorer fills it: `score_pairs` caps
Match and Final, the service caps the Match it escalates on.

How raw cosines become [0, 1] (calibrated, never by hand): each model scorer carries a Platt map
p = 1 / (1 + exp(-(a·cos + b))) whose (a, b) were fitted by logistic regression on labelled
pairs from the training splits, with both classes weighted equally (a prior of 1/2), so a score
reads as "the probability that the pair is a real answer / a paraphrase". The fitted parameters,
the data they came from and the package versions live in `calibration/<scorer>.json`;
`endcloud evaluate calibrate` refits them. The `ngram` scorer is the identity map of a cosine of
non-negative vectors, already in [0, 1].

Documented values for bad input: an empty (or whitespace-only) side scores exactly 0.0 - there is
nothing to compare or nothing that answers. Emoji-only and mixed-script text is scored by the model
as it is (no special case); text longer than the encoder's budget (2,000 characters; e5 also 512
tokens) is judged on its beginning.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from endcloud.evaluate.encoders import Kind, get_encoder, normalise

CALIBRATION_DIR = Path(__file__).with_name("calibration")


class Scorer(ABC):
    """Scores pairs: `score(left, right)[i]` judges left[i] against right[i], in [0, 1]."""

    name: str = ""

    @abstractmethod
    def score(self, left: list[str], right: list[str]) -> np.ndarray:
        """(N,) float64 in [0, 1]; an empty text on either side gives 0.0."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass
class Calibration:
    """Platt map from a raw cosine to [0, 1]: sigmoid(a·cos + b). Identity when `kind` says so."""

    kind: str = "platt"  # "platt" | "identity"
    a: float = 1.0
    b: float = 0.0
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __call__(self, cos: np.ndarray) -> np.ndarray:
        if self.kind == "identity":
            return np.clip(cos, 0.0, 1.0)
        return 1.0 / (1.0 + np.exp(-(self.a * cos + self.b)))

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n",
                              encoding="utf-8")


def fit_platt(pos: np.ndarray, neg: np.ndarray, iters: int = 50, l2: float = 1e-3) -> tuple[float, float]:
    """(a, b) of the logistic regression label ~ sigmoid(a·x + b), both classes weighted equally.

    Newton's method on two parameters (no scikit-learn needed); a tiny ridge keeps it finite when
    the classes separate perfectly.
    """
    x = np.concatenate([pos, neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    w = np.concatenate([np.full(len(pos), 0.5 / len(pos)), np.full(len(neg), 0.5 / len(neg))])
    X = np.stack([x, np.ones_like(x)], axis=1)  # (N, 2)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-X @ theta))
        grad = X.T @ (w * (p - y)) + l2 * theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(theta[0]), float(theta[1])


class EmbeddingScorer(Scorer):
    """Cosine of two encodings (bi-encoder), then a calibration map."""

    def __init__(self, name: str, encoder: str, left_kind: Kind, right_kind: Kind,
                 calibration: Calibration) -> None:
        self.name, self.encoder_name = name, encoder
        self.left_kind, self.right_kind = left_kind, right_kind
        self.calibration = calibration

    def raw(self, left: list[str], right: list[str]) -> np.ndarray:
        """(N,) cosines in [-1, 1]; 0 where either side is empty."""
        if len(left) != len(right):
            raise ValueError(f"{self.name}: {len(left)} left texts but {len(right)} right texts")
        enc = get_encoder(self.encoder_name)
        a = enc.encode(left, self.left_kind)
        b = enc.encode(right, self.right_kind)
        return np.clip(np.einsum("nd,nd->n", a, b).astype(np.float64), -1.0, 1.0)

    def score(self, left: list[str], right: list[str]) -> np.ndarray:
        cos = self.raw(left, right)
        empty = np.array([not normalise(x) or not normalise(y) for x, y in zip(left, right)],
                         dtype=bool)
        return np.where(empty, 0.0, self.calibration(cos))

    def describe(self) -> dict[str, Any]:
        enc = get_encoder(self.encoder_name)
        return {"name": self.name, "encoder": enc.name, "weights": enc.version,
                "kinds": [self.left_kind, self.right_kind], "calibration": asdict(self.calibration)}


def _calibration(name: str) -> Calibration:
    path = CALIBRATION_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing - run: endcloud evaluate calibrate")
    return Calibration.load(path)


SCORERS: dict[str, Callable[..., Scorer]] = {
    "similarity": lambda: EmbeddingScorer("similarity", "use", "text", "text",
                                          _calibration("similarity")),
    # the trained matcher: weights from `path`, $ENDCLOUD_MATCHER, else the shipped ones
    "match": lambda path=None: _trained_match(path),
    "match-trained": lambda path=None: _trained_match(path),
    "match-e5": lambda: EmbeddingScorer("match-e5", "e5", "query", "passage", _calibration("match-e5")),
    # lexical, deterministic, no extra: the CI fast path and a fallback for either role
    "ngram": lambda: EmbeddingScorer("ngram", "ngram", "text", "text", Calibration("identity")),
}
# the scorers that read trained weights, and the keyword their factory takes for the folder
WEIGHTS_OPTION = {"match": "path", "match-trained": "path"}
_LOADED: dict[tuple[str, tuple[tuple[str, Any], ...]], Scorer] = {}


def _trained_match(path: str | Path | None = None) -> Scorer:
    # Imported here: it needs torch, and importing it at module level would be circular.
    from endcloud.evaluate.matcher.scorer import TrainedMatchScorer

    return TrainedMatchScorer(path or None)


def register(name: str, factory: Callable[..., Scorer]) -> None:
    """Add a scorer under `name` (a plugin, or a test's fake)."""
    SCORERS[name] = factory
    for key in [k for k in _LOADED if k[0] == name]:
        del _LOADED[key]


def get_scorer(name: str, **options: Any) -> Scorer:
    """The process-wide scorer `name` (each loads its model once per set of `options`).

    >>> get_scorer("match", path="runs/matcher")  # doctest: +SKIP
    """
    if name not in SCORERS:
        raise KeyError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}")
    key = (name, tuple(sorted(options.items())))
    if key not in _LOADED:
        _LOADED[key] = SCORERS[name](**options)
    return _LOADED[key]


def scorer_for(name: str, weights: str | Path | None = None) -> Scorer:
    """`get_scorer(name)`, handing `weights` (a trained matcher's folder) to the scorers that read one."""
    option = WEIGHTS_OPTION.get(name)
    if option and weights:
        return get_scorer(name, **{option: str(Path(weights).expanduser())})
    return get_scorer(name)
