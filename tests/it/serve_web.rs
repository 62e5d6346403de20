//! `weir serve`'s web view: its JSON endpoints over real HTTP, and the page
//! in a real browser (Debian's Chromium, headless, driven by Playwright for
//! Python: `tests/web/view.py`), which submits events through the API, sees
//! their runs appear and expand into trees, and checks that guest markup is
//! shown as text and never runs. scripts/test installs the browser
//! (`apt-get install chromium`) and Playwright (scripts/web-tools).

use crate::support::model_server::{ModelServer, Reply, openai_text};
use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use weir::serve::{Service, ServiceSettings};

const TOKEN: &str = "web-view-token";

/// Serves `agent` on loopback with the token; the base URL and the service.
async fn serving(agent: &weir::Agent, settings: ServiceSettings) -> (String, Arc<Service>) {
    components();
    let plans = vec![plan(agent).await];
    let service = Arc::new(Service::start(plans, settings, None).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = service.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, service)
}

/// The browser: `$CHROMIUM`, else Debian's `chromium` on the PATH.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let found = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file());
    found.expect(
        "the web view's test needs Debian's chromium: run the tests with scripts/test, which \
         installs it (apt-get install chromium)",
    )
}

/// The Python that has Playwright (scripts/web-tools installs it once).
fn playwright_python() -> PathBuf {
    let out = std::process::Command::new(repo().join("scripts/web-tools"))
        .output()
        .expect("run scripts/web-tools");
    assert!(
        out.status.success(),
        "scripts/web-tools failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_shows_submitted_runs_and_their_trees_in_a_real_browser() {
    let (chromium, python) = (chromium(), playwright_python());
    let server = ModelServer::start().await;
    // Four reviews of one key after another (the browser waits for each),
    // the third asking for suggestions; the fourth's model is down.
    server.script([
        Reply::Json(openai_text("4", 40, 1)),
        Reply::Json(openai_text("none", 38, 1)),
        Reply::Json(openai_text("2", 52, 1)),
        Reply::Json(openai_text(
            "<script>window.pwned=2</script>screen, <b>battery</b>",
            50,
            12,
        )),
        Reply::Json(openai_text("5", 36, 1)),
        Reply::Json(openai_text("none", 34, 1)),
        Reply::Json(openai_text(
            "Stronger screen glass\nLonger battery life\nA lighter case",
            61,
            14,
        )),
        Reply::Status(500, None, "the model is down".into()),
    ]);
    let agent = crate::reviews::review_agent(&server.url);
    let settings = ServiceSettings {
        token: Some(TOKEN.into()),
        ..ServiceSettings::default()
    };
    let (url, _service) = serving(&agent, settings).await;
    let http = reqwest::Client::new();

    // The page needs no token (it holds no data); its data does.
    let page = http.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    let runs = format!("{url}/v1/agents/product-reviews/runs");
    let refused = http.get(&runs).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let bad = http
        .get(format!("{runs}?status=lost"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The browser.
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-web.png");
    let _ = std::fs::remove_file(&screenshot);
    let mut command = std::process::Command::new(&python);
    command
        .arg(repo().join("tests/web/view.py"))
        .env("WEIR_URL", &url)
        .env("WEIR_TOKEN", TOKEN)
        .env("WEIR_AGENT", "product-reviews")
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT", &screenshot);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run tests/web/view.py");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser's checks failed:\n{said}");

    // A real PNG, of a real page.
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert!(width >= 1000 && height >= 600, "{width}x{height}");
    assert!(png.len() > 30_000, "{} bytes: an empty page?", png.len());
    if std::env::var_os("WEIR_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(&screenshot, repo().join("docs/serve-web.png")).unwrap();
    }

    // The same runs as JSON: the list, a tree, the counters.
    let listed: Value = json_of(http.get(&runs).bearer_auth(TOKEN)).await;
    let listed = listed["runs"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 4, "{listed:?}");
    let statuses: Vec<&str> = listed
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "done", "done", "done"], "newest first");
    let suggested = &listed[1];
    assert_eq!(suggested["type"], "_input_event");
    assert_eq!(suggested["calls"], 3);
    assert_eq!(suggested["input_tokens"], 36 + 34 + 61);
    let id = suggested["id"].as_str().unwrap();
    let tree: Value = json_of(http.get(format!("{runs}/{id}/tree")).bearer_auth(TOKEN)).await;
    let analyze = &tree["tree"]["input"]["actions"][0];
    assert_eq!(analyze["name"], "analyze");
    assert_eq!(analyze["status"], "success");
    let call = &analyze["calls"][0];
    assert_eq!(call["kind"], "llm");
    assert_eq!(call["model"], "scripted-model");
    assert!(
        call["request"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Does the job."),
        "{call}"
    );
    assert_eq!(call["reply"]["content"], "5");
    let emitted: Vec<&str> = analyze["emitted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(emitted.contains(&"product_summary"), "{emitted:?}");
    let failed: Value = json_of(
        http.get(format!("{runs}?status=failed&limit=5"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(failed["runs"].as_array().unwrap().len(), 1);
    let counters: Value = json_of(
        http.get(format!("{url}/v1/agents/product-reviews/counters"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(
        counters["counters"],
        json!({
            "events_in": 4, "runs_ended": 4, "runs_failed": 1, "active": 0,
            "outputs": 4, "errors": 1, "actions": 5, "failed_actions": 1,
            "model_calls": 8, "tool_calls": 0,
            "input_tokens": 40 + 38 + 52 + 50 + 36 + 34 + 61, "output_tokens": 1 + 1 + 1 + 12 + 1 + 1 + 14,
        })
    );
    let missing = http
        .get(format!("{runs}/no-such-run/tree"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
