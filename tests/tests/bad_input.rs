//! Bad input, on the seed routes and the generic API: each case gets its exact status and
//! `code` with a JSON body saying what is wrong, never a 500, and nothing is ever written.
//!
//! "Nothing written" is checked twice: the account's own stream is unchanged, and the next
//! event appended anywhere takes the global position right after the last one before the
//! matrix (so no case appended to any other stream either; the embedded store numbers its
//! global log without gaps).

use std::time::Duration;

use anyhow::{Result, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_e2e::{Host, HostOptions, Reply, check_stream, number};
use uuid::Uuid;

const BANK: &str = "BankAccount";

/// A body larger than the 1 MiB limit.
const OVERSIZED: usize = 3 << 20;

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

/// One request and the answer it must get.
struct Case {
    name: String,
    method: Method,
    path: String,
    body: Body,
    if_match: Option<&'static str>,
    status: u16,
    /// Acceptable codes (more than one only where the contract leaves the choice open).
    codes: &'static [&'static str],
    /// Send on a connection of its own. Oversized bodies are: whether the connection survives
    /// a 413 is `oversized_bodies_do_not_break_the_next_request`'s business, not the matrix's.
    fresh_connection: bool,
}

fn case(name: &str, method: Method, path: String, body: Body, status: u16, codes: &'static [&'static str]) -> Case {
    let fresh_connection = status == 413;
    Case { name: name.to_owned(), method, path, body, if_match: None, status, codes, fresh_connection }
}

const INVALID_JSON: &[&str] = &["invalid_json"];
const INVALID: &[&str] = &["invalid_command"];
const REJECTED: &[&str] = &["rejected"];
const NOT_FOUND: &[&str] = &["aggregate_not_found"];
const ROUTE: &[&str] = &["route_not_found"];
const TOO_LARGE: &[&str] = &["payload_too_large"];

fn raw(text: &str) -> Body {
    Body::Raw(text.as_bytes().to_vec())
}

/// `{"accountHolder": "xxx…"}` of about 3 MiB: valid JSON, too large.
fn oversized_body() -> Body {
    let mut text = String::with_capacity(OVERSIZED + 64);
    text.push_str(r#"{"accountType":"SAVINGS","openingBalance":1,"amount":1,"accountHolder":""#);
    text.extend(std::iter::repeat_n('x', OVERSIZED));
    text.push_str(r#""}"#);
    Body::Raw(text.into_bytes())
}

/// Amount bodies every amount-taking command must refuse, with their expected answer.
fn bad_amounts() -> Vec<(&'static str, Body, u16, &'static [&'static str])> {
    vec![
        ("malformed JSON", raw(r#"{"amount": 10"#), 400, INVALID_JSON),
        ("not JSON at all", raw("amount=10"), 400, INVALID_JSON),
        ("amount is a word", Body::Json(json!({"amount": "ten"})), 400, INVALID),
        ("amount is a bool", Body::Json(json!({"amount": true})), 400, INVALID),
        ("amount is a list", Body::Json(json!({"amount": [10]})), 400, INVALID),
        ("amount is null", Body::Json(json!({"amount": null})), 400, INVALID),
        ("amount missing", Body::Json(json!({})), 400, INVALID),
        ("amount misspelt", Body::Json(json!({"amonut": 10})), 400, INVALID),
        ("amount 0", Body::Json(json!({"amount": 0})), 400, REJECTED),
        ("amount -5", Body::Json(json!({"amount": -5})), 400, REJECTED),
        ("amount 10.005", Body::Json(json!({"amount": number("10.005")})), 400, INVALID),
    ]
}

/// Open-account bodies the seed route and the generic `OpenAccount` must refuse.
fn bad_openings() -> Vec<(&'static str, Body, u16, &'static [&'static str])> {
    let ok = || json!({"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 50});
    let with = |key: &str, value: Value| {
        let mut body = ok();
        body[key] = value;
        Body::Json(body)
    };
    let without = |key: &str| {
        let mut body = ok();
        if let Some(map) = body.as_object_mut() {
            map.remove(key);
        }
        Body::Json(body)
    };
    vec![
        ("malformed JSON", raw(r#"{"accountHolder": "Ada","#), 400, INVALID_JSON),
        // Well-formed JSON but not an object: the contract leaves the code open.
        ("a JSON list", raw("[1, 2]"), 400, &["invalid_json", "invalid_command"]),
        ("holder is a number", with("accountHolder", json!(42)), 400, INVALID),
        ("balance is a word", with("openingBalance", json!("fifty")), 400, INVALID),
        ("balance 50.001", with("openingBalance", number("50.001")), 400, INVALID),
        ("unknown account type", with("accountType", json!("CHECKING")), 400, INVALID),
        ("account type lower case", with("accountType", json!("savings")), 400, INVALID),
        ("holder missing", without("accountHolder"), 400, INVALID),
        ("account type missing", without("accountType"), 400, INVALID),
        ("empty object", Body::Json(json!({})), 400, INVALID),
        // The seed answered a negative opening balance as a business error.
        ("balance -5", with("openingBalance", json!(-5)), 400, &["rejected", "invalid_command"]),
    ]
}

/// Seed routes: every refusal, unknown ids, unknown routes, oversized bodies.
fn seed_cases(account: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (name, body, status, codes) in bad_openings() {
        cases.push(case(&format!("open: {name}"), Method::POST, "/api/v1/openBankAccount".into(), body, status, codes));
    }
    for route in ["depositFunds", "withdrawFunds"] {
        for (name, body, status, codes) in bad_amounts() {
            cases.push(case(
                &format!("{route}: {name}"),
                Method::PUT,
                format!("/api/v1/{route}/{account}"),
                body,
                status,
                codes,
            ));
        }
    }
    cases.push(case(
        "withdrawFunds: insufficient funds",
        Method::PUT,
        format!("/api/v1/withdrawFunds/{account}"),
        Body::Json(json!({"amount": 1000})),
        400,
        REJECTED,
    ));
    let unknown = Uuid::new_v4();
    for id in [unknown.to_string(), "not-a-uuid".to_owned()] {
        for route in ["depositFunds", "withdrawFunds"] {
            cases.push(case(
                &format!("{route}: unknown id {id}"),
                Method::PUT,
                format!("/api/v1/{route}/{id}"),
                Body::Json(json!({"amount": 10})),
                404,
                NOT_FOUND,
            ));
        }
        cases.push(case(
            &format!("closeBankAccount: unknown id {id}"),
            Method::DELETE,
            format!("/api/v1/closeBankAccount/{id}"),
            Body::None,
            404,
            NOT_FOUND,
        ));
    }
    for (method, path) in [
        (Method::GET, "/api/v1/noSuchRoute".to_owned()),
        (Method::POST, "/api/v2/openBankAccount".to_owned()),
        (Method::POST, "/api/v1/openBankAccount/extra".to_owned()),
        (Method::PUT, format!("/api/v1/depositFunds/{account}/extra")),
        (Method::GET, "/nothing/here".to_owned()),
    ] {
        let name = format!("unknown route {method} {path}");
        cases.push(case(&name, method, path, Body::Json(json!({"amount": 10})), 404, ROUTE));
    }
    cases.push(case(
        "open: 3 MiB body",
        Method::POST,
        "/api/v1/openBankAccount".into(),
        oversized_body(),
        413,
        TOO_LARGE,
    ));
    cases.push(case(
        "depositFunds: 3 MiB body",
        Method::PUT,
        format!("/api/v1/depositFunds/{account}"),
        oversized_body(),
        413,
        TOO_LARGE,
    ));
    cases
}

/// Generic API: the same refusals, plus unknown commands and types, bad `If-Match`, reads.
fn generic_cases(account: &str) -> Vec<Case> {
    let command = |id: &str, name: &str| format!("/api/aggregates/{BANK}/{id}/commands/{name}");
    let mut cases = Vec::new();
    for (name, body, status, codes) in bad_openings() {
        let path = command(&Uuid::new_v4().to_string(), "OpenAccount");
        cases.push(case(&format!("OpenAccount: {name}"), Method::POST, path, body, status, codes));
    }
    for name in ["DepositFunds", "WithdrawFunds"] {
        for (what, body, status, codes) in bad_amounts() {
            cases.push(case(&format!("{name}: {what}"), Method::POST, command(account, name), body, status, codes));
        }
    }
    cases.push(case(
        "DepositFunds: empty body is {}",
        Method::POST,
        command(account, "DepositFunds"),
        Body::None,
        400,
        INVALID,
    ));
    cases.push(case(
        "WithdrawFunds: insufficient funds",
        Method::POST,
        command(account, "WithdrawFunds"),
        Body::Json(json!({"amount": 1000})),
        400,
        REJECTED,
    ));
    let unknown = Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        for name in ["DepositFunds", "WithdrawFunds", "CloseAccount"] {
            cases.push(case(
                &format!("{name}: unknown id {id}"),
                Method::POST,
                command(id, name),
                Body::Json(json!({"amount": 10})),
                404,
                NOT_FOUND,
            ));
        }
        cases.push(case(
            &format!("state of unknown id {id}"),
            Method::GET,
            format!("/api/aggregates/{BANK}/{id}"),
            Body::None,
            404,
            NOT_FOUND,
        ));
        cases.push(case(
            &format!("events of unknown id {id}"),
            Method::GET,
            format!("/api/aggregates/{BANK}/{id}/events"),
            Body::None,
            404,
            NOT_FOUND,
        ));
    }
    for name in ["TransferFunds", "Happened"] {
        cases.push(case(
            &format!("unknown command {name}"),
            Method::POST,
            command(account, name),
            Body::Json(json!({"amount": 10})),
            404,
            &["unknown_command"],
        ));
    }
    let spaceship = Uuid::new_v4();
    for (method, path) in [
        (Method::POST, format!("/api/aggregates/Spaceship/{spaceship}/commands/Launch")),
        (Method::GET, format!("/api/aggregates/Spaceship/{spaceship}")),
        (Method::GET, format!("/api/aggregates/Spaceship/{spaceship}/events")),
    ] {
        let name = format!("unknown aggregate type: {method} {path}");
        let body = if method == Method::GET { Body::None } else { Body::Json(json!({})) };
        cases.push(case(&name, method, path, body, 404, &["unknown_aggregate_type"]));
    }
    for if_match in ["abc", "-1", "1.5", ""] {
        let mut bad = case(
            &format!("If-Match {if_match:?}"),
            Method::POST,
            command(account, "DepositFunds"),
            Body::Json(json!({"amount": 10})),
            400,
            &["bad_if_match"],
        );
        bad.if_match = Some(if_match);
        cases.push(bad);
    }
    for (method, path) in [
        (Method::GET, "/api/aggregates".to_owned()),
        (Method::POST, format!("/api/aggregates/{BANK}/{account}/commands")),
        (Method::POST, format!("/api/aggregates/{BANK}/{account}/orders/DepositFunds")),
    ] {
        let name = format!("unknown route {method} {path}");
        cases.push(case(&name, method, path, Body::Json(json!({"amount": 10})), 404, ROUTE));
    }
    cases.push(case(
        "DepositFunds: 3 MiB body",
        Method::POST,
        command(account, "DepositFunds"),
        oversized_body(),
        413,
        TOO_LARGE,
    ));
    cases.push(case(
        "OpenAccount: 3 MiB body",
        Method::POST,
        command(&Uuid::new_v4().to_string(), "OpenAccount"),
        oversized_body(),
        413,
        TOO_LARGE,
    ));
    cases
}

async fn send(host: &Host, case: Case) -> Result<Reply> {
    let mut request = if case.fresh_connection {
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build()?;
        client.request(case.method, host.url(&case.path))
    } else {
        host.request(case.method, &case.path)
    };
    if let Some(if_match) = case.if_match {
        request = request.header("If-Match", if_match);
    }
    request = match case.body {
        Body::None => request,
        Body::Json(value) => request.json(&value),
        Body::Raw(bytes) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes),
    };
    host.send(request).await
}

/// Open an account, run `cases`, then prove nothing was written anywhere.
async fn run_matrix(cases: fn(&str) -> Vec<Case>) -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;
    let account = host.open_account("Alan Turing", "100").await?;
    let before = host.events(BANK, &account).await?;
    let last_position = before.last().and_then(|e| e["position"].as_u64()).unwrap_or(0);

    let mut failures = Vec::new();
    let cases = cases(&account);
    let total = cases.len();
    for case in cases {
        let name = case.name.clone();
        let (status, codes) = (case.status, case.codes);
        match send(&host, case).await {
            Ok(reply) => {
                if let Err(e) = reply.check_error(status, codes) {
                    failures.push(format!("{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e:#}")),
        }
    }
    if !failures.is_empty() {
        bail!("{} of {total} cases failed:\n  {}", failures.len(), failures.join("\n  "));
    }

    host.healthy().await?;
    let after = host.events(BANK, &account).await?;
    check_stream(&after, BANK, &account)?;
    ensure!(after == before, "bad input changed the stream:\nbefore {before:?}\nafter {after:?}");
    let state = host.state(BANK, &account, None).await?.expect_status(200)?;
    ensure!(sluice_e2e::decimal(&state.body["state"]["balance"])? == "100", "balance moved: {state}");

    // The next append anywhere follows the last event written before the matrix.
    let next =
        host.put_json(&format!("/api/v1/depositFunds/{account}"), &json!({"amount": 1})).await?.expect_status(200)?;
    ensure!(next.u64_field("version")? == 2, "the account moved during the matrix: {next}");
    let position = next.u64_field("position")?;
    ensure!(
        position == last_position + 1,
        "the next event has position {position}, not {}: bad input appended {} event(s) somewhere",
        last_position + 1,
        position.saturating_sub(last_position + 1)
    );
    Ok(())
}

#[tokio::test]
async fn seed_routes_refuse_bad_input_and_write_nothing() -> Result<()> {
    run_matrix(seed_cases).await
}

#[tokio::test]
async fn generic_api_refuses_bad_input_and_writes_nothing() -> Result<()> {
    run_matrix(generic_cases).await
}

/// A 413 must not leave the client's next request on a dead connection: a server that answers
/// before reading the body and then closes must say `Connection: close` (RFC 9112, 9.6), or
/// read the rest of the body and keep the connection. Sent through one pooled client, as real
/// clients do.
#[tokio::test]
async fn oversized_bodies_do_not_break_the_next_request() -> Result<()> {
    let host = Host::start(HostOptions::default()).await?;
    let account = host.open_account("Alan Turing", "100").await?;
    let Body::Raw(oversized) = oversized_body() else { bail!("oversized body is raw") };
    for round in 1..=3 {
        for path in
            ["/api/v1/openBankAccount".to_owned(), format!("/api/aggregates/{BANK}/{account}/commands/DepositFunds")]
        {
            let reply = host.send_raw(Method::POST, &path, oversized.clone()).await;
            let reply = reply.map_err(|e| e.context(format!("round {round}: oversized POST {path}")))?;
            reply.check_error(413, TOO_LARGE)?;
            let next = host.put_json(&format!("/api/v1/depositFunds/{account}"), &json!({"amount": 1})).await;
            next.map_err(|e| e.context(format!("round {round}: the request after a 413 on {path} failed")))?
                .expect_status(200)?;
        }
    }
    let state = host.state(BANK, &account, None).await?.expect_status(200)?;
    ensure!(sluice_e2e::decimal(&state.body["state"]["balance"])? == "106", "balance: {state}");
    Ok(())
}

/// A refusal of text or numbers no read store can hold: the request, its status and `code`, and
/// words its message must contain (where the bad value was).
struct Unstorable {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
    says: &'static str,
}

fn unstorable_cases(account: &str, post: &str) -> Vec<Unstorable> {
    let body = |text: &str| Some(text.as_bytes().to_vec());
    let refuse = |method: Method, path: String, body: Option<Vec<u8>>, status, code, says| Unstorable {
        method,
        path,
        body,
        status,
        code,
        says,
    };
    let open = || "/api/v1/openBankAccount".to_owned();
    let generic = |id: &str, command: &str| format!("/api/aggregates/{BANK}/{id}/commands/{command}");
    let fresh = Uuid::new_v4().to_string();
    let nul = "contains a NUL character (U+0000)";
    vec![
        // NUL in a command body: values, nested values and keys, on seed and generic routes.
        refuse(
            Method::POST,
            open(),
            body(r#"{"accountHolder": "Ada\u0000", "accountType": "SAVINGS", "openingBalance": 5}"#),
            400,
            "unstorable_value",
            r#""accountHolder" contains a NUL character (U+0000), which no read store can hold"#,
        ),
        refuse(
            Method::POST,
            generic(&fresh, "OpenAccount"),
            body(r#"{"accountHolder": "\u0000", "accountType": "SAVINGS", "openingBalance": 5}"#),
            400,
            "unstorable_value",
            r#""accountHolder" contains"#,
        ),
        refuse(
            Method::PUT,
            format!("/api/v1/depositFunds/{account}"),
            body(r#"{"amount": 5, "note": {"lines": ["ok", "x\u0000"]}}"#),
            400,
            "unstorable_value",
            r#""note.lines[1]" contains"#,
        ),
        refuse(
            Method::PUT,
            format!("/api/v1/addComment/{post}"),
            body(r#"{"comment": "hi", "user\u0000name": "Bo"}"#),
            400,
            "unstorable_value",
            nul,
        ),
        refuse(
            Method::POST,
            "/api/v1/newPost".into(),
            body(r#"{"author": "Bo", "message": "a\u0000"}"#),
            400,
            "unstorable_value",
            r#""message" contains"#,
        ),
        // Lone surrogates are not text: malformed JSON.
        refuse(
            Method::POST,
            open(),
            body(r#"{"accountHolder": "\ud800", "accountType": "SAVINGS", "openingBalance": 5}"#),
            400,
            "invalid_json",
            "surrogate",
        ),
        refuse(
            Method::POST,
            "/api/v1/newPost".into(),
            body(r#"{"author": "\udc00", "message": "m"}"#),
            400,
            "invalid_json",
            "surrogate",
        ),
        // Numbers beyond every numeric column.
        refuse(
            Method::PUT,
            format!("/api/v1/depositFunds/{account}"),
            body(r#"{"amount": 99999999999999999999}"#),
            400,
            "unstorable_value",
            r#""amount" is 99999999999999999999, beyond the 64-bit integer range"#,
        ),
        refuse(
            Method::POST,
            generic(account, "DepositFunds"),
            body(r#"{"amount": 1e400}"#),
            400,
            "unstorable_value",
            r#""amount" is 1e+400"#,
        ),
        // NUL and bytes that are not UTF-8 in paths and queries, on query and command routes.
        refuse(Method::GET, "/api/v1/bankAccountLookup/byHolder/%00".into(), None, 400, "bad_path", nul),
        refuse(Method::GET, "/api/v1/bankAccountLookup/byHolder/Ada%00".into(), None, 400, "bad_path", nul),
        refuse(Method::GET, "/api/v1/bankAccountLookup/byHolder/%ff".into(), None, 400, "bad_path", "not UTF-8"),
        refuse(Method::GET, "/api/v1/postLookup/byAuthor/%ed%a0%80".into(), None, 400, "bad_path", "not UTF-8"),
        refuse(Method::PUT, "/api/v1/depositFunds/%ff".into(), body(r#"{"amount": 5}"#), 400, "bad_path", "not UTF-8"),
        refuse(Method::POST, generic("%00", "DepositFunds"), body(r#"{"amount": 5}"#), 400, "bad_path", nul),
        refuse(Method::POST, generic("%c3", "DepositFunds"), body(r#"{"amount": 5}"#), 400, "bad_path", "not UTF-8"),
        refuse(Method::GET, format!("/api/aggregates/{BANK}/%ff/events"), None, 400, "bad_path", "not UTF-8"),
        refuse(
            Method::GET,
            "/api/projections/accounts/queries/byHolder?accountHolder=%00".into(),
            None,
            400,
            "bad_query",
            r#"query parameter "accountHolder" contains a NUL"#,
        ),
        refuse(
            Method::GET,
            "/api/projections/accounts/queries/byHolder?accountHolder=%ff".into(),
            None,
            400,
            "bad_query",
            "not UTF-8",
        ),
        refuse(Method::GET, "/api/v1/postLookup/?x%00=1".into(), None, 400, "bad_query", nul),
    ]
}

/// Text and numbers no read store can hold are refused at the edge with a 400 saying where,
/// alike on every read store; nothing is appended; long text (indexed: MariaDB's prefix index;
/// or past the 64 KiB of MariaDB's TEXT) reaches the read model like any other.
async fn unstorable_input_on(read_store: Option<String>) -> Result<()> {
    let mut options = HostOptions::with_plugins(&[
        sluice_e2e::Plugin::BankAccount,
        sluice_e2e::Plugin::AccountsProjection,
        sluice_e2e::Plugin::Post,
        sluice_e2e::Plugin::PostsProjection,
    ]);
    if let Some(url) = &read_store {
        options = options.arg("--read-store").arg(url);
    }
    let host = Host::start(options).await?;
    let account = host.open_account("Ada", "100").await?;
    let post =
        host.post_json("/api/v1/newPost", &json!({"author": "Bo", "message": "first"})).await?.expect_status(201)?;
    let last_position = post.u64_field("position")?;
    let post = post.str_field("id")?.to_owned();

    let mut failures = Vec::new();
    let cases = unstorable_cases(&account, &post);
    let total = cases.len();
    for case in cases {
        let name = format!("{} {}", case.method, case.path);
        let mut request = host.request(case.method, &case.path);
        if let Some(body) = case.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body);
        }
        let checked = match host.send(request).await {
            Ok(reply) => reply.check_error(case.status, &[case.code]).and_then(|()| {
                let message = reply.str_field("message")?;
                ensure!(message.contains(case.says), "the message does not say {:?}: {reply}", case.says);
                Ok(())
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            failures.push(format!("{name}: {e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!("{} of {total} cases failed:\n  {}", failures.len(), failures.join("\n  "));
    }

    // Long text in indexed columns (the holder, the author) and past 64 KiB (the message) is held
    // by every store, and found.
    let holder: String = "Ħ".repeat(1000);
    let body = json!({"accountHolder": holder, "accountType": "CURRENT", "openingBalance": 7});
    let opened = host.post_json("/api/v1/openBankAccount", &body).await?.expect_status(201)?;
    ensure!(
        opened.u64_field("position")? == last_position + 1,
        "the next event has position {}, not {}: a refused request appended something",
        opened.u64_field("position")?,
        last_position + 1
    );
    let long_id = opened.str_field("id")?.to_owned();
    let author: String = "a".repeat(5000);
    let posted = host
        .post_json("/api/v1/newPost", &json!({"author": author, "message": "é".repeat(100_000)}))
        .await?
        .expect_status(201)?;
    let position = posted.u64_field("position")?;
    let long_post = posted.str_field("id")?.to_owned();
    let read = |path: String| {
        let request = host.request(Method::GET, &path).header("Sluice-Position", position.to_string());
        host.send(request)
    };
    let by_holder = read(format!("/api/v1/bankAccountLookup/byHolder/{}", urlencoding(&holder))).await?;
    let by_holder = by_holder.expect_status(200)?;
    let found: Vec<&str> =
        by_holder.body["accounts"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_str()).collect();
    ensure!(found == [long_id.as_str()], "the long holder's account is not found by holder: {by_holder}");
    let by_author = read(format!("/api/v1/postLookup/byAuthor/{author}")).await?.expect_status(200)?;
    ensure!(by_author.text.contains(&long_post), "the long author's post is not found by author: {by_author}");
    host.healthy().await?;
    Ok(())
}

/// Percent-encoding of every byte but unreserved ASCII.
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[tokio::test]
async fn unstorable_input_is_refused_on_sqlite() -> Result<()> {
    unstorable_input_on(None).await
}

#[tokio::test]
async fn unstorable_input_is_refused_on_postgres() -> Result<()> {
    let Some(url) = sluice_e2e::Server::Postgres.fresh_database_url()? else { return Ok(()) };
    unstorable_input_on(Some(url)).await
}

#[tokio::test]
async fn unstorable_input_is_refused_on_mariadb() -> Result<()> {
    let Some(url) = sluice_e2e::Server::MariaDb.fresh_database_url()? else { return Ok(()) };
    unstorable_input_on(Some(url)).await
}
