"""`endcloud experiment`: the seed paper's experiment (Tables V and VI, Fig. 3) as one command.

    endcloud experiment --config configs/paper.yaml            # CPU profile, JDDC samples, < 1 h
    endcloud experiment --config configs/paper-gpu.yaml        # paper scale: 30,000 steps, N = 500
    endcloud experiment --config configs/tiny.yaml             # the same recipe on a tiny model (CI)
    endcloud experiment --config configs/paper.yaml run_dir=runs/experiment-X resume=true

Top to bottom, every stage through its own `run(cfg)`:
  1. prepare   corpora -> clean, masked `messages` splits           (endcloud.data.prepare)
  2. held-out  a fixed set of test queries, one per session          (here)
  3. teacher   cloud labels for the training queries with the N-example prompt of Table II, and
               the cloud's reply to every held-out query: the reference of Sim in Eq. 1
                                                                     (endcloud.cloud.label)
  4. train     Prefix-Tuning, P-Tuning v2 and LoRA on the labels, checkpoints at the configured
               steps                                                 (endcloud.end.train)
  5. evaluate  the original model and every checkpoint on the held-out queries: Table VI, Fig. 3,
               BLEU / ROUGE-L / distinct-n                           (endcloud.evaluate.stage)
  6. report    Table V-style replies side by side, metrics per system, the loss and
               Final-vs-step plot, summary.json                      (here)

Everything lands in one run folder beside the resolved `config.yaml`. With a fixed `run_dir` and
`resume=true`, a rerun reuses the prepared data, gets finished labels from the store's cache
without calling the teacher, skips finished trainings and resumes interrupted ones.
"""
