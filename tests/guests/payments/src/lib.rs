//! Test fixture: pays orders through a payment service that does not
//! deduplicate, with a reconciler that looks a charge up by its reference
//! (the task's idempotency key). The service's URL comes from the granted
//! `PAYMENTS_URL` environment variable.

use serde::{Deserialize, Serialize};
use weir_sdk::{ActionError, Event, Result, context, emit_output, http, memory, tools};

#[derive(Serialize, Deserialize)]
struct Order {
    order: String,
    amount: u64,
}

#[derive(Serialize, Deserialize)]
struct Charge {
    id: String,
}

fn service() -> Result<String> {
    std::env::var("PAYMENTS_URL")
        .map_err(|_| ActionError::new("config", "PAYMENTS_URL is not granted"))
}

/// The action: charge the order once, count what the key paid, emit it.
fn pay(event: Event) -> Result<()> {
    let order: Order = event.payload()?;
    let charge: Charge = tools::call("charge", &order)?;
    let paid = memory::short_term().get::<u64>("paid")?.unwrap_or(0) + order.amount;
    memory::short_term().set("paid", &paid)?;
    emit_output(&serde_json::json!({ "order": order.order, "charge": charge.id, "paid": paid }))?;
    Ok(())
}

/// The tool: one POST that charges; the reference lets the charge be found.
fn charge(order: Order) -> Result<Charge> {
    let body = serde_json::json!({
        "order": order.order,
        "amount": order.amount,
        "reference": context::idempotency_key(),
    })
    .to_string();
    let url = format!("{}/charges", service()?);
    let response = http::request(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    )?;
    if response.status != 200 {
        return Err(ActionError::new("declined", response.text()));
    }
    response.json()
}

/// The reconciler: was a charge with this call's reference made?
fn find_charge(_order: Order, idempotency_key: &str) -> Result<Option<Charge>> {
    let url = format!("{}/charges?reference={idempotency_key}", service()?);
    let response = http::get(&url)?;
    match response.status {
        200 => Ok(Some(response.json()?)),
        404 => Ok(None),
        status => Err(ActionError::new(
            "lookup",
            format!("the payment service answered {status}"),
        )),
    }
}

weir_sdk::skill! {
    actions {
        /// Pays an order.
        "pay" => pay,
    }
    tools {
        /// Charges an order's amount.
        "charge" (r#"{"type": "object", "properties": {"order": {"type": "string"},
            "amount": {"type": "integer"}}, "required": ["order", "amount"]}"#) => charge,
    }
    effects {
        "charge" => find_charge,
    }
}
