"""xsteer: concept steering vectors taken from a parent LLM and transferred into smaller child
models of other families, on TransformerLens bridges. See README.md and docs/."""

__version__ = "0.1.0"
