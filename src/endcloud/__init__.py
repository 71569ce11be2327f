"""endcloud: end-cloud collaborative AI customer service for e-commerce."""

__version__ = "0.1.0"
