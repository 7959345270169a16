//! Generated bad input: one seeded sequence of requests (mutated bodies, ids, headers, paths and
//! query parameters, interleaved with valid commands) sent to three hosts that differ only in
//! their read store — SQLite, PostgreSQL and MariaDB; the event store is each host's embedded
//! SQLite.
//!
//! Every answer: no 5xx, every 4xx a JSON body with a message, and the same status on the three
//! hosts. Nothing is appended by a refused request: each accepted command's global position
//! follows the previous one by exactly the events it appended (the embedded log numbers without
//! gaps and this client is its only writer). At the end, the read models of the three hosts
//! (every bank and post lookup) are equal once ids are mapped through their order of creation.
//!
//! `SLUICE_FUZZ_REQUESTS` sets the number of requests per host (default 3000) and
//! `SLUICE_FUZZ_SEED` the seed (default: from the clock, printed; a failure names it).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use sluice_e2e::{Host, HostOptions, Plugin, Reply, Server};

const DEFAULT_REQUESTS: usize = 3000;

/// A path segment: literal text (already percent-encoded as it goes on the wire), or the id of
/// the n-th account or post created (modulo how many there are), which differs per host.
#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Account(usize),
    Post(usize),
}

/// What an accepted answer creates, so later requests can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Creates {
    Account,
    Post,
}

#[derive(Debug, Clone)]
struct Step {
    method: Method,
    path: Vec<Segment>,
    query: Option<String>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Option<Vec<u8>>,
    creates: Option<Creates>,
    /// A read of the read model: sent after everything accepted so far (read-your-writes).
    read: bool,
}

impl Step {
    fn new(method: Method, path: Vec<Segment>) -> Self {
        Self { method, path, query: None, headers: Vec::new(), body: None, creates: None, read: false }
    }

    fn json(mut self, body: &Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.headers.push(("content-type", b"application/json".to_vec()));
        self
    }

    fn describe(&self) -> String {
        let path: Vec<String> = self.path.iter().map(|s| format!("{s:?}")).collect();
        let body = self.body.as_ref().map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned());
        format!(
            "{} {} ?{:?} headers {:?} body {:?}",
            self.method,
            path.join("/"),
            self.query,
            self.headers.iter().map(|(n, v)| (n, String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>(),
            body
        )
    }
}

fn text(s: &str) -> Segment {
    Segment::Text(s.to_owned())
}

fn lit(path: &str) -> Vec<Segment> {
    path.split('/').filter(|s| !s.is_empty()).map(text).collect()
}

fn with(mut path: Vec<Segment>, segment: Segment) -> Vec<Segment> {
    path.push(segment);
    path
}

/// The generator: a seeded RNG and the vocabulary of bad values.
struct Gen {
    rng: fastrand::Rng,
}

impl Gen {
    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(0..100) < percent
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(0..items.len())].clone()
    }

    /// A valid holder, author or message: plain, accented, emoji, long (the indexed columns).
    fn good_text(&mut self) -> String {
        match self.rng.u8(0..8) {
            0 => "Ħéllo wörld 😀".to_owned(),
            1 => "x".repeat(self.rng.usize(200..2000)),
            2 => "O'Brien; DROP TABLE accounts; --".to_owned(),
            3 => "\u{1}control\u{7f}".to_owned(),
            4 => " ".to_owned(),
            _ => format!("name{}", self.rng.u16(0..50)),
        }
    }

    /// An amount a seed command takes: up to 15 integer digits, 2 decimals.
    fn good_amount(&mut self) -> Value {
        let text = match self.rng.u8(0..4) {
            0 => format!("{}.{:02}", self.rng.u32(0..1000), self.rng.u8(0..100)),
            1 => format!("{}", self.rng.u64(1..1_000_000)),
            2 => "999999999999999.99".to_owned(),
            _ => format!("{}", self.rng.u8(1..50)),
        };
        sluice_e2e::number(&text)
    }

    /// A JSON value of the wrong kind, or one no read store holds.
    fn bad_value(&mut self) -> Value {
        let nested = |depth: usize| {
            let mut v = json!(1);
            for _ in 0..depth {
                v = json!([v]);
            }
            v
        };
        match self.rng.u8(0..16) {
            0 => json!(null),
            1 => json!(true),
            2 => json!([1, 2]),
            3 => json!({"a": {"b": "c"}}),
            4 => json!("a\u{0}b"),
            5 => json!("\u{0}"),
            6 => sluice_e2e::number("99999999999999999999999"),
            7 => sluice_e2e::number("-9223372036854775809"),
            8 => sluice_e2e::number("1e400"),
            9 => sluice_e2e::number("1000000000000000"),
            10 => sluice_e2e::number("0.001"),
            11 => json!(-5),
            12 => nested(self.rng.usize(10..100)),
            13 => json!("x".repeat(self.rng.usize(1000..5000))),
            14 => json!(""),
            _ => json!("SAVINGS"),
        }
    }

    /// Raw body text that is not a storable JSON object.
    fn bad_raw(&mut self, valid: &str) -> Vec<u8> {
        match self.rng.u8(0..10) {
            0 => valid.as_bytes()[..self.rng.usize(0..valid.len().max(1))].to_vec(),
            1 => br#"{"accountHolder": "\ud800", "author": "\udc00", "amount": 1}"#.to_vec(),
            2 => vec![0xff, 0xfe, b'{', b'}'],
            3 => b"[1, 2, 3]".to_vec(),
            4 => b"\"just a string\"".to_vec(),
            5 => {
                let depth = self.rng.usize(100..400);
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            6 => br#"{"k\u0000": 1, "amount": 5}"#.to_vec(),
            7 => b"amount=10".to_vec(),
            8 => format!("{valid}{valid}").into_bytes(),
            _ => b"{\"a\":".to_vec(),
        }
    }

    /// A path segment for an id: existing, unknown or malformed.
    fn id(&mut self, existing: fn(usize) -> Segment) -> Segment {
        let n = self.rng.usize(0..1000);
        match self.rng.u8(0..20) {
            0 => text("%00"),
            1 => text("%ff"),
            2 => text("%ed%a0%80"),
            3 => text("not-a-uuid"),
            4 => text(&"a".repeat(self.rng.usize(150..400))),
            5 => text("00000000-0000-0000-0000-000000000000"),
            6 => text("%E2%82%AC%20x"),
            7 => text("ab%00cd"),
            8 => text("%2e%2e"),
            _ => existing(n),
        }
    }

    fn header(&mut self, step: &mut Step) {
        let (name, value): (&'static str, Vec<u8>) = match self.rng.u8(0..10) {
            0 => (
                "if-match",
                self.pick(&[&b"abc"[..], b"-1", b"1.5", b"\"2\"", b"", b"99999999999999999999999", b"\xff\xfe"])
                    .to_vec(),
            ),
            1 => ("if-match", self.rng.u8(0..5).to_string().into_bytes()),
            2 => (
                "content-type",
                self.pick(&[&b"text/plain"[..], b"application/xml", b"multipart/form-data", b"\xe9"]).to_vec(),
            ),
            3 => ("sluice-position", self.pick(&[&b"abc"[..], b"-1", b"1e3", b"99999999999", b"\xff"]).to_vec()),
            4 => ("accept", b"text/html".to_vec()),
            5 => ("content-encoding", b"gzip".to_vec()),
            _ => ("x-junk", vec![b'a'; self.rng.usize(1..100)]),
        };
        step.headers.retain(|(n, _)| *n != name);
        step.headers.push((name, value));
    }

    /// A valid command of the seed routes or the generic API.
    fn valid_command(&mut self) -> Step {
        let account = Segment::Account(self.rng.usize(0..1000));
        let post = Segment::Post(self.rng.usize(0..1000));
        match self.rng.u8(0..12) {
            0 | 1 => {
                let kind = self.pick(&["SAVINGS", "CURRENT"]);
                let body = json!({"accountHolder": self.good_text(), "accountType": kind, "openingBalance": self.good_amount()});
                Step {
                    creates: Some(Creates::Account),
                    ..Step::new(Method::POST, lit("/api/v1/openBankAccount")).json(&body)
                }
            }
            2 | 3 => Step::new(Method::PUT, with(lit("/api/v1/depositFunds"), account))
                .json(&json!({"amount": self.good_amount()})),
            4 => Step::new(Method::PUT, with(lit("/api/v1/withdrawFunds"), account))
                .json(&json!({"amount": self.good_amount()})),
            5 => {
                let path = vec![
                    text("api"),
                    text("aggregates"),
                    text("BankAccount"),
                    account,
                    text("commands"),
                    text("DepositFunds"),
                ];
                Step::new(Method::POST, path).json(&json!({"amount": self.good_amount()}))
            }
            6 if self.chance(20) => Step::new(Method::DELETE, with(lit("/api/v1/closeBankAccount"), account)),
            6 | 7 => {
                let body = json!({"author": self.good_text(), "message": self.good_text()});
                Step { creates: Some(Creates::Post), ..Step::new(Method::POST, lit("/api/v1/newPost")).json(&body) }
            }
            8 => Step::new(Method::PUT, with(lit("/api/v1/editMessage"), post))
                .json(&json!({"message": self.good_text()})),
            9 => Step::new(Method::PUT, with(lit("/api/v1/likePost"), post)),
            _ => Step::new(Method::PUT, with(lit("/api/v1/addComment"), post))
                .json(&json!({"comment": self.good_text(), "username": self.good_text()})),
        }
    }

    /// A read of the seed lookups or the generic query route, with good or bad parameters.
    fn read(&mut self) -> Step {
        let param = |g: &mut Self| -> Segment {
            match g.rng.u8(0..8) {
                0 => text("%00"),
                1 => text("%ff"),
                2 => text("name1"),
                3 => text("%C4%A6%C3%A9llo%20w%C3%B6rld%20%F0%9F%98%80"),
                4 => text(&"x".repeat(g.rng.usize(200..2000))),
                _ => text(&g.rng.u16(0..500).to_string()),
            }
        };
        let mut step = match self.rng.u8(0..11) {
            0 => Step::new(Method::GET, lit("/api/v1/bankAccountLookup/")),
            1 => Step::new(Method::GET, with(lit("/api/v1/bankAccountLookup/byId"), self.id(Segment::Account))),
            2 => Step::new(Method::GET, with(lit("/api/v1/bankAccountLookup/byHolder"), param(self))),
            3 => {
                let kind = self.pick(&["GREATER_THAN", "LESS_THAN", "EQUAL", "%00"]);
                let amount = self.pick(&["10", "10.5", "-1", "abc", "1e400", "99999999999999999999", "%ff"]);
                Step::new(
                    Method::GET,
                    vec![
                        text("api"),
                        text("v1"),
                        text("bankAccountLookup"),
                        text("withBalance"),
                        text(kind),
                        text(amount),
                    ],
                )
            }
            4 => Step::new(Method::GET, lit("/api/v1/postLookup/")),
            5 => Step::new(Method::GET, with(lit("/api/v1/postLookup/byId"), self.id(Segment::Post))),
            6 => Step::new(Method::GET, with(lit("/api/v1/postLookup/byAuthor"), param(self))),
            7 => Step::new(Method::GET, with(lit("/api/v1/postLookup/withLikes"), param(self))),
            8 => Step::new(Method::GET, lit("/api/v1/postLookup/withComments")),
            9 => {
                let mut step = Step::new(Method::GET, lit("/api/projections/accounts/queries/byHolder"));
                let value = self.pick(&["name1", "%00", "%ff", "a+b", "%ed%a0%80", ""]);
                step.query = Some(format!("accountHolder={value}"));
                step
            }
            _ => {
                let mut step = Step::new(Method::GET, lit("/api/projections/posts/queries/all"));
                step.query = Some(
                    self.pick(&["position=abc", "position=-1", "position=99999999999", "x%00=1", "%ff", "a=1&&b"])
                        .to_owned(),
                );
                step
            }
        };
        step.read = true;
        step
    }

    /// One step of the sequence.
    fn step(&mut self) -> Step {
        let roll = self.rng.u8(0..100);
        let mut step = if roll < 30 {
            self.valid_command()
        } else if roll < 55 {
            // A valid command with its body mutated.
            let mut step = self.valid_command();
            let valid =
                step.body.clone().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_else(|| "{}".into());
            if self.chance(50) {
                let mut body: Value = serde_json::from_str(&valid).unwrap_or_else(|_| json!({}));
                if let Some(map) = body.as_object_mut() {
                    let keys: Vec<String> = map.keys().cloned().collect();
                    match self.rng.u8(0..4) {
                        0 if !keys.is_empty() => {
                            let key = self.pick(&keys);
                            map.remove(&key);
                        }
                        1 => {
                            map.insert(
                                self.pick(&["extra", "k\u{0}", "amount", "\u{1F600}"]).to_owned(),
                                self.bad_value(),
                            );
                        }
                        _ if !keys.is_empty() => {
                            let key = self.pick(&keys);
                            map.insert(key, self.bad_value());
                        }
                        _ => {
                            map.insert("amount".into(), self.bad_value());
                        }
                    }
                }
                step.body = Some(body.to_string().into_bytes());
            } else {
                step.body = Some(self.bad_raw(&valid));
            }
            step
        } else if roll < 65 {
            // A valid command on an id that is unknown or malformed.
            let mut step = self.valid_command();
            if let Some(last) = step.path.iter().rposition(|s| !matches!(s, Segment::Text(_))) {
                step.path[last] = self.id(|_| Segment::Text(uuid::Uuid::new_v4().to_string()));
            } else {
                step.path.push(self.id(Segment::Account));
            }
            step
        } else if roll < 75 {
            // Headers.
            let mut step = self.valid_command();
            self.header(&mut step);
            step
        } else if roll < 93 {
            self.read()
        } else {
            // Generic reads, unknown routes and methods.
            let id = self.id(Segment::Account);
            match self.rng.u8(0..5) {
                0 => {
                    let mut step =
                        Step::new(Method::GET, vec![text("api"), text("aggregates"), text("BankAccount"), id]);
                    step.query =
                        Some(self.pick(&["version=abc", "version=1", "version=-1", "version=%00", "x=%ff"]).to_owned());
                    step
                }
                1 => Step::new(Method::GET, vec![text("api"), text("aggregates"), text("Post"), id, text("events")]),
                2 => Step::new(Method::PATCH, lit("/api/v1/openBankAccount")),
                3 => Step::new(
                    Method::POST,
                    vec![text("api"), text("aggregates"), text("%00"), id, text("commands"), text("X")],
                )
                .json(&json!({})),
                _ => Step::new(Method::GET, lit("/api/v1/%ff/nothing")),
            }
        };
        if self.chance(5) {
            self.header(&mut step);
        }
        step
    }
}

/// What one host answered, and the ids it minted, in order.
#[derive(Default)]
struct Run {
    statuses: Vec<u16>,
    accounts: Vec<String>,
    posts: Vec<String>,
    sent: usize,
    /// The global position of the last accepted command.
    last_position: u64,
}

fn render(step: &Step, run: &Run) -> String {
    let id = |ids: &[String], n: usize| {
        if ids.is_empty() { "00000000-0000-4000-8000-000000000000".to_owned() } else { ids[n % ids.len()].clone() }
    };
    let mut path = String::new();
    for segment in &step.path {
        path.push('/');
        match segment {
            Segment::Text(t) => path.push_str(t),
            Segment::Account(n) => path.push_str(&id(&run.accounts, *n)),
            Segment::Post(n) => path.push_str(&id(&run.posts, *n)),
        }
    }
    if let Some(query) = &step.query {
        path.push('?');
        path.push_str(query);
    }
    path
}

/// Send the whole sequence to one host, checking every answer.
async fn run_on(host: &Host, steps: &[Step]) -> Result<Run> {
    let mut run = Run::default();
    let mut last_position = 0u64;
    let mut versions: HashMap<String, u64> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let path = render(step, &run);
        let mut request = host.request(step.method.clone(), &path);
        let mut position_sent = false;
        for (name, value) in &step.headers {
            position_sent |= *name == "sluice-position";
            let value = HeaderValue::from_bytes(value).unwrap_or_else(|_| HeaderValue::from_static("junk"));
            request = request.header(HeaderName::from_static(name), value);
        }
        if step.read && !position_sent && last_position > 0 {
            request = request.header("sluice-position", last_position.to_string());
        }
        if let Some(body) = &step.body {
            request = request.body(body.clone());
        }
        let reply = host.send(request).await.with_context(|| format!("step {i}: {}", step.describe()))?;
        run.sent += 1;
        check_answer(&reply).with_context(|| format!("step {i}: {path}: {}", step.describe()))?;
        run.statuses.push(reply.status.as_u16());
        if reply.status.is_success() && !step.read && reply.body.get("position").is_some() {
            // An accepted command: its events follow the last accepted ones without a gap.
            let id = reply.str_field("id")?.to_owned();
            let version = reply.u64_field("version")?;
            let position = reply.u64_field("position")?;
            let appended = version - versions.get(&id).copied().unwrap_or(0);
            ensure!(
                position == last_position + appended,
                "step {i}: {path}: position {position} after {last_position} with {appended} event(s): \
                 a refused request appended something ({reply})"
            );
            last_position = position;
            versions.insert(id.clone(), version);
            match step.creates {
                Some(Creates::Account) => run.accounts.push(id),
                Some(Creates::Post) => run.posts.push(id),
                None => {}
            }
        }
    }
    run.last_position = last_position;
    Ok(run)
}

fn check_answer(reply: &Reply) -> Result<()> {
    ensure!(!reply.status.is_server_error(), "a server error: {reply}");
    if reply.status.is_client_error() {
        let content_type = reply.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        ensure!(content_type.starts_with("application/json"), "a {} that is not JSON: {reply}", reply.status);
        let message = reply.body.get("message").and_then(Value::as_str).unwrap_or("");
        ensure!(!message.trim().is_empty(), "a {} without a message: {reply}", reply.status);
    }
    Ok(())
}

/// The read model as every lookup shows it, with each host's ids replaced by their order of
/// creation and what differs by nature between hosts (dates, minted comment ids) left out; read
/// after the host's last accepted command (read-your-writes).
async fn read_model(host: &Host, run: &Run) -> Result<Value> {
    let mut names: HashMap<&str, String> = HashMap::new();
    for (i, id) in run.accounts.iter().enumerate() {
        names.insert(id, format!("account#{i}"));
    }
    for (i, id) in run.posts.iter().enumerate() {
        names.insert(id, format!("post#{i}"));
    }
    let mut model = BTreeMap::new();
    for path in ["/api/v1/bankAccountLookup/", "/api/v1/postLookup/", "/api/v1/postLookup/withComments"] {
        let request = host.request(Method::GET, path).header("sluice-position", run.last_position.to_string());
        let reply = host.send(request).await?;
        ensure!(reply.status.as_u16() == 200 || reply.status.as_u16() == 204, "{path}: {reply}");
        model.insert(path, normalise(&reply.body, &names));
    }
    Ok(json!(model))
}

fn normalise(value: &Value, names: &HashMap<&str, String>) -> Value {
    match value {
        Value::String(s) => names.get(s.as_str()).map_or_else(|| value.clone(), |n| json!(n)),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(|v| normalise(v, names)).collect();
            items.sort_by_key(Value::to_string);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.to_ascii_lowercase().contains("date") && k.as_str() != "commentId")
                .map(|(k, v)| (k.clone(), normalise(v, names)))
                .collect(),
        ),
        _ => value.clone(),
    }
}

async fn host_on(read_store: Option<&str>) -> Result<Host> {
    let mut options = HostOptions::with_plugins(&[
        Plugin::BankAccount,
        Plugin::AccountsProjection,
        Plugin::Post,
        Plugin::PostsProjection,
    ]);
    if let Some(url) = read_store {
        options = options.arg("--read-store").arg(url);
    }
    Host::start(options).await
}

#[tokio::test]
async fn generated_bad_input_on_three_read_stores() -> Result<()> {
    let (Some(postgres), Some(mariadb)) =
        (Server::Postgres.fresh_database_url()?, Server::MariaDb.fresh_database_url()?)
    else {
        return Ok(());
    };
    let requests: usize = match std::env::var("SLUICE_FUZZ_REQUESTS") {
        Ok(n) => n.parse().context("SLUICE_FUZZ_REQUESTS must be a whole number")?,
        Err(_) => DEFAULT_REQUESTS,
    };
    let seed: u64 = match std::env::var("SLUICE_FUZZ_SEED") {
        Ok(n) => n.parse().context("SLUICE_FUZZ_SEED must be a whole number")?,
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    eprintln!("generated input: seed {seed} (SLUICE_FUZZ_SEED), {requests} requests per host");
    let mut generator = Gen { rng: fastrand::Rng::with_seed(seed) };
    let steps: Vec<Step> = (0..requests).map(|_| generator.step()).collect();

    let hosts = [host_on(None).await?, host_on(Some(&postgres)).await?, host_on(Some(&mariadb)).await?];
    let names = ["SQLite", "PostgreSQL", "MariaDB"];
    let started = Instant::now();
    let (sqlite, pg, maria) =
        tokio::join!(run_on(&hosts[0], &steps), run_on(&hosts[1], &steps), run_on(&hosts[2], &steps));
    let runs = [
        sqlite.with_context(|| format!("seed {seed}, SQLite"))?,
        pg.with_context(|| format!("seed {seed}, PostgreSQL"))?,
        maria.with_context(|| format!("seed {seed}, MariaDB"))?,
    ];
    let elapsed = started.elapsed();
    for (name, run) in names.iter().zip(&runs) {
        let accepted = run.statuses.iter().filter(|s| **s < 300).count();
        eprintln!(
            "{name}: {} requests in {elapsed:.1?}, {accepted} accepted, {} accounts, {} posts",
            run.sent,
            run.accounts.len(),
            run.posts.len()
        );
    }

    // One behaviour on every read store: the same answer to every request.
    for (name, run) in names.iter().zip(&runs).skip(1) {
        if let Some(i) = (0..steps.len()).find(|&i| run.statuses[i] != runs[0].statuses[i]) {
            bail!(
                "seed {seed}: step {i} ({}) answered {} on SQLite but {} on {name}",
                steps[i].describe(),
                runs[0].statuses[i],
                run.statuses[i]
            );
        }
    }

    // The read models agree once every host has applied its last event.
    let mut models = Vec::new();
    for (host, run) in hosts.iter().zip(&runs) {
        models.push(read_model(host, run).await.with_context(|| format!("seed {seed}"))?);
    }
    for (name, model) in names.iter().zip(&models).skip(1) {
        ensure!(
            *model == models[0],
            "seed {seed}: the read model on {name} differs from SQLite's:\n{name}: {model}\nSQLite: {}",
            models[0]
        );
    }
    ensure!(runs[0].accounts.len() + runs[0].posts.len() > 0, "seed {seed}: nothing was created");
    Ok(())
}
