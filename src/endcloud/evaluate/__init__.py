"""The evaluation stage: scorers (similarity, match), the Eq. 1 combiner, Table VI and Fig. 3.

    endcloud evaluate --config configs/eval.yaml
"""
