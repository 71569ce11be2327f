"""The data stage: corpus loaders, cleaning, PII masking, multi-turn samples and splits."""
