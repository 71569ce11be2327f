"""The cloud teacher: an OpenAI-compatible client with privacy at the boundary, the prompt of
Table II, the label job, and a local OpenAI-compatible server for the embedded default model.

Heavy parts (httpx, transformers) load inside the functions that need them.
"""
