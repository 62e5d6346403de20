"""Test fixture, the Python twin of tests/guests/payments: pays orders
through a payment service that does not deduplicate, with a reconciler that
looks a charge up by its reference (the task's idempotency key). The
service's URL comes from the granted `PAYMENTS_URL` environment variable."""

import os
from typing import Any, Dict, Optional

from weir_sdk import ActionError, Event, RunnerContext, action, http, tool


def service() -> str:
    url = os.environ.get("PAYMENTS_URL")
    if url is None:
        raise ActionError("config", "PAYMENTS_URL is not granted")
    return url


@action
def pay(event: Event, ctx: RunnerContext) -> None:
    """Pays an order."""
    order = event.payload
    charge = ctx.call_tool("charge", {"order": order["order"], "amount": order["amount"]})
    paid = ctx.short_term_memory.get("paid", 0) + order["amount"]
    ctx.short_term_memory.set("paid", paid)
    ctx.send_output({"order": order["order"], "charge": charge["id"], "paid": paid})


def find_charge(arguments: Dict[str, Any], idempotency_key: str) -> Optional[Dict[str, Any]]:
    """The reconciler: was a charge with this call's reference made?"""
    response = http.get(f"{service()}/charges?reference={idempotency_key}")
    if response.status == 200:
        return response.json()
    if response.status == 404:
        return None
    raise ActionError("lookup", f"the payment service answered {response.status}")


@tool(reconcile=find_charge)
def charge(order: str, amount: int) -> Dict[str, Any]:
    """Charges an order's amount.

    Args:
        order: The order's id.
        amount: The amount to charge.
    """
    body = {"order": order, "amount": amount, "reference": RunnerContext().idempotency_key}
    response = http.post(f"{service()}/charges", json=body)
    if response.status != 200:
        raise ActionError("declined", response.text())
    return response.json()
