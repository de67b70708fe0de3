//! The surface in a real browser: Debian's headless Chromium driven through chromedriver,
//! against the blog app served on a socket. It walks the main flows, proves a hostile
//! trail inert, runs axe-core on every screen, checks dark mode, and saves a screenshot of
//! every screen under `target/screenshots/`.
//!
//! Needs `chromium`, `chromedriver` and axe-core (`npm install --prefix target/browser
//! axe-core`); `.ci/run` installs all three.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::HttpServer;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{HOSTILE, app, site};

/// A chromedriver process, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn driver() -> Driver {
    let port = free_port();
    let child = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver; .ci/run installs them)");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(driver: &Driver, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
    ];
    if dark {
        args.push("--force-dark-mode");
    }
    let mut caps = serde_json::Map::new();
    let downloads = target_dir().join("browser/downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": args,
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn axe_source() -> String {
    let path = std::env::var_os("AXE_CORE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("browser/node_modules/axe-core/axe.min.js"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core at {}: {e}; install it with npm install --prefix target/browser axe-core",
            path.display()
        )
    })
}

/// Saves a screenshot and runs axe-core: no serious or critical violation.
async fn check_screen(client: &Client, axe: &str, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    client
        .execute(&format!("{axe}\n;return true;"), vec![])
        .await
        .expect("axe loads");
    let found = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done(r.violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe runs");
    assert_eq!(found, json!([]), "{name}: serious or critical accessibility violations");
    let title = client.title().await.unwrap();
    assert_ne!(title, "pwned", "{name}: a script from the trail ran");
    let injected = client
        .execute(
            "return document.querySelectorAll('main script, main img, main svg, main iframe, [onerror]').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!(0), "{name}: markup from the trail became elements");
}

/// Waits until the page's path is `path` (after a click or a submit).
async fn wait_for_path(client: &Client, path: &str) {
    for _ in 0..100 {
        if client.current_url().await.unwrap().path() == path {
            let ready = client.execute("return document.readyState", vec![]).await.unwrap();
            if ready == json!("complete") {
                return;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the browser never reached {path}");
}

/// Types `keys` into the element `at` (`"\u{e007}"` is Enter).
async fn type_into(client: &Client, at: Locator<'_>, keys: &str) {
    client.find(at).await.unwrap().send_keys(keys).await.unwrap();
}

async fn click(client: &Client, at: Locator<'_>) {
    client.find(at).await.unwrap().click().await.unwrap();
}

async fn text(client: &Client) -> String {
    client.find(Locator::Css("main")).await.unwrap().text().await.unwrap()
}

#[actix_web::test]
async fn a_browser_walks_every_screen_and_the_hostile_trail_stays_text() {
    let site = site().await;
    let axe = axe_source();
    let jobs = app::export_jobs(&site.exports).unwrap();
    let surface = app::audit_surface(site.pool.clone(), jobs);
    let pool = site.pool.clone();
    let server = HttpServer::new(move || app::app_with(pool.clone(), surface.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let driver = driver().await;
    let client = browser(&driver, false).await;

    // Users 2 and 3 are refused; user 1 signs in with the demo cookie.
    client.goto(&format!("{base}/demo/sign-in?user=2")).await.unwrap();
    assert!(text(&client).await.contains("not allowed"));
    client.goto(&format!("{base}/demo/sign-in?user=1")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/audit/");
    check_screen(&client, &axe, "home").await;

    // Find a row, then see it as of a moment.
    client
        .find(Locator::Css("#row-table"))
        .await
        .unwrap()
        .select_by_value("public.posts")
        .await
        .unwrap();
    type_into(&client, Locator::Css("#row-key"), "1").await;
    type_into(&client, Locator::Css("#row-key"), "\u{e007}").await;
    wait_for_path(&client, "/audit/rows").await;
    assert!(text(&client).await.contains("Row 1 of public.posts"));
    check_screen(&client, &axe, "row-history").await;
    client
        .execute("document.getElementById('asof-at').value = '2100-01-01T00:00:00'; document.querySelector('#asof-at').form.submit();", vec![])
        .await
        .unwrap();
    client.wait().for_element(Locator::Css(".asof")).await.unwrap();
    let asof = text(&client).await;
    assert!(asof.contains("the row was as the update"), "{asof}");
    assert!(asof.contains("Plain"), "the title after the update: {asof}");
    check_screen(&client, &axe, "row-as-of").await;

    // The timeline, filtered, to a transaction and its diff.
    client.goto(&format!("{base}/audit/timeline")).await.unwrap();
    let from = client
        .find(Locator::Css("#f-from"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert!(
        from.is_some_and(|v| !v.is_empty()),
        "empty filters open the last 24 hours"
    );
    type_into(&client, Locator::Css("#f-table"), "public.posts").await;
    click(&client, Locator::Css(".filters button[type=submit]")).await;
    for _ in 0..100 {
        if client
            .current_url()
            .await
            .unwrap()
            .query()
            .unwrap_or("")
            .contains("table=public.posts")
        {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    client.wait().for_element(Locator::Css("p.count")).await.unwrap();
    assert!(text(&client).await.contains("2 changes match."));
    check_screen(&client, &axe, "timeline").await;
    let rows = client
        .find_all(Locator::Css("tbody tr td:first-child a"))
        .await
        .unwrap();
    rows.last().unwrap().click().await.unwrap();
    wait_for_path(&client, "/audit/transactions/2").await;
    let transaction = text(&client).await;
    assert!(
        transaction.contains(HOSTILE),
        "the hostile title shows as text: {transaction}"
    );
    assert!(transaction.contains("post_created"));
    assert!(transaction.contains("masked"));
    check_screen(&client, &axe, "transaction").await;

    // Actor and correlation pages.
    click(&client, Locator::LinkText("user:2")).await;
    wait_for_path(&client, "/audit/actors").await;
    check_screen(&client, &axe, "actor").await;
    client
        .goto(&format!("{base}/audit/correlations?id=flow-1"))
        .await
        .unwrap();
    assert!(text(&client).await.contains("post_created"));
    check_screen(&client, &axe, "correlation").await;

    // The comment's body, request id and correlation id are the payload too.
    client
        .goto(&format!(
            "{base}/audit/correlations?id={}",
            threadline::read::percent_encode(HOSTILE)
        ))
        .await
        .unwrap();
    assert!(text(&client).await.contains("comment_created"));
    check_screen(&client, &axe, "correlation-hostile").await;
    client
        .goto(&format!("{base}/audit/rows?table=public.comments&key=1"))
        .await
        .unwrap();
    let content = client
        .execute("return document.querySelector('main').textContent", vec![])
        .await
        .unwrap();
    assert!(
        content.as_str().is_some_and(|text| text.contains(HOSTILE)),
        "the comment's body, in the collapsed version, is text: {content}"
    );
    check_screen(&client, &axe, "row-hostile").await;

    // The download the timeline links to: CSV with the export's header.
    client
        .goto(&format!("{base}/audit/timeline?table=public.posts"))
        .await
        .unwrap();
    let downloads = target_dir().join("browser/downloads");
    let _ = std::fs::remove_file(downloads.join("changes.csv"));
    click(&client, Locator::LinkText("CSV")).await;
    let mut csv = String::new();
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(downloads.join("changes.csv")) {
            csv = text;
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(csv.starts_with("id,transaction_id,captured_at,"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), 3, "a header and two changes: {csv}");

    // Save a view, queue a background export, and the governance screens.
    type_into(&client, Locator::Css("#view-name"), "posts").await;
    type_into(&client, Locator::Css("#view-name"), "\u{e007}").await;
    wait_for_path(&client, "/audit/views").await;
    check_screen(&client, &axe, "saved-views").await;
    client
        .goto(&format!("{base}/audit/timeline?table=public.posts"))
        .await
        .unwrap();
    click(&client, Locator::Css("form[action$='/exports/request'] button")).await;
    wait_for_path(&client, "/audit/exports").await;
    assert!(text(&client).await.contains("table=public.posts"));
    check_screen(&client, &axe, "exports").await;
    for (screen, path, expect) in [
        ("coverage", "/audit/coverage", "covered"),
        ("policy", "/audit/policy", "matches"),
        ("retention", "/audit/retention", "Prune now"),
        ("evidence", "/audit/evidence", "No evidence recorded."),
    ] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        assert!(text(&client).await.contains(expect), "{screen}");
        check_screen(&client, &axe, screen).await;
    }
    client.goto(&format!("{base}/audit/transactions/nope")).await.unwrap();
    assert!(text(&client).await.contains("transaction id"));
    check_screen(&client, &axe, "bad-request").await;
    let light = client
        .execute("return getComputedStyle(document.body).backgroundColor", vec![])
        .await
        .unwrap();
    assert_eq!(
        light,
        json!("rgb(255, 255, 255)"),
        "the stylesheet applies under the CSP"
    );
    client.close().await.unwrap();

    // Dark mode from the system's preference.
    let dark = browser(&driver, true).await;
    dark.goto(&format!("{base}/demo/sign-in?user=1")).await.unwrap();
    let background = dark
        .execute("return getComputedStyle(document.body).backgroundColor", vec![])
        .await
        .unwrap();
    assert_eq!(background, json!("rgb(13, 17, 23)"), "dark colors");
    check_screen(&dark, &axe, "home-dark").await;
    dark.close().await.unwrap();
    handle.stop(true).await;
}
