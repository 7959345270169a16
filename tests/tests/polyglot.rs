//! Projections written in JavaScript and Python, against the real binary: each arrives in the
//! plugins directory like any other component, catches up from the beginning of history,
//! answers its queries exactly after a series of commands, leaves its compiled code in the
//! component cache (so a restart does not compile its language runtime again), and survives a
//! hot reload under load — replaced by a distinct build while commands keep coming, it answers
//! for every event once: none lost, none applied twice.
//!
//! The components come from `scripts/polyglot build` (a step of `scripts/test`), not from
//! tests/build.rs: [`Plugin::built`] skips the test when they are missing, or fails it under
//! `SLUICE_REQUIRE_SERVERS=1` with the command that builds them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_e2e::under_load::{TOKEN, caught_up};
use sluice_e2e::{Api, Host, HostOptions, Plugin, cents, cents_text, decimal, distinct_build, number, sha256_hex};

/// A bound on compiling a component that embeds a language runtime (SpiderMonkey, CPython) and
/// catching up: tens of seconds on a loaded two-core machine.
const LOAD: Duration = Duration::from_secs(600);

/// Start a host with the bank account or the post aggregate only.
async fn start(aggregate: Plugin) -> Result<Host> {
    Host::start(HostOptions::with_plugins(&[aggregate]).admin_token(TOKEN).request_timeout(Duration::from_secs(60)))
        .await
}

/// Write a component into the plugins directory under a name the host ignores, then rename it,
/// so it appears whole.
fn install(dir: &Path, file_name: &str, bytes: &[u8]) -> Result<()> {
    let temporary = dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&temporary, bytes).with_context(|| format!("failed to write {}", temporary.display()))?;
    let target = dir.join(file_name);
    std::fs::rename(&temporary, &target).with_context(|| format!("failed to rename to {}", target.display()))
}

/// Waits until the projection runs `component` with no lag; answers its admin listing.
async fn runs(api: &Api, name: &str, component: &[u8]) -> Result<Value> {
    let sha256 = sha256_hex(component);
    let plugin = sluice_e2e::wait_until(&format!("{name} runs build {sha256}"), LOAD, || async {
        Ok(match api.admin_plugin(name).await? {
            Some(plugin) if plugin["sha256"] == sha256.as_str() => sluice_e2e::Check::Done(plugin),
            other => sluice_e2e::Check::NotYet(format!("{other:?}")),
        })
    })
    .await?;
    ensure!(plugin["kind"] == "projection", "{plugin}");
    caught_up(api, name, LOAD).await
}

/// The compiled code of `component` is in the host's component cache, so a restart loads it
/// without compiling.
fn check_cached(host: &Host, component: &[u8]) -> Result<()> {
    let cache = host.data_dir().join("cache");
    let prefix = sha256_hex(component);
    let entries = std::fs::read_dir(&cache).with_context(|| format!("failed to list {}", cache.display()))?;
    let names: Vec<String> =
        entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    ensure!(
        names.iter().any(|n| n.starts_with(&prefix) && n.ends_with(".cwasm")),
        "no compiled {prefix} in the component cache: {names:?}"
    );
    Ok(())
}

/// `GET` a generic query route as of `position` (read-your-writes); 200 or 204.
async fn query(api: &Api, projection: &str, query: &str, params: &str, position: u64) -> Result<Value> {
    let path = format!("/api/projections/{projection}/queries/{query}?{params}&position={position}");
    let reply = api.get(&path).await?;
    match reply.status.as_u16() {
        200 => Ok(reply.body),
        204 => Ok(Value::Null),
        _ => bail!("GET {path} answered {reply}"),
    }
}

// --- JavaScript: holder_stats over the bank account ---

/// What `holder_stats` must show for one holder, in cents.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Holder {
    open: u64,
    closed: u64,
    deposits: u64,
    withdrawals: u64,
    deposited: i64,
    withdrawn: i64,
    balance: i64,
}

/// The bank history as the tests drive it, and the statistics it must produce.
#[derive(Debug, Default)]
struct Bank {
    holders: BTreeMap<String, Holder>,
    /// Open accounts: holder and balance in cents.
    accounts: BTreeMap<String, (String, i64)>,
    position: u64,
}

impl Bank {
    fn seen(&mut self, position: u64) -> Result<()> {
        ensure!(position > self.position, "position {position} does not follow {}", self.position);
        self.position = position;
        Ok(())
    }

    async fn open(&mut self, api: &Api, holder: &str, balance: &str) -> Result<String> {
        let body = json!({ "accountHolder": holder, "accountType": "SAVINGS", "openingBalance": number(balance) });
        let reply = api.post_json("/api/v1/openBankAccount", &body).await?.expect_status(201)?;
        self.seen(reply.u64_field("position")?)?;
        let id = reply.str_field("id")?.to_owned();
        let stats = self.holders.entry(holder.to_owned()).or_default();
        stats.open += 1;
        stats.balance += cents(balance)?;
        self.accounts.insert(id.clone(), (holder.to_owned(), cents(balance)?));
        Ok(id)
    }

    /// A deposit (or with `withdraw`, a withdrawal) of `amount`.
    async fn moved(&mut self, api: &Api, id: &str, amount: &str, withdraw: bool) -> Result<()> {
        let path = if withdraw { "withdrawFunds" } else { "depositFunds" };
        let reply = api.put_json(&format!("/api/v1/{path}/{id}"), &json!({ "amount": number(amount) })).await?;
        self.seen(reply.expect_status(200)?.u64_field("position")?)?;
        let (holder, balance) = self.accounts.get_mut(id).context("no such open account")?;
        let stats = self.holders.get_mut(holder.as_str()).context("no such holder")?;
        let amount = cents(amount)?;
        if withdraw {
            stats.withdrawals += 1;
            stats.withdrawn += amount;
            stats.balance -= amount;
            *balance -= amount;
        } else {
            stats.deposits += 1;
            stats.deposited += amount;
            stats.balance += amount;
            *balance += amount;
        }
        Ok(())
    }

    async fn close(&mut self, api: &Api, id: &str) -> Result<()> {
        let reply = api.delete(&format!("/api/v1/closeBankAccount/{id}")).await?.expect_status(200)?;
        ensure!(reply.str_field("message")? == "Bank account closure request successfully completed!", "{reply}");
        self.seen(reply.u64_field("position")?)?;
        let (holder, balance) = self.accounts.remove(id).context("no such open account")?;
        let stats = self.holders.get_mut(&holder).context("no such holder")?;
        stats.open -= 1;
        stats.closed += 1;
        stats.balance -= balance;
        Ok(())
    }

    /// Every holder's statistics, through the generic route and the plugin's own, are exactly
    /// the history's.
    async fn check(&self, api: &Api) -> Result<()> {
        let all = query(api, "holder_stats", "all", "", self.position).await?;
        let listed = all["holders"].as_array().with_context(|| format!("no holders in {all}"))?;
        ensure!(
            all["message"] == format!("Successfully returned statistics of {} holder(s)!", self.holders.len()),
            "{all}"
        );
        let names: Vec<&str> = listed.iter().filter_map(|h| h["accountHolder"].as_str()).collect();
        ensure!(names == self.holders.keys().map(String::as_str).collect::<Vec<_>>(), "holders {names:?} in {all}");
        for (holder, expected) in &self.holders {
            let found = listed.iter().find(|h| h["accountHolder"] == holder.as_str()).context("listed")?;
            check_holder(found, expected).with_context(|| format!("{holder} in {all}"))?;
        }
        // The plugin's own route, reading the position from the header.
        let (holder, expected) = self.holders.iter().next().context("no holder")?;
        let request = api
            .request(Method::GET, &format!("/api/v1/holderStats/{holder}"))
            .header("Sluice-Position", self.position.to_string());
        let reply = api.send(request).await?.expect_status(200)?;
        ensure!(reply.str_field("message")? == "Successfully returned holder statistics!", "{reply}");
        check_holder(&reply.body["holder"], expected).with_context(|| format!("{reply}"))?;
        api.get("/api/v1/holderStats/Nobody").await?.check_error(404, &["not_found"])?;
        Ok(())
    }
}

fn check_holder(found: &Value, expected: &Holder) -> Result<()> {
    let count = |name: &str| found[name].as_u64().with_context(|| format!("no count {name}"));
    let amount = |name: &str| -> Result<String> { decimal(&found[name]) };
    let counts = [count("openAccounts")?, count("closedAccounts")?, count("deposits")?, count("withdrawals")?];
    ensure!(
        counts == [expected.open, expected.closed, expected.deposits, expected.withdrawals],
        "counts {counts:?}, expected {expected:?}"
    );
    for (name, cents_expected) in
        [("deposited", expected.deposited), ("withdrawn", expected.withdrawn), ("balance", expected.balance)]
    {
        let text = amount(name)?;
        ensure!(cents(&text)? == cents_expected, "{name} {text}, expected {}", cents_text(cents_expected));
    }
    Ok(())
}

#[tokio::test]
async fn the_javascript_holder_stats_projection_answers_and_survives_a_hot_reload() -> Result<()> {
    if !Plugin::HolderStatsJs.built()? {
        return Ok(());
    }
    let file = Plugin::HolderStatsJs.file_name();
    let mut host = start(Plugin::BankAccount).await?;
    let mut bank = Bank::default();

    // History before it arrives: it catches up from the beginning.
    let ada = bank.open(&host, "Ada", "50").await?;
    let ada_2 = bank.open(&host, "Ada", "0.10").await?;
    let alan = bank.open(&host, "Alan Turing", "5").await?;
    bank.moved(&host, &ada, "25.25", false).await?;
    bank.moved(&host, &ada_2, "0.05", true).await?;
    let first = Plugin::HolderStatsJs.bytes()?;
    install(&host.plugins_dir(), file, &first)?;
    runs(&host, "holder_stats", &first).await?;
    check_cached(&host, &first)?;
    bank.check(&host).await?;

    // More history, then a closure.
    bank.moved(&host, &alan, "123456789.99", false).await?;
    bank.moved(&host, &ada, "0.01", true).await?;
    bank.close(&host, &ada_2).await?;
    bank.check(&host).await?;

    // Replaced by a distinct build while deposits keep coming: every one counted once.
    let second = distinct_build(&first, "second");
    install(&host.plugins_dir(), file, &second)?;
    for n in 0..20 {
        bank.moved(&host, if n % 2 == 0 { &ada } else { &alan }, "1.10", false).await?;
    }
    runs(&host, "holder_stats", &second).await?;
    bank.check(&host).await?;

    // A restart finds the compiled code in the cache and resumes where it stopped.
    host.restart().await?;
    runs(&host, "holder_stats", &second).await?;
    bank.moved(&host, &alan, "0.90", true).await?;
    bank.check(&host).await
}

// --- Python: audit_feed over the posts ---

/// One entry the feed must show.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    position: u64,
    post_id: String,
    event_type: &'static str,
    actor: Option<String>,
}

/// Run a post command; record the one event it appended.
async fn post_command(
    api: &Api,
    feed: &mut Vec<Entry>,
    method: Method,
    path: &str,
    body: Value,
    event: (&'static str, Option<&str>),
) -> Result<String> {
    let reply = api.send(api.request(method.clone(), path).json(&body)).await?;
    let status = if method == Method::POST { 201 } else { 200 };
    let reply = reply.expect_status(status).with_context(|| format!("{method} {path}"))?;
    let position = reply.u64_field("position")?;
    let post_id = reply.str_field("id")?.to_owned();
    ensure!(feed.last().is_none_or(|e| e.position < position), "position {position} out of order");
    feed.push(Entry { position, post_id: post_id.clone(), event_type: event.0, actor: event.1.map(str::to_owned) });
    Ok(post_id)
}

/// The feed, paged through `after`/`limit`, and one post's entries, are exactly `feed`.
async fn check_feed(api: &Api, feed: &[Entry]) -> Result<()> {
    let last = feed.last().map_or(0, |e| e.position);
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let page = query(api, "audit_feed", "feed", &format!("after={after}&limit=7"), last).await?;
        if page.is_null() {
            break;
        }
        let entries = page["entries"].as_array().with_context(|| format!("no entries in {page}"))?;
        ensure!(page["message"] == format!("Successfully returned {} audit entries!", entries.len()), "{page}");
        ensure!(!entries.is_empty() && entries.len() <= 7, "a page of {} entries: {page}", entries.len());
        for entry in entries {
            ensure!(entry["recordedAt"].as_str().is_some_and(|t| !t.is_empty()), "no recordedAt in {entry}");
            found.push(Entry {
                position: entry["position"].as_u64().with_context(|| format!("no position in {entry}"))?,
                post_id: entry["postId"].as_str().unwrap_or_default().to_owned(),
                event_type: match entry["eventType"].as_str() {
                    Some("PostCreatedEvent") => "PostCreatedEvent",
                    Some("PostLikedEvent") => "PostLikedEvent",
                    Some("CommentAddedEvent") => "CommentAddedEvent",
                    Some("MessageUpdatedEvent") => "MessageUpdatedEvent",
                    other => bail!("unexpected event type {other:?} in {entry}"),
                },
                actor: entry["actor"].as_str().map(str::to_owned),
            });
        }
        after = found.last().map_or(0, |e| e.position);
    }
    ensure!(found == feed, "the feed differs from the history:\n found {found:?}\nwanted {feed:?}");

    let post = &feed.first().context("an empty history")?.post_id;
    let reply = api.get(&format!("/api/v1/postAudit/{post}")).await?.expect_status(200)?;
    let positions: Vec<u64> =
        reply.body["entries"].as_array().context("no entries")?.iter().filter_map(|e| e["position"].as_u64()).collect();
    let wanted: Vec<u64> = feed.iter().filter(|e| &e.post_id == post).map(|e| e.position).collect();
    ensure!(positions == wanted, "byPost {post}: {positions:?}, wanted {wanted:?}");
    api.get("/api/v1/postAudit?limit=0").await?.check_error(400, &["invalid_query"])?;
    Ok(())
}

#[tokio::test]
async fn the_python_audit_feed_projection_lists_every_event_once_across_a_hot_reload() -> Result<()> {
    if !Plugin::AuditFeedPython.built()? {
        return Ok(());
    }
    let file = Plugin::AuditFeedPython.file_name();
    let host = start(Plugin::Post).await?;
    let mut feed = Vec::new();
    let created = |author: &'static str| ("PostCreatedEvent", Some(author));

    let ada = post_command(
        &host,
        &mut feed,
        Method::POST,
        "/api/v1/newPost",
        json!({"author": "Ada", "message": "Hello"}),
        created("Ada"),
    )
    .await?;
    let grace = post_command(
        &host,
        &mut feed,
        Method::POST,
        "/api/v1/newPost",
        json!({"author": "Grace", "message": "Hi"}),
        created("Grace"),
    )
    .await?;
    post_command(
        &host,
        &mut feed,
        Method::PUT,
        &format!("/api/v1/likePost/{ada}"),
        json!({}),
        ("PostLikedEvent", None),
    )
    .await?;
    let first = Plugin::AuditFeedPython.bytes()?;
    install(&host.plugins_dir(), file, &first)?;
    runs(&host, "audit_feed", &first).await?;
    check_cached(&host, &first)?;
    check_feed(&host, &feed).await?;

    // Replaced by a distinct build while commands keep coming.
    let second = distinct_build(&first, "second");
    install(&host.plugins_dir(), file, &second)?;
    for n in 0..12 {
        let (post, user) = if n % 2 == 0 { (&ada, "Alan") } else { (&grace, "Barbara") };
        let body = json!({"comment": format!("comment {n}"), "username": user});
        post_command(
            &host,
            &mut feed,
            Method::PUT,
            &format!("/api/v1/addComment/{post}"),
            body,
            ("CommentAddedEvent", Some(user)),
        )
        .await?;
    }
    post_command(
        &host,
        &mut feed,
        Method::PUT,
        &format!("/api/v1/editMessage/{grace}"),
        json!({"message": "Edited"}),
        ("MessageUpdatedEvent", None),
    )
    .await?;
    runs(&host, "audit_feed", &second).await?;
    check_feed(&host, &feed).await
}
