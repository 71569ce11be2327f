"""The end model: base-model loading, PEFT methods, the SFT recipe, adapters and generation.

    endcloud models fetch qwen2.5-coder-0.5b          # the GGUF; `endcloud models list` for all
    endcloud end train --config configs/train.yaml method.name=lora
    endcloud end generate --config configs/generate.yaml adapter=runs/end-train-.../adapter

Heavy dependencies (torch, transformers, peft) are imported inside the modules that need them;
importing `endcloud.end` itself is cheap.
"""
