"""lmscale: a JAX laboratory for the science of scaling language models."""

__version__ = "0.1.0"
