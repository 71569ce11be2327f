"""The real-time service: an OpenAI-compatible chat API over the end model, the cloud taking over
what the end model cannot do well, and every exchange and piece of feedback kept in the store.

    endcloud serve --config configs/serve.yaml          # http://127.0.0.1:8080/
"""
