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

from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from endcloud.evaluate.encoders import Kind, get_encoder, normalise
from endcloud.evaluate.scoring import Calibration, Scorer

CALIBRATION_DIR = Path(__file__).with_name("calibration")


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
    # Imported here: it needs torch.
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
