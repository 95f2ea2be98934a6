"""Training-free merging of domain-adapted models: linear, BatchNorm statistics, layer-wise anchor,
backbone-only (multi-head), task arithmetic / TIES / DARE, and the linear-mode-connectivity scan.

Entry point: `edgeseg.merge.api.merge_checkpoints`; the methods are registered objects in
`edgeseg.merge.methods` (one module each). See docs/merging.md.
"""
