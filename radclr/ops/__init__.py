"""Batched tensor operations shared by radclr's modules (no model or data logic here)."""

from radclr.ops.components import Components, component_stats, label_components

__all__ = ["Components", "component_stats", "label_components"]
