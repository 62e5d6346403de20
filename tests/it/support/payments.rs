//! A fake payment service on loopback that does not deduplicate: every
//! `POST /charges` is a new charge. `GET /charges?reference=R` finds a charge
//! by the reference its request carried, which is what a reconciler asks.
//! It counts charges per order and lookups, and can stall to leave a charge
//! in flight while the test kills weir.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the service answers a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Charge, wait this long, answer.
    Answer(Duration),
    /// Charge, then never answer (the crash window after the effect).
    StallAfterCharging,
    /// Never charge nor answer (the crash window before the effect).
    StallBeforeCharging,
    /// Charge and answer at once, but fail every lookup (500).
    LookupsFail,
}

#[derive(Debug, Clone)]
pub struct ChargeRecord {
    pub id: String,
    pub order: String,
    pub amount: u64,
    pub reference: String,
}

struct Ledger {
    mode: Mode,
    charges: Vec<ChargeRecord>,
    requests: usize,
    lookups: usize,
}

pub struct PaymentServer {
    pub url: String,
    ledger: Arc<Mutex<Ledger>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PaymentServer {
    pub async fn start(mode: Mode) -> PaymentServer {
        let ledger = Arc::new(Mutex::new(Ledger {
            mode,
            charges: Vec::new(),
            requests: 0,
            lookups: 0,
        }));
        let app = Router::new()
            .route("/charges", post(charge).get(lookup))
            .with_state(ledger.clone());
        let (url, stop) = super::model_server::serve(app).await;
        PaymentServer {
            url,
            ledger,
            _stop: stop,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.ledger.lock().unwrap().mode = mode;
    }

    /// Every charge made, in order.
    pub fn charges(&self) -> Vec<ChargeRecord> {
        self.ledger.lock().unwrap().charges.clone()
    }

    /// Charge requests received (made or not).
    pub fn requests(&self) -> usize {
        self.ledger.lock().unwrap().requests
    }

    /// Lookups by reference (reconciler calls).
    pub fn lookups(&self) -> usize {
        self.ledger.lock().unwrap().lookups
    }

    /// Charges per order.
    pub fn charges_per_order(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for charge in self.charges() {
            *counts.entry(charge.order).or_default() += 1;
        }
        counts
    }
}

async fn charge(State(ledger): State<Arc<Mutex<Ledger>>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let (mode, id) = {
        let mut ledger = ledger.lock().unwrap();
        ledger.requests += 1;
        let mode = ledger.mode;
        if mode == Mode::StallBeforeCharging {
            (mode, String::new())
        } else {
            let id = format!("ch_{}", ledger.charges.len() + 1);
            ledger.charges.push(ChargeRecord {
                id: id.clone(),
                order: body["order"].as_str().unwrap_or_default().to_string(),
                amount: body["amount"].as_u64().unwrap_or_default(),
                reference: body["reference"].as_str().unwrap_or_default().to_string(),
            });
            (mode, id)
        }
    };
    match mode {
        Mode::LookupsFail => axum::Json(json!({ "id": id })).into_response(),
        Mode::Answer(wait) => {
            tokio::time::sleep(wait).await;
            axum::Json(json!({ "id": id })).into_response()
        }
        Mode::StallAfterCharging | Mode::StallBeforeCharging => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

async fn lookup(State(ledger): State<Arc<Mutex<Ledger>>>, uri: Uri) -> Response {
    let reference = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("reference="))
        .unwrap_or_default()
        .to_string();
    let mut ledger = ledger.lock().unwrap();
    ledger.lookups += 1;
    if ledger.mode == Mode::LookupsFail {
        return (StatusCode::INTERNAL_SERVER_ERROR, "lookups are down").into_response();
    }
    match ledger.charges.iter().find(|c| c.reference == reference) {
        Some(found) => axum::Json(json!({ "id": found.id })).into_response(),
        None => (StatusCode::NOT_FOUND, "no such charge").into_response(),
    }
}
