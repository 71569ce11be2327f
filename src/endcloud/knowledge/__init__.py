"""The shop's own knowledge: policy pages, FAQ and catalog (`endcloud kb build`), and the answer
memory of approved answers; retrieved per turn for the end model, the teacher and escalation.

  sources.py   documents -> chunks (heading paths kept; bad files skipped with the reason)
  index.py     the Retriever interface; the embedded hybrid index (bm25s + usearch, RRF)
  build.py     `endcloud kb build`: incremental rebuilds, versions + an atomic CURRENT switch
  context.py   the prompt block (token budget), history fitting, the placeholder guard
  service.py   what `endcloud serve` holds: the index (followed across rebuilds) and the memory
"""
