"""A new routing table applied to the models' slots, without dropping in-flight requests:
new routes appear at once, removed ones are retired, changed ones get their next settings.
The scheduler's pass carries it out (llmhost.lifecycle.model_pass.apply_reload)."""

from __future__ import annotations

from llmhost.config import Catalog
from llmhost.lifecycle.slot import Slot


def apply_catalog(slots: dict[str, Slot], catalog: Catalog) -> dict[str, list[str]]:
    """Mark `slots` for `catalog`'s routes; returns the route names added, removed, changed.

    New routes appear at once. Removed routes refuse new requests, finish what they
    serve, unload and disappear. Changed routes finish what they serve, unload, and
    load with their new settings at their next use.
    """
    changes: dict[str, list[str]] = {"added": [], "removed": [], "changed": []}
    for name, route in catalog.routes.items():
        slot = slots.get(name)
        if slot is None or slot.retired:
            if slot is not None:  # removed earlier, back before it finished unloading
                slot.retired = False
                slot.next_route = route
            else:
                slots[name] = Slot(route)
            changes["added"].append(name)
        elif slot.route != route:
            slot.next_route = route
            changes["changed"].append(name)
        else:
            slot.next_route = None
    for name, slot in slots.items():
        if name not in catalog.routes and not slot.retired:
            slot.retired = True  # the pass answers its waiting requests and unloads it
            changes["removed"].append(name)
    return changes
