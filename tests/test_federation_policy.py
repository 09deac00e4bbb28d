"""Metadata policy (OpenID Federation 1.0 §6.1) from vectors: the specification's policy example (§6.1.5),
each operator's application (§6.1.3.1.1–§6.1.3.1.7), merging (§6.1.4.1) and the combination rules
(§6.1.3.1). The vectors are data: tests/vectors/federation/metadata_policy.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from idp.federation.errors import PolicyConflictError, PolicyViolationError
from idp.federation.policy import (
    apply_policy,
    merge_policies,
    resolve_metadata,
    validate_metadata_policy,
)

VECTORS = json.loads((Path(__file__).parent / "vectors/federation/metadata_policy.json").read_text())
RP = "openid_relying_party"
PARAMETER = "p"


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [f"{v['section']} {v['name']}" for v in vectors]


def _metadata(vector: dict[str, Any]) -> dict[str, Any]:
    return {RP: {PARAMETER: vector["before"]} if "before" in vector else {}}


def test_the_specification_example_merges_and_applies() -> None:
    """§6.1.5: the trust anchor's and the intermediate's policies merged, then applied to the leaf."""
    example = VECTORS["example"]
    merged = merge_policies(
        validate_metadata_policy(example["trust_anchor"]), validate_metadata_policy(example["intermediate"])
    )
    assert merged == example["merged"]
    resolved = resolve_metadata(
        example["leaf_metadata"],
        policies_top_down=[example["trust_anchor"], example["intermediate"]],
        superior_metadata=example["intermediate_metadata"],
    )
    assert resolved == example["resolved_metadata"]
    # The same as applying the merged policy to the leaf's metadata with the intermediate's applied first.
    with_superior = {
        entity_type: {**parameters, **example["intermediate_metadata"].get(entity_type, {})}
        for entity_type, parameters in example["leaf_metadata"].items()
    }
    assert apply_policy(with_superior, merged) == example["resolved_metadata"]


@pytest.mark.parametrize("vector", VECTORS["apply"], ids=_ids(VECTORS["apply"]))
def test_an_operator_applies(vector: dict[str, Any]) -> None:
    policy = validate_metadata_policy({RP: {PARAMETER: vector["entry"]}})
    result = apply_policy(_metadata(vector), policy)[RP]
    if "after" in vector:
        assert result == {PARAMETER: vector["after"]}
    else:
        assert PARAMETER not in result


@pytest.mark.parametrize("vector", VECTORS["violation"], ids=_ids(VECTORS["violation"]))
def test_metadata_that_breaks_an_operator_is_refused(vector: dict[str, Any]) -> None:
    policy = validate_metadata_policy({RP: {PARAMETER: vector["entry"]}})
    with pytest.raises(PolicyViolationError):
        apply_policy(_metadata(vector), policy)


@pytest.mark.parametrize("vector", VECTORS["merge"], ids=_ids(VECTORS["merge"]))
def test_policies_merge(vector: dict[str, Any]) -> None:
    superior = validate_metadata_policy({RP: {PARAMETER: vector["superior"]}})
    subordinate = validate_metadata_policy({RP: {PARAMETER: vector["subordinate"]}})
    assert merge_policies(superior, subordinate) == {RP: {PARAMETER: vector["merged"]}}


@pytest.mark.parametrize("vector", VECTORS["conflict"], ids=_ids(VECTORS["conflict"]))
def test_conflicting_policies_do_not_merge(vector: dict[str, Any]) -> None:
    superior = validate_metadata_policy({RP: {PARAMETER: vector["superior"]}})
    subordinate = validate_metadata_policy({RP: {PARAMETER: vector["subordinate"]}})
    with pytest.raises(PolicyConflictError):
        merge_policies(superior, subordinate)


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_operators_that_may_not_be_combined_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(PolicyConflictError):
        validate_metadata_policy({RP: {PARAMETER: vector["entry"]}})


def test_an_unknown_operator_is_ignored_unless_it_is_critical() -> None:
    """§6.1.3.2: operators beyond the standard ones; ``metadata_policy_crit`` makes one mandatory."""
    policy = {RP: {PARAMETER: {"regexp": "^https://", "default": "https://x.example"}}}
    assert validate_metadata_policy(policy) == {RP: {PARAMETER: {"default": "https://x.example"}}}
    with pytest.raises(PolicyConflictError):
        validate_metadata_policy(policy, crit=["regexp"])


def test_a_superior_s_metadata_overrides_the_leaf_s_before_the_policy() -> None:
    """§3.1.2 ``metadata`` in a subordinate statement: its parameters replace the leaf's own."""
    resolved = resolve_metadata(
        {RP: {"application_type": "native", "contacts": ["a@x"]}},
        superior_metadata={RP: {"application_type": "web"}},
        policies_top_down=[{RP: {"application_type": {"one_of": ["web"]}}}],
    )
    assert resolved == {RP: {"application_type": "web", "contacts": ["a@x"]}}


def test_a_policy_for_an_entity_type_the_leaf_lacks_is_skipped() -> None:
    policy = {"openid_provider": {"x": {"essential": True}}}
    assert resolve_metadata({RP: {}}, policies_top_down=[policy]) == {RP: {}}


@pytest.mark.parametrize(
    "policy",
    [[], {RP: []}, {RP: {PARAMETER: "value"}}],
    ids=["not an object", "entity type not an object", "entry not an object"],
)
def test_a_malformed_policy_is_refused(policy: Any) -> None:
    with pytest.raises(PolicyConflictError):
        validate_metadata_policy(policy)
