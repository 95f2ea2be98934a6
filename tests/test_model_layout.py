"""The model contract (edgeseg.models.layout): every registered model's parameters are placed by it."""

from __future__ import annotations

import pytest

from edgeseg.errors import ModelMismatchError
from edgeseg.models.layout import HEAD_STAGE, layer_id, layer_name, param_kind, part
from edgeseg.models.registry import create_model, list_models, model_spec


@pytest.mark.parametrize("arch", list_models())
def test_every_parameter_of_every_registered_model_has_a_place(arch: str) -> None:
    import torch

    with torch.device("meta"):  # names and shapes only: no memory, no init cost (B5 has 85 M parameters)
        model = create_model(arch, num_classes=3)
    names = list(model.state_dict())
    ids = [layer_id(n) for n in names]  # raises for a name outside the layout
    assert any(i[0] == HEAD_STAGE for i in ids) and any(i[0] == 0 for i in ids)
    assert {part(n) for n in names} == {"encoder", "head"}  # a segmentor is exactly encoder + head
    kinds = {param_kind(n) for n, _ in model.named_parameters()}
    assert kinds == {"head", "norm", "other"}
    # one layer per patch embedding, block and stage norm, plus the head
    assert len(set(ids)) == 4 * 2 + sum(model_spec(arch).depths) + 1


def test_layer_names_and_unknown_keys() -> None:
    assert layer_name("encoder.stages.2.5.attn.q.weight") == "encoder.stages.2.5"
    assert layer_name("encoder.patch_embeds.1.proj.weight") == "encoder.patch_embeds.1"
    assert layer_name("head.classifier.weight") == "head"
    assert (
        layer_id("encoder.patch_embeds.1.proj.weight")
        < layer_id("encoder.stages.1.0.mlp.fc1.weight")
        < layer_id("encoder.norms.1.weight")
        < layer_id("encoder.patch_embeds.2.norm.bias")
    )
    assert param_kind("student.head.linear_c.0.proj.weight") == "head"
    with pytest.raises(ModelMismatchError, match="layout"):
        layer_id("backbone.layer1.conv.weight")
