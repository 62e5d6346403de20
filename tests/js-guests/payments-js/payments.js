// Test fixture, the JavaScript twin of tests/guests/payments: pays orders
// through a payment service that does not deduplicate, with a reconciler that
// looks a charge up by its reference (the task's idempotency key). The
// service's URL comes from the granted `PAYMENTS_URL` environment variable.

import { ActionError, RunnerContext, action, http, tool } from "weir-sdk";

function service() {
  const url = process.env.PAYMENTS_URL;
  if (url === undefined) throw new ActionError("config", "PAYMENTS_URL is not granted");
  return url;
}

action({ description: "Pays an order." }, function pay(event, ctx) {
  const order = event.payload;
  const charge = ctx.callTool("charge", { order: order.order, amount: order.amount });
  const paid = (ctx.shortTermMemory.get("paid") ?? 0) + order.amount;
  ctx.shortTermMemory.set("paid", paid);
  ctx.sendOutput({ order: order.order, charge: charge.id, paid });
});

// The reconciler: was a charge with this call's reference made?
function findCharge(args, idempotencyKey) {
  const response = http.get(`${service()}/charges?reference=${idempotencyKey}`);
  if (response.status === 200) return response.json();
  if (response.status === 404) return null;
  throw new ActionError("lookup", `the payment service answered ${response.status}`);
}

tool(
  {
    description: "Charges an order's amount.",
    parameters: {
      order: { type: "string", description: "The order's id." },
      amount: { type: "integer", description: "The amount to charge." },
    },
    reconcile: findCharge,
  },
  function charge({ order, amount }) {
    const body = { order, amount, reference: new RunnerContext().idempotencyKey };
    const response = http.post(`${service()}/charges`, { json: body });
    if (response.status !== 200) throw new ActionError("declined", response.text());
    return response.json();
  },
);
