"""What a set of NetworkPolicies allows, by the Kubernetes semantics, for tests of
the chart's rendered policies (no CNI here enforces them).

    allowed_ingress(policies, to_pod, from_pod, port)
    allowed_egress(policies, from_pod, to=Pod(...) | "93.184.216.34", port=443)

A pod selected by no policy of a direction is unrestricted in it; a selected one
is allowed what any rule of any selecting policy allows. Ports are numbers, or
names resolved on the pod that serves them (the destination)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    # Named container ports (name -> number), for rules that name a port.
    ports: Mapping[str, int] = field(default_factory=dict)
    ip: str = "10.1.2.3"

    def namespace_labels(self) -> dict[str, str]:
        """The label the API server sets on every namespace."""
        return {"kubernetes.io/metadata.name": self.namespace}


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels: {} selects everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _peer_matches(peer: JSON, policy_ns: str, other: Pod | str) -> bool:
    if "ipBlock" in peer:
        # Pod addresses too (most CNIs match them; the stricter reading for a test).
        ip = ipaddress.ip_address(other if isinstance(other, str) else other.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except") or []
        )
    if isinstance(other, str):
        return False  # pod and namespace selectors match pods, not outside addresses
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels()):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def _port_matches(rule: JSON, port: int | str, server: Pod | None) -> bool:
    if not rule.get("ports"):
        return True
    for p in rule["ports"]:
        want = p.get("port")
        if want is None:
            return True
        if isinstance(want, str):
            if server is not None and server.ports.get(want) == port:
                return True
            if want == port:
                return True
        elif want == port:
            return True
    return False


def _policies_for(policies: Iterable[JSON], pod: Pod, kind: str) -> list[JSON]:
    return [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and selects(p["spec"].get("podSelector"), pod.labels)
        and kind in p["spec"].get("policyTypes", ["Ingress"])
    ]


def _rule_allows(
    rule: JSON, peers_key: str, policy_ns: str, other: Pod | str, port: int, server: Pod | None
) -> bool:
    """One ingress ("from") or egress ("to") rule: no peers is any peer."""
    if not _port_matches(rule, port, server):
        return False
    peers = rule.get(peers_key)
    return not peers or any(_peer_matches(peer, policy_ns, other) for peer in peers)


def allowed_ingress(policies: Iterable[JSON], to_pod: Pod, from_pod: Pod | str, port: int) -> bool:
    selecting = _policies_for(policies, to_pod, "Ingress")
    return not selecting or any(
        _rule_allows(rule, "from", p["metadata"]["namespace"], from_pod, port, to_pod)
        for p in selecting
        for rule in p["spec"].get("ingress") or []
    )


def allowed_egress(policies: Iterable[JSON], from_pod: Pod, to: Pod | str, port: int) -> bool:
    selecting = _policies_for(policies, from_pod, "Egress")
    server = to if isinstance(to, Pod) else None
    return not selecting or any(
        _rule_allows(rule, "to", p["metadata"]["namespace"], to, port, server)
        for p in selecting
        for rule in p["spec"].get("egress") or []
    )


def connects(policies: list[JSON], client: Pod, server: Pod, port: int) -> bool:
    """Both ends agree: the client's egress and the server's ingress."""
    return allowed_egress(policies, client, server, port) and allowed_ingress(
        policies, server, client, port
    )
