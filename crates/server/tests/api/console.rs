//! The console: its access rules over HTTP, and a walk through every page
//! in a real browser (Debian's chromium and chromium-driver, through
//! WebDriver with fantoccini), saving a full-page screenshot of each under
//! `target/console-screenshots/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use card_member_server::DEV_SIGNUP_CARD_ID;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{
    CODE, console_http as http, console_session as session, console_token as token, paced,
    spawn_app,
};
use crate::notifications::{Reply, TestReceiver, notify_to, sign_up};

#[tokio::test]
async fn the_console_needs_the_admin_token_and_every_form_its_csrf_token() {
    let app = spawn_app().await;
    let without = http()
        .get(format!("http://{}/console/brands", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status().as_u16(), 401);
    let wrong = http()
        .get(format!(
            "http://{}/console/?token=not-the-token",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let cookie = session(&app).await;
    let page = http()
        .get(format!("http://{}/console/brands", app.address))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script"), "the console runs no JavaScript");
    let forged = http()
        .post(format!(
            "http://{}/console/brands/{}/suspend",
            app.address, app.brand.brand_id
        ))
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("csrf=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let tampered = http()
        .get(format!("http://{}/console/brands", app.address))
        .header("Cookie", format!("{cookie}0"))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status().as_u16(), 401);
    // The forged form changed nothing: the brand still answers.
    app.get_card().await.user_card(&app);
}

#[tokio::test]
async fn the_consoles_resend_of_a_notification_being_sent_answers_409_and_sends_it_once() {
    let app = spawn_app().await;
    let hanging = TestReceiver::start(&[Reply::Hang]).await;
    notify_to(&app, DEV_SIGNUP_CARD_ID, &hanging.url()).await;
    sign_up(&app, "oHeldInTheConsole").await;
    let id = hanging.wait_for(1, Duration::from_secs(5)).await[0]
        .envelope()
        .id;
    let cookie = session(&app).await;
    let page = http()
        .get(format!("http://{}/console/notifications/{id}", app.address))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the resend form's CSRF token");
    let resent = http()
        .post(format!(
            "http://{}/console/notifications/{id}/resend",
            app.address
        ))
        .header("Cookie", &cookie)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resent.status().as_u16(), 409);
    let said = resent.text().await.unwrap();
    assert!(said.contains("is being sent now"), "{said}");
    // Its attempt still waits for the receiver's answer: nothing else was
    // sent meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hanging.received().len(), 1, "sent once");
}

/// chromedriver on a free port, ended with the test.
struct Driver(Child, u16);

impl Driver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .expect("chromium-driver is installed (.ci/run installs it)");
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(driver: &Driver, width: u32) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            format!("--window-size={width},900")]}),
    );
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a chromium session")
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every table of the page fits its box: no column hidden behind a
/// horizontal scrollbar.
async fn assert_tables_fit(browser: &Client, page: &str) {
    let overflowing = browser
        .execute(
            "return [...document.querySelectorAll('.scroll, table')]\
               .filter(e => e.scrollWidth > e.clientWidth + 1)\
               .map(e => e.tagName + ' ' + e.scrollWidth + '>' + e.clientWidth);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflowing,
        json!([]),
        "{page}: a table is wider than its box"
    );
}

/// A full-page screenshot: the window grown to the page's height first.
async fn shoot(browser: &Client, name: &str, width: u32) {
    let height = browser
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(900);
    browser
        .set_window_size(width, u32::try_from(height.clamp(600, 6000)).unwrap() + 100)
        .await
        .unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    browser.set_window_size(width, 900).await.unwrap();
}

/// The browser's log since the last call, as chromedriver keeps it.
async fn browser_log(driver: &Driver, browser: &Client) -> Vec<Value> {
    let session = browser.session_id().await.unwrap().unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.1
        ))
        .header("Content-Type", "application/json")
        .body(json!({"type": "browser"}).to_string())
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    body["value"].as_array().cloned().unwrap_or_default()
}

/// The text of the first element `css` selects, once the page a click
/// led to has loaded (a click does not wait for the navigation it starts).
async fn text_of(browser: &Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        let found = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await,
            Err(err) => Err(err),
        };
        match found {
            Ok(text) => return text,
            Err(err) if started.elapsed() > Duration::from_secs(10) => panic!("{css}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Clicks the element `locator` finds, once it is there.
async fn click(browser: &Client, locator: Locator<'_>) {
    let started = Instant::now();
    loop {
        let clicked = match browser.find(locator).await {
            Ok(element) => element.click().await,
            Err(err) => Err(err),
        };
        match clicked {
            Ok(()) => return,
            Err(err) if started.elapsed() > Duration::from_secs(10) => panic!("{locator:?}: {err}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the page's text contains `wanted`.
async fn wait_text(browser: &Client, css: &str, wanted: &str) {
    let started = Instant::now();
    while !text_of(browser, css).await.contains(wanted) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{css} never showed {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_walks_the_console_in_a_real_browser() {
    let app = spawn_app().await;
    // Some traffic for the overview and personal data on the seed card,
    // and a receiver for the simulator's sign-up's notification.
    app.update(&app.seed_request("13800138000", "1990-05-20"))
        .await
        .user_card(&app);
    app.get_card().await.user_card(&app);
    let receiver = TestReceiver::start(&[]).await;
    notify_to(
        &app,
        card_member_server::DEV_SIGNUP_CARD_ID,
        &receiver.url(),
    )
    .await;
    let body = serde_json::to_vec(
        &json!({"card_id": "pDevSignUp000000000000000001", "openid": "oBrowser"}),
    )
    .unwrap();
    let sign_up_token = paced(
        &app,
        &app.signed("POST", "/brand/card-member/pre-auth-tokens", &body),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let driver = Driver::start();
    let base = format!("http://{}", app.address);
    // Chinese text renders with a CJK font, not as boxes, in the
    // screenshots (.ci/run installs Debian's fonts-noto-cjk).
    let fonts = std::process::Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        !fonts.trim().is_empty(),
        "no CJK font (fc-list :lang=zh): install fonts-noto-cjk"
    );
    for (width, suffix) in [(1280, ""), (800, "-800"), (375, "-375")] {
        let browser = browser(&driver, width).await;
        browser
            .goto(&format!("{base}/console/?token={}", token(&app)))
            .await
            .unwrap();
        assert_eq!(browser.current_url().await.unwrap().path(), "/console/");
        assert!(text_of(&browser, "h1").await.contains("Overview"));
        shoot(&browser, &format!("overview{suffix}"), width).await;
        for (path, name) in [
            ("/console/brands", "brands"),
            ("/console/templates", "templates"),
            ("/console/requests", "requests"),
            ("/console/notifications", "notifications"),
            ("/console/simulator", "simulator"),
            ("/console/faults", "faults"),
        ] {
            browser.goto(&format!("{base}{path}")).await.unwrap();
            assert_eq!(browser.current_url().await.unwrap().path(), path);
            shoot(&browser, &format!("{name}{suffix}"), width).await;
            if width >= 800 {
                assert_tables_fit(&browser, &format!("{name} at {width} px")).await;
            }
        }
        browser
            .goto(&format!("{base}/console/templates"))
            .await
            .unwrap();
        let templates = text_of(&browser, "body").await;
        assert!(
            templates.contains("会员"),
            "the templates page shows its Chinese titles: {templates}"
        );
        let requests = text_of(&browser, "body").await;
        assert!(!requests.contains("13800138000"));
        if !suffix.is_empty() {
            browser.close().await.unwrap();
            continue;
        }
        // The seed card, by its code.
        browser
            .goto(&format!("{base}/console/cards"))
            .await
            .unwrap();
        browser
            .find(Locator::Id("card-search"))
            .await
            .unwrap()
            .send_keys(CODE)
            .await
            .unwrap();
        browser
            .find(Locator::Id("search"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        shoot(&browser, "cards", width).await;
        browser
            .find(Locator::LinkText(CODE))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(text_of(&browser, "#card-state").await, "EFFECTIVE");
        assert_eq!(text_of(&browser, "#phone").await, "138****8000");
        let page = text_of(&browser, "body").await;
        assert!(
            !page.contains("13800138000") && !page.contains("1990-05-20"),
            "{page}"
        );
        assert!(text_of(&browser, "#audit").await.contains("update"));
        shoot(&browser, "card", width).await;

        // A member signs up through the simulator; the delivery appears.
        browser
            .goto(&format!("{base}/console/simulator"))
            .await
            .unwrap();
        let form = browser
            .form(Locator::Css("form[action='/console/simulator/sign-up']"))
            .await
            .unwrap();
        form.set_by_name("token", &sign_up_token).await.unwrap();
        form.set_by_name("USER_FORM_FLAG_NAME", "李雷")
            .await
            .unwrap();
        form.set_by_name("USER_FORM_FLAG_BIRTHDAY", "1991-01-01")
            .await
            .unwrap();
        form.set_by_name("choices", "每周").await.unwrap();
        browser
            .find(Locator::Id("sign-up"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let result = text_of(&browser, "#result").await;
        assert!(result.starts_with("Signed up"), "{result}");
        receiver.wait_for(1, Duration::from_secs(10)).await;
        let id = receiver.received()[0].envelope().id;
        let started = Instant::now();
        loop {
            browser
                .goto(&format!("{base}/console/notifications/{id}"))
                .await
                .unwrap();
            if text_of(&browser, "#notification-state").await == "DELIVERED" {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shoot(&browser, "notification", width).await;
        browser
            .find(Locator::Id("resend"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        receiver.wait_for(2, Duration::from_secs(10)).await;
        assert_eq!(
            receiver.received()[1].envelope().id,
            id,
            "resent with the same id"
        );

        // Inject a failure; the next read meets it, marked as injected.
        browser
            .goto(&format!("{base}/console/faults"))
            .await
            .unwrap();
        let form = browser.form(Locator::Css("form#add-fault")).await.unwrap();
        form.set_by_name("brand_id", &app.brand.brand_id)
            .await
            .unwrap();
        form.set_by_name("endpoint", "get_user_card").await.unwrap();
        form.set_by_name("kind", "error").await.unwrap();
        form.set_by_name("count", "1").await.unwrap();
        click(&browser, Locator::Id("add")).await;
        wait_text(&browser, "#faults", "get_user_card").await;
        shoot(&browser, "faults-added", width).await;
        app.get_card().await.assert_error(500, "SYSTEM_ERROR");
        browser
            .goto(&format!("{base}/console/requests"))
            .await
            .unwrap();
        wait_text(&browser, "#requests", "injected: error").await;
        browser
            .goto(&format!("{base}/console/faults"))
            .await
            .unwrap();
        assert!(
            !text_of(&browser, "#faults").await.contains("get_user_card"),
            "a fault of count 1 is spent"
        );

        // Suspend the brand, see the API refuse it, resume.
        browser
            .goto(&format!("{base}/console/brands"))
            .await
            .unwrap();
        click(
            &browser,
            Locator::Id(&format!("suspend-{}", app.brand.brand_id)),
        )
        .await;
        wait_text(&browser, "#brands", "suspended").await;
        tokio::time::sleep(Duration::from_millis(5200)).await;
        app.get_card().await.assert_error(403, "NO_AUTH");
        click(
            &browser,
            Locator::Id(&format!("resume-{}", app.brand.brand_id)),
        )
        .await;
        wait_text(&browser, "#brands", "active").await;

        let log = browser_log(&driver, &browser).await;
        let errors: Vec<&Value> = log
            .iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .collect();
        assert!(
            errors.is_empty(),
            "no errors in the browser's log: {errors:?}"
        );
        browser.close().await.unwrap();
    }
}
