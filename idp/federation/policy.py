"""Metadata policy (OpenID Federation 1.0 §6.1): the operators, how they may be combined in one policy
entry (§6.1.3.1), how a superior's policy and a subordinate's are merged (§6.1.4.1), and how the merged
policy is applied to an entity's metadata (§6.1.4.2).

A policy is ``{entity_type: {parameter: {operator: operand}}}``. Merging goes top-down, from the trust
anchor's subordinate statement to the leaf's immediate superior's; a merge that cannot hold both policies
(two different ``value`` operands, disjoint ``one_of`` sets …) is a ``PolicyConflictError``, metadata that
breaks the merged policy a ``PolicyViolationError`` — either way the chain is not used. Operators this
module does not know are ignored unless a statement's ``metadata_policy_crit`` names them (§6.1.3.2),
then refused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from idp.federation.errors import PolicyConflictError, PolicyViolationError

Policy = Mapping[str, Mapping[str, Mapping[str, Any]]]
# §6.1.3.1, in the order §6.1.4.2 applies them.
OPERATORS: Final = ("value", "add", "default", "one_of", "subset_of", "superset_of", "essential")
_ARRAY_OPERANDS: Final = frozenset({"add", "one_of", "subset_of", "superset_of"})
# Pairs §6.1.3.1 forbids in one policy entry, whatever their operands.
_NEVER_TOGETHER: Final = (
    frozenset({"add", "one_of"}),
    frozenset({"one_of", "subset_of"}),
    frozenset({"one_of", "superset_of"}),
)


def _contains(values: Sequence[Any], item: Any) -> bool:
    return any(item == value for value in values)


def _is_subset(small: Sequence[Any], large: Sequence[Any]) -> bool:
    return all(_contains(large, item) for item in small)


def _same(a: Any, b: Any) -> bool:
    """Equality of operands: arrays compare as sets (§6.1.4.1 merges ``value`` and ``default`` that way)."""
    if isinstance(a, list) and isinstance(b, list):
        return _is_subset(a, b) and _is_subset(b, a)
    return bool(a == b) and type(a) is type(b)


def _known(entry: Mapping[str, Any], crit: Iterable[str], where: str) -> dict[str, Any]:
    """The entry's operators this module knows; an unknown one named in ``metadata_policy_crit`` fails."""
    known: dict[str, Any] = {}
    critical = set(crit)
    for operator, operand in entry.items():
        if operator in OPERATORS:
            known[operator] = operand
        elif operator in critical:
            raise PolicyConflictError(f"{where}: critical operator {operator!r} is not supported")
    return known


def validate_entry(entry: Mapping[str, Any], where: str) -> None:
    """One parameter's operators: operand types and the combinations §6.1.3.1 allows."""
    for operator, operand in entry.items():
        if operator in _ARRAY_OPERANDS and not isinstance(operand, list):
            raise PolicyConflictError(f"{where}: {operator} needs an array")
        if operator == "essential" and not isinstance(operand, bool):
            raise PolicyConflictError(f"{where}: essential needs true or false")
        if operator == "default" and operand is None:
            raise PolicyConflictError(f"{where}: default cannot be null")
    present = set(entry)
    for pair in _NEVER_TOGETHER:
        if pair <= present:
            raise PolicyConflictError(f"{where}: {' and '.join(sorted(pair))} cannot be combined")
    _check_value(entry, where)
    # ``default`` combines with one_of, subset_of and superset_of without conditions (since the
    # specification's PR #177): the value it fills in is checked when the policy is applied.
    if "add" in entry and "subset_of" in entry and not _is_subset(entry["add"], entry["subset_of"]):
        raise PolicyConflictError(f"{where}: add must be a subset of subset_of")
    both = "subset_of" in entry and "superset_of" in entry
    if both and not _is_subset(entry["superset_of"], entry["subset_of"]):
        raise PolicyConflictError(f"{where}: superset_of must be a subset of subset_of")


def _check_value(entry: Mapping[str, Any], where: str) -> None:
    if "value" not in entry:
        return
    value = entry["value"]
    if value is None:
        # A null value removes the parameter (§6.1.3.1.1): nothing may add to it, default it or require it.
        if "add" in entry or "default" in entry or entry.get("essential") is True:
            raise PolicyConflictError(
                f"{where}: a null value cannot be combined with add, default or essential"
            )
        return
    if "add" in entry and not (isinstance(value, list) and _is_subset(entry["add"], value)):
        raise PolicyConflictError(f"{where}: add must be a subset of value")
    if "one_of" in entry and not _contains(entry["one_of"], value):
        raise PolicyConflictError(f"{where}: value must be one of one_of")
    if "subset_of" in entry and not (isinstance(value, list) and _is_subset(value, entry["subset_of"])):
        raise PolicyConflictError(f"{where}: value must be a subset of subset_of")
    if "superset_of" in entry and not (isinstance(value, list) and _is_subset(entry["superset_of"], value)):
        raise PolicyConflictError(f"{where}: value must be a superset of superset_of")


def validate_metadata_policy(
    policy: Any, *, crit: Iterable[str] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """A ``metadata_policy`` claim checked and reduced to the operators this module knows."""
    if not isinstance(policy, Mapping):
        raise PolicyConflictError("metadata_policy must be an object")
    crit = tuple(crit)
    checked: dict[str, dict[str, dict[str, Any]]] = {}
    for entity_type, parameters in policy.items():
        if not isinstance(parameters, Mapping):
            raise PolicyConflictError(f"metadata_policy.{entity_type} must be an object")
        checked[entity_type] = {}
        for parameter, entry in parameters.items():
            where = f"{entity_type}.{parameter}"
            if not isinstance(entry, Mapping):
                raise PolicyConflictError(f"{where} must be an object of operators")
            known = _known(entry, crit, where)
            validate_entry(known, where)
            checked[entity_type][parameter] = known
    return checked


def _merge_entry(superior: Mapping[str, Any], subordinate: Mapping[str, Any], where: str) -> dict[str, Any]:
    merged = dict(superior)
    for operator, operand in subordinate.items():
        if operator not in merged:
            merged[operator] = operand
            continue
        mine = merged[operator]
        if operator in ("value", "default"):
            if not _same(mine, operand):
                raise PolicyConflictError(f"{where}: {operator} {mine!r} and {operand!r} differ")
        elif operator in ("add", "superset_of"):
            merged[operator] = [*mine, *(item for item in operand if not _contains(mine, item))]
        elif operator in ("one_of", "subset_of"):
            common = [item for item in mine if _contains(operand, item)]
            if operator == "one_of" and not common:
                raise PolicyConflictError(f"{where}: the one_of sets have nothing in common")
            merged[operator] = common
        elif operator == "essential":
            # A superior's essential=true stays true; a superior's false may become true below it.
            merged[operator] = bool(mine) or bool(operand)
    validate_entry(merged, where)
    return merged


def merge_policies(superior: Policy, subordinate: Policy) -> dict[str, dict[str, dict[str, Any]]]:
    """The policy a superior's and its subordinate's ``metadata_policy`` make together (§6.1.4.1)."""
    merged: dict[str, dict[str, dict[str, Any]]] = {
        entity_type: {parameter: dict(entry) for parameter, entry in parameters.items()}
        for entity_type, parameters in superior.items()
    }
    for entity_type, parameters in subordinate.items():
        target = merged.setdefault(entity_type, {})
        for parameter, entry in parameters.items():
            where = f"{entity_type}.{parameter}"
            target[parameter] = (
                _merge_entry(target[parameter], entry, where) if parameter in target else dict(entry)
            )
    return merged


def _apply_entry(metadata: dict[str, Any], parameter: str, entry: Mapping[str, Any], where: str) -> None:
    for operator in OPERATORS:
        if operator not in entry:
            continue
        operand = entry[operator]
        present = parameter in metadata
        current = metadata.get(parameter)
        if operator == "value":
            if operand is None:
                metadata.pop(parameter, None)
            else:
                metadata[parameter] = copy.deepcopy(operand)
        elif operator == "add":
            if not present:
                metadata[parameter] = copy.deepcopy(operand)
            elif not isinstance(current, list):
                raise PolicyViolationError(f"{where}: add needs an array parameter")
            else:
                metadata[parameter] = [*current, *(item for item in operand if not _contains(current, item))]
        elif operator == "default":
            if not present:
                metadata[parameter] = copy.deepcopy(operand)
        elif operator == "one_of":
            if present and not _contains(operand, current):
                raise PolicyViolationError(f"{where}: {current!r} is not one of {operand!r}")
        elif operator == "subset_of":
            if present:
                if not isinstance(current, list):
                    raise PolicyViolationError(f"{where}: subset_of needs an array parameter")
                metadata[parameter] = [item for item in current if _contains(operand, item)]
        elif operator == "superset_of":
            if present and not (isinstance(current, list) and _is_subset(operand, current)):
                raise PolicyViolationError(f"{where}: {current!r} lacks some of {operand!r}")
        elif operator == "essential" and operand and parameter not in metadata:
            raise PolicyViolationError(f"{where}: essential parameter is absent")


def apply_policy(metadata: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """The metadata after the (merged) policy (§6.1.4.2); entity types the metadata lacks are skipped."""
    result: dict[str, Any] = copy.deepcopy(dict(metadata))
    for entity_type, parameters in policy.items():
        if entity_type not in result:
            continue
        entity = result[entity_type]
        if not isinstance(entity, dict):
            raise PolicyViolationError(f"metadata.{entity_type} is not an object")
        for parameter, entry in parameters.items():
            _apply_entry(entity, parameter, entry, f"{entity_type}.{parameter}")
    return result


def resolve_metadata(
    leaf_metadata: Mapping[str, Any],
    *,
    policies_top_down: Sequence[Mapping[str, Any]],
    superior_metadata: Mapping[str, Any] | None = None,
    crit: Iterable[str] = (),
) -> dict[str, Any]:
    """The leaf's metadata as the chain lets it be used: the immediate superior's ``metadata`` parameters
    override the leaf's own (§6.1.4.2, §3.1.2), then the policies merged from the trust anchor's down are
    applied. ``crit``: every ``metadata_policy_crit`` of the chain."""
    crit = tuple(crit)
    metadata: dict[str, Any] = copy.deepcopy(dict(leaf_metadata))
    for entity_type, parameters in (superior_metadata or {}).items():
        if isinstance(parameters, Mapping) and isinstance(metadata.get(entity_type), dict):
            metadata[entity_type].update(copy.deepcopy(dict(parameters)))
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    for policy in policies_top_down:
        merged = merge_policies(merged, validate_metadata_policy(policy, crit=crit))
    return apply_policy(metadata, merged)
