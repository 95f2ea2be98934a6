"""Training-free merging of domain-adapted models: linear, BatchNorm statistics, layer-wise anchor,
backbone-only (multi-head), task arithmetic / TIES, and the linear-mode-connectivity scan.

Entry point: `edgeseg.merge.api.merge_checkpoints`. See docs/merging.md.
"""
