//! The social media post domain against the real binary, as the seed's clients see it: the whole
//! seed flow with every `postLookup` query checked after each step, every refusal (and that it
//! appends nothing), and both reference domains served by one host, through a read-model
//! rebuild. Each flow runs on the SQLite read store and on a fresh PostgreSQL database.
//!
//! The expected read model comes from an oracle kept here ([`Model`]): it applies each event the
//! command appended (read back from `GET /api/aggregates/Post/{id}/events`), and the flow checks
//! those events' data against what was asked, so the queries are compared with what the store
//! holds, not with what the projection happens to answer.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sluice_e2e::{Api, Host, HostOptions, Plugin, Reply, Server, Stack, check_stream, decimal, number};
use uuid::Uuid;

const POST: &str = "Post";
const POST_PLUGINS: &[Plugin] = &[Plugin::Post, Plugin::PostsProjection];
const BOTH_DOMAINS: &[Plugin] =
    &[Plugin::BankAccount, Plugin::AccountsProjection, Plugin::Post, Plugin::PostsProjection];

/// Where a test host keeps its events, publishes them and keeps its read models.
enum Backends {
    /// SQLite event store, embedded bus, the read store at this URL (the embedded SQLite if none).
    Embedded(Option<String>),
    /// The scale-out stack: this test's own MongoDB database, topic prefix and read store.
    Stack(Stack),
}

impl Backends {
    fn postgres() -> Result<Option<Self>> {
        Ok(Server::Postgres.fresh_database_url()?.map(|url| Self::Embedded(Some(url))))
    }

    /// FerretDB + Kafka + PostgreSQL, or `None` (the test skips) when they are not configured.
    fn stack() -> Result<Option<Self>> {
        Ok(Stack::fresh()?.map(Self::Stack))
    }
}

/// A host with `plugins` on `backends`.
async fn start(plugins: &[Plugin], backends: &Backends) -> Result<Host> {
    let options = match backends {
        Backends::Embedded(None) => HostOptions::with_plugins(plugins),
        Backends::Embedded(Some(url)) => HostOptions::with_plugins(plugins).arg("--read-store").arg(url),
        Backends::Stack(stack) => stack.options_with(plugins),
    };
    Host::start(options).await
}

/// A request with an optional JSON body (`None` sends no body at all).
async fn call(api: &Api, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
    let mut request = api.request(method.clone(), path);
    if let Some(body) = body {
        request = request.json(body);
    }
    api.send(request).await.with_context(|| format!("{method} {path}"))
}

/// A query that must reflect everything up to `position` (read-your-writes by header).
async fn lookup(api: &Api, path: &str, position: u64) -> Result<Reply> {
    let request = api.request(Method::GET, path).header("Sluice-Position", position.to_string());
    api.send(request).await.with_context(|| format!("GET {path}"))
}

/// A seed command answer `{"message", "id", "version", "position"}` with this status, id and
/// version; answers its position.
fn seed_answer(reply: &Reply, status: u16, id: Option<&str>, version: u64) -> Result<u64> {
    ensure!(reply.status.as_u16() == status, "expected status {status}, got {reply}");
    ensure!(reply.str_field("message").is_ok_and(|m| !m.trim().is_empty()), "no message: {reply}");
    let answered = reply.str_field("id")?;
    match id {
        Some(id) => ensure!(answered == id, "answered id {answered}, expected {id}: {reply}"),
        None => {
            Uuid::parse_str(answered).with_context(|| format!("new id {answered:?} is not a UUID: {reply}"))?;
        }
    }
    ensure!(reply.u64_field("version")? == version, "expected version {version}: {reply}");
    reply.u64_field("position")
}

/// `value[name]` as text.
fn text<'a>(value: &'a Value, name: &str) -> Result<&'a str> {
    value.get(name).and_then(Value::as_str).with_context(|| format!("no string `{name}` in {value}"))
}

/// A post with its comments sorted by id: the order of comments is the projection's choice.
fn normal(post: &Value) -> Value {
    let mut post = post.clone();
    if let Some(comments) = post.get_mut("comments").and_then(Value::as_array_mut) {
        comments.sort_by(|a, b| a["commentId"].as_str().cmp(&b["commentId"].as_str()));
    }
    post
}

/// The posts of a 200 lookup answer, by id (normalised), after checking its shape.
fn posts_by_id(reply: &Reply) -> Result<Map<String, Value>> {
    ensure!(reply.str_field("message").is_ok_and(|m| !m.trim().is_empty()), "no message: {reply}");
    let list = reply.body["posts"].as_array().with_context(|| format!("no `posts` list: {reply}"))?;
    let mut by_id = Map::new();
    for post in list {
        let id = text(post, "postId")?.to_owned();
        ensure!(by_id.insert(id.clone(), normal(post)).is_none(), "post {id} listed twice: {reply}");
    }
    Ok(by_id)
}

/// The expected read model: the posts the events say exist, as the seed's JSON shows them.
#[derive(Debug, Default)]
struct Model {
    posts: BTreeMap<String, Value>,
    /// Every post id and author ever created, so lookups of removed ones are checked too.
    ever_ids: BTreeSet<String>,
    ever_authors: BTreeSet<String>,
}

impl Model {
    /// Apply one stored event envelope.
    fn apply(&mut self, event: &Value) -> Result<()> {
        let data = &event["data"];
        let id = text(data, "id")?.to_owned();
        ensure!(event["aggregateId"] == id.as_str(), "event data names another post: {event}");
        let event_type = text(event, "eventType")?;
        if event_type == "PostCreatedEvent" {
            let author = text(data, "author")?.to_owned();
            let post = json!({
                "postId": id,
                "author": author,
                "datePosted": text(data, "datePosted")?,
                "message": text(data, "message")?,
                "likes": 0,
                "comments": [],
            });
            ensure!(self.posts.insert(id.clone(), post).is_none(), "post {id} created twice");
            self.ever_ids.insert(id);
            self.ever_authors.insert(author);
            return Ok(());
        }
        if event_type == "PostRemovedEvent" {
            ensure!(self.posts.remove(&id).is_some(), "removed post {id} was not there");
            return Ok(());
        }
        let post = self.posts.get_mut(&id).with_context(|| format!("{event_type} for a post not there: {event}"))?;
        match event_type {
            "MessageUpdatedEvent" => post["message"] = json!(text(data, "message")?),
            "PostLikedEvent" => {
                let likes = post["likes"].as_u64().context("model likes")?;
                post["likes"] = json!(likes + 1);
            }
            "CommentAddedEvent" => Self::comments(post)?.push(json!({
                "commentId": text(data, "commentId")?,
                "username": text(data, "username")?,
                "commentDate": text(data, "commentDate")?,
                "comment": text(data, "comment")?,
                "edited": false,
            })),
            "CommentUpdatedEvent" => {
                let comment_id = text(data, "commentId")?;
                let comment = Self::comments(post)?
                    .iter_mut()
                    .find(|c| c["commentId"] == comment_id)
                    .with_context(|| format!("updated comment not there: {event}"))?;
                // The comment keeps its author's spelling of the username, as in the seed.
                comment["comment"] = json!(text(data, "comment")?);
                comment["commentDate"] = json!(text(data, "editDate")?);
                comment["edited"] = json!(true);
            }
            "CommentRemovedEvent" => {
                let comment_id = text(data, "commentId")?;
                let comments = Self::comments(post)?;
                let before = comments.len();
                comments.retain(|c| c["commentId"] != comment_id);
                ensure!(comments.len() + 1 == before, "removed comment not there: {event}");
            }
            other => bail!("unexpected event type {other}: {event}"),
        }
        Ok(())
    }

    fn comments(post: &mut Value) -> Result<&mut Vec<Value>> {
        post["comments"].as_array_mut().context("model post has no comments list")
    }

    fn post(&self, id: &str) -> Result<&Value> {
        self.posts.get(id).with_context(|| format!("post {id} is not in the model"))
    }

    fn likes(post: &Value) -> u64 {
        post["likes"].as_u64().unwrap_or_default()
    }
}

/// `path` answers exactly `expected` (204 with no body when there is none).
async fn expect_posts(api: &Api, path: &str, position: u64, expected: &[&Value]) -> Result<()> {
    let reply = lookup(api, path, position).await?;
    if expected.is_empty() {
        ensure!(reply.status == 204, "GET {path}: expected 204, got {reply}");
        ensure!(reply.text.is_empty(), "GET {path}: 204 with a body: {reply}");
        return Ok(());
    }
    ensure!(reply.status == 200, "GET {path}: expected 200, got {reply}");
    let got = posts_by_id(&reply).with_context(|| format!("GET {path}"))?;
    let want: Map<String, Value> =
        expected.iter().map(|p| (p["postId"].as_str().unwrap_or_default().to_owned(), normal(p))).collect();
    ensure!(
        got == want,
        "GET {path} (position {position}):\n  got      {}\n  expected {}",
        Value::Object(got.clone()),
        Value::Object(want.clone())
    );
    Ok(())
}

/// Every seed lookup against the model: all, byId of every post ever made, byAuthor of every
/// author ever seen and of nobody, withComments, withLikes from 0 to one past the most liked.
async fn check_queries(api: &Api, model: &Model, position: u64) -> Result<()> {
    let all: Vec<&Value> = model.posts.values().collect();
    expect_posts(api, "/api/v1/postLookup/", position, &all).await?;
    for id in &model.ever_ids {
        let want: Vec<&Value> = model.posts.get(id).into_iter().collect();
        expect_posts(api, &format!("/api/v1/postLookup/byId/{id}"), position, &want).await?;
    }
    for author in model.ever_authors.iter().map(String::as_str).chain(["Nobody"]) {
        let want: Vec<&Value> = all.iter().copied().filter(|p| p["author"] == author).collect();
        expect_posts(api, &format!("/api/v1/postLookup/byAuthor/{author}"), position, &want).await?;
    }
    let commented: Vec<&Value> =
        all.iter().copied().filter(|p| p["comments"].as_array().is_some_and(|c| !c.is_empty())).collect();
    expect_posts(api, "/api/v1/postLookup/withComments", position, &commented).await?;
    let most = all.iter().map(|p| Model::likes(p)).max().unwrap_or(0);
    for n in 0..=most + 1 {
        let want: Vec<&Value> = all.iter().copied().filter(|p| Model::likes(p) >= n).collect();
        expect_posts(api, &format!("/api/v1/postLookup/withLikes/{n}"), position, &want).await?;
    }
    Ok(())
}

/// A client running seed commands, keeping the model and the positions in step.
struct Flow<'a> {
    api: &'a Api,
    model: Model,
    /// Position of the last command.
    position: u64,
    /// Positions answered, by post id, in order.
    positions: BTreeMap<String, Vec<u64>>,
}

impl<'a> Flow<'a> {
    fn new(api: &'a Api) -> Self {
        Self { api, model: Model::default(), position: 0, positions: BTreeMap::new() }
    }

    /// Run a seed command that must succeed at `version` (201 and a new id when `id` is `None`,
    /// for newPost). Answers the one event it appended, after applying it to the model.
    async fn command(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        id: Option<&str>,
        version: u64,
    ) -> Result<Value> {
        let reply = call(self.api, method.clone(), path, body.as_ref()).await?;
        let status = if id.is_none() { 201 } else { 200 };
        let position = seed_answer(&reply, status, id, version).with_context(|| format!("{method} {path}"))?;
        ensure!(position > self.position, "position {position} does not follow {}: {reply}", self.position);
        let id = reply.str_field("id")?.to_owned();
        let events = self.api.events(POST, &id).await?;
        ensure!(events.len() as u64 == version, "{method} {path}: {} events after version {version}", events.len());
        let event = events.last().context("no events")?.clone();
        ensure!(event["version"] == version && event["position"] == position, "answer {reply} vs event {event}");
        self.model.apply(&event)?;
        self.position = position;
        self.positions.entry(id).or_default().push(position);
        Ok(event)
    }

    async fn new_post(&mut self, author: &str, message: &str) -> Result<String> {
        let body = json!({ "author": author, "message": message });
        let event = self.command(Method::POST, "/api/v1/newPost", Some(body), None, 1).await?;
        ensure!(event["eventType"] == "PostCreatedEvent", "{event}");
        ensure!(event["data"]["author"] == author && event["data"]["message"] == message, "{event}");
        Ok(text(&event, "aggregateId")?.to_owned())
    }

    async fn like(&mut self, id: &str, version: u64) -> Result<()> {
        let event = self.command(Method::PUT, &format!("/api/v1/likePost/{id}"), None, Some(id), version).await?;
        ensure!(event["eventType"] == "PostLikedEvent", "{event}");
        Ok(())
    }

    /// Adds a comment; answers its id, from the event.
    async fn comment(&mut self, id: &str, username: &str, comment: &str, version: u64) -> Result<String> {
        let body = json!({ "comment": comment, "username": username });
        let event =
            self.command(Method::PUT, &format!("/api/v1/addComment/{id}"), Some(body), Some(id), version).await?;
        ensure!(event["eventType"] == "CommentAddedEvent", "{event}");
        ensure!(event["data"]["username"] == username && event["data"]["comment"] == comment, "{event}");
        let comment_id = text(&event["data"], "commentId")?;
        Uuid::parse_str(comment_id).with_context(|| format!("comment id {comment_id:?} is not a UUID"))?;
        Ok(comment_id.to_owned())
    }

    async fn check(&self) -> Result<()> {
        check_queries(self.api, &self.model, self.position).await
    }

    /// The one post `byId` answers, checked against the model.
    async fn read_post(&self, id: &str) -> Result<Value> {
        let reply =
            lookup(self.api, &format!("/api/v1/postLookup/byId/{id}"), self.position).await?.expect_status(200)?;
        let posts = posts_by_id(&reply)?;
        ensure!(posts.len() == 1, "byId {id} answered {} posts: {reply}", posts.len());
        let post = posts.get(id).with_context(|| format!("byId {id} answered another post: {reply}"))?.clone();
        ensure!(post == normal(self.model.post(id)?), "byId {id}: {post} differs from the model");
        Ok(post)
    }
}

/// The comment `comment_id` of a post JSON.
fn comment_of<'a>(post: &'a Value, comment_id: &str) -> Result<&'a Value> {
    post["comments"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["commentId"] == comment_id))
        .with_context(|| format!("no comment {comment_id} in {post}"))
}

/// Comment ids of a post JSON, sorted.
fn comment_ids(post: &Value) -> Vec<String> {
    let mut ids: Vec<String> = post["comments"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["commentId"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The seed's post flow: create, edit, like, comment, edit and remove a comment, delete, with
/// every lookup checked against the events after each step.
async fn seed_post_flow(backends: &Backends) -> Result<()> {
    let host = start(POST_PLUGINS, backends).await?;
    host.healthy().await?;
    let mut flow = Flow::new(host.api());

    // Nothing yet: every lookup is 204.
    for path in ["/api/v1/postLookup/", "/api/v1/postLookup/withComments", "/api/v1/postLookup/withLikes/0"] {
        expect_posts(&host, path, 0, &[]).await?;
    }
    expect_posts(&host, "/api/v1/postLookup/byAuthor/Ada", 0, &[]).await?;
    expect_posts(&host, &format!("/api/v1/postLookup/byId/{}", Uuid::new_v4()), 0, &[]).await?;

    // Three posts; Ada's first is the one the flow follows.
    let post = flow.new_post("Ada", "Hello, world!").await?;
    let grace_post = flow.new_post("Grace", "Grace's first post").await?;
    let other = flow.new_post("Ada", "Ada again").await?;
    ensure!(post != grace_post && post != other && grace_post != other, "newPost minted the same id twice");
    flow.check().await?;
    let read = flow.read_post(&post).await?;
    ensure!(read["author"] == "Ada" && read["message"] == "Hello, world!" && read["likes"] == 0, "{read}");
    let created = &host.events(POST, &post).await?[0];
    ensure!(read["datePosted"] == created["data"]["datePosted"], "datePosted {read} vs event {created}");
    ensure!(read["comments"] == json!([]), "a new post has no comments: {read}");

    // Edit the message.
    let body = json!({ "message": "Hello, edited world!" });
    let event = flow.command(Method::PUT, &format!("/api/v1/editMessage/{post}"), Some(body), Some(&post), 2).await?;
    ensure!(
        event["eventType"] == "MessageUpdatedEvent" && event["data"]["message"] == "Hello, edited world!",
        "{event}"
    );

    // Three likes: no body, an empty object, and the route spelled in upper case.
    flow.like(&post, 3).await?;
    let event = flow.command(Method::PUT, &format!("/api/v1/likePost/{post}"), Some(json!({})), Some(&post), 4).await?;
    ensure!(event["eventType"] == "PostLikedEvent", "{event}");
    let event = flow.command(Method::PUT, &format!("/API/V1/LIKEPOST/{post}"), None, Some(&post), 5).await?;
    ensure!(event["eventType"] == "PostLikedEvent", "{event}");
    flow.like(&grace_post, 2).await?;
    flow.check().await?;
    let read = flow.read_post(&post).await?;
    ensure!(read["message"] == "Hello, edited world!" && read["likes"] == 3, "after edit and 3 likes: {read}");
    // withLikes at the boundary: 3 finds the post, 4 finds nothing; no comments anywhere yet.
    let model_post = flow.model.post(&post)?.clone();
    let model_grace = flow.model.post(&grace_post)?.clone();
    let model_other = flow.model.post(&other)?.clone();
    expect_posts(&host, "/api/v1/postLookup/withLikes/3", flow.position, &[&model_post]).await?;
    expect_posts(&host, "/api/v1/postLookup/withLikes/4", flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/withLikes/1", flow.position, &[&model_post, &model_grace]).await?;
    expect_posts(&host, "/api/v1/postLookup/withComments", flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/byAuthor/Ada", flow.position, &[&model_post, &model_other]).await?;
    lookup(&host, "/api/v1/postLookup/withLikes/many", flow.position).await?.check_error(400, &["invalid_query"])?;
    lookup(&host, "/api/v1/postLookup/withLikes/-1", flow.position).await?.check_error(400, &["invalid_query"])?;

    // Two comments by two users.
    let grace_comment = flow.comment(&post, "Grace", "Nice post!", 6).await?;
    let alan_comment = flow.comment(&post, "Alan", "Agreed.", 7).await?;
    ensure!(grace_comment != alan_comment, "two comments got the same id");
    flow.check().await?;
    let read = flow.read_post(&post).await?;
    ensure!(comment_ids(&read).len() == 2, "two comments expected: {read}");
    for (comment_id, username, comment) in [(&grace_comment, "Grace", "Nice post!"), (&alan_comment, "Alan", "Agreed.")]
    {
        let found = comment_of(&read, comment_id)?;
        ensure!(found["username"] == username && found["comment"] == comment && found["edited"] == false, "{found}");
    }
    let model_post = flow.model.post(&post)?.clone();
    expect_posts(&host, "/api/v1/postLookup/withComments", flow.position, &[&model_post]).await?;

    // The comment's author edits it (the username compared ignoring case, as in the seed).
    let body = json!({ "commentId": grace_comment, "comment": "Nice post! (edited)", "username": "grace" });
    let event = flow.command(Method::PUT, &format!("/api/v1/editComment/{post}"), Some(body), Some(&post), 8).await?;
    ensure!(
        event["eventType"] == "CommentUpdatedEvent" && event["data"]["commentId"] == grace_comment.as_str(),
        "{event}"
    );
    let read = flow.read_post(&post).await?;
    let edited = comment_of(&read, &grace_comment)?;
    ensure!(edited["edited"] == true && edited["comment"] == "Nice post! (edited)", "edited comment: {edited}");
    ensure!(edited["username"] == "Grace", "the comment keeps its author's name: {edited}");
    ensure!(edited["commentDate"] == event["data"]["editDate"], "commentDate is the edit's: {edited} vs {event}");
    let untouched = comment_of(&read, &alan_comment)?;
    ensure!(untouched["edited"] == false && untouched["comment"] == "Agreed.", "other comment changed: {untouched}");

    // The comment's author removes it (a DELETE with a body).
    let body = json!({ "commentId": alan_comment, "username": "Alan" });
    let event =
        flow.command(Method::DELETE, &format!("/api/v1/removeComment/{post}"), Some(body), Some(&post), 9).await?;
    ensure!(
        event["eventType"] == "CommentRemovedEvent" && event["data"]["commentId"] == alan_comment.as_str(),
        "{event}"
    );
    let read = flow.read_post(&post).await?;
    ensure!(comment_ids(&read) == [grace_comment.clone()], "only Grace's comment is left: {read}");
    flow.check().await?;

    // The aggregate's own state agrees.
    let state = host.state(POST, &post, None).await?.expect_status(200)?;
    ensure!(state.u64_field("version")? == 9, "{state}");
    let state = &state.body["state"];
    ensure!(state["likes"] == 3 && state["active"] == true && state["message"] == "Hello, edited world!", "{state}");
    ensure!(state["comments"].as_array().map(Vec::len) == Some(1), "{state}");

    // The same answer through the case-insensitive seed route and the generic query route.
    let seed = lookup(&host, &format!("/api/v1/postLookup/byId/{post}"), flow.position).await?.expect_status(200)?;
    let upper = lookup(&host, &format!("/API/V1/POSTLOOKUP/BYID/{post}"), flow.position).await?.expect_status(200)?;
    ensure!(posts_by_id(&upper)? == posts_by_id(&seed)?, "upper-case route: {upper} vs {seed}");
    let generic_path = format!("/api/projections/posts/queries/byId?postId={post}&position={}", flow.position);
    let generic = host.get(&generic_path).await?.expect_status(200)?;
    ensure!(posts_by_id(&generic)? == posts_by_id(&seed)?, "generic route: {generic} vs {seed}");
    let generic = host.get(&format!("/api/projections/posts/queries/all?position={}", flow.position)).await?;
    ensure!(posts_by_id(&generic.expect_status(200)?)?.len() == 3, "generic all lists three posts");

    // The author deletes the post: it leaves the read model with its comments.
    let body = json!({ "username": "Ada" });
    let event =
        flow.command(Method::DELETE, &format!("/api/v1/deletePost/{post}"), Some(body), Some(&post), 10).await?;
    ensure!(event["eventType"] == "PostRemovedEvent", "{event}");
    flow.check().await?;
    let model_grace = flow.model.post(&grace_post)?.clone();
    let model_other = flow.model.post(&other)?.clone();
    expect_posts(&host, &format!("/api/v1/postLookup/byId/{post}"), flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/", flow.position, &[&model_grace, &model_other]).await?;
    expect_posts(&host, "/api/v1/postLookup/byAuthor/Ada", flow.position, &[&model_other]).await?;
    expect_posts(&host, "/api/v1/postLookup/withComments", flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/withLikes/3", flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/withLikes/2", flow.position, &[]).await?;
    expect_posts(&host, "/api/v1/postLookup/withLikes/1", flow.position, &[&model_grace]).await?;
    let state = host.state(POST, &post, None).await?.expect_status(200)?;
    ensure!(state.body["state"]["active"] == false, "deleted post still active: {state}");

    // The audit log.
    let events = host.events(POST, &post).await?;
    check_stream(&events, POST, &post)?;
    let types: Vec<&str> = events.iter().filter_map(|e| e["eventType"].as_str()).collect();
    ensure!(
        types
            == [
                "PostCreatedEvent",
                "MessageUpdatedEvent",
                "PostLikedEvent",
                "PostLikedEvent",
                "PostLikedEvent",
                "CommentAddedEvent",
                "CommentAddedEvent",
                "CommentUpdatedEvent",
                "CommentRemovedEvent",
                "PostRemovedEvent",
            ],
        "event types: {types:?}"
    );
    let positions: Vec<u64> = events.iter().filter_map(|e| e["position"].as_u64()).collect();
    ensure!(Some(&positions) == flow.positions.get(&post), "positions {positions:?} vs answered {:?}", flow.positions);
    for event in &events {
        ensure!(event["data"]["id"] == post.as_str(), "every event names its post: {event}");
    }
    Ok(())
}

#[tokio::test]
async fn seed_post_flow_on_sqlite() -> Result<()> {
    seed_post_flow(&Backends::Embedded(None)).await
}

#[tokio::test]
async fn seed_post_flow_on_postgres() -> Result<()> {
    let Some(backends) = Backends::postgres()? else { return Ok(()) };
    seed_post_flow(&backends).await
}

#[tokio::test]
async fn seed_post_flow_on_the_stack() -> Result<()> {
    let Some(backends) = Backends::stack()? else { return Ok(()) };
    seed_post_flow(&backends).await
}

/// A request body for a refusal case.
enum Body {
    None,
    Json(Value),
    /// Sent as is, labelled `application/json`.
    Raw(&'static str),
}

/// A request that must be refused.
struct Request {
    method: Method,
    path: String,
    body: Body,
}

/// `PUT /api/v1/{route}/{id}`.
fn put(route: &str, id: &str, body: Body) -> Request {
    Request { method: Method::PUT, path: format!("/api/v1/{route}/{id}"), body }
}

/// `DELETE /api/v1/{route}/{id}`.
fn delete(route: &str, id: &str, body: Body) -> Request {
    Request { method: Method::DELETE, path: format!("/api/v1/{route}/{id}"), body }
}

/// `POST /api/v1/newPost`.
fn new_post(body: Body) -> Request {
    Request { method: Method::POST, path: "/api/v1/newPost".to_owned(), body }
}

/// `POST /api/aggregates/Post/{id}/commands/{command}`.
fn generic(id: &str, command: &str, body: Body) -> Request {
    Request { method: Method::POST, path: format!("/api/aggregates/{POST}/{id}/commands/{command}"), body }
}

fn js(value: Value) -> Body {
    Body::Json(value)
}

/// An editComment body.
fn edit(comment_id: &str, comment: &str, username: &str) -> Body {
    js(json!({ "commentId": comment_id, "comment": comment, "username": username }))
}

/// A removeComment body.
fn remove(comment_id: &str, username: &str) -> Body {
    js(json!({ "commentId": comment_id, "username": username }))
}

/// Every stream is as it was: the known ones hold exactly their events, the missing ones are
/// still missing.
async fn streams_unchanged(api: &Api, known: &BTreeMap<String, Vec<Value>>, missing: &[&str]) -> Result<()> {
    for (id, before) in known {
        let now = api.events(POST, id).await?;
        ensure!(&now == before, "stream {id} changed: {} events before, {} now: {now:?}", before.len(), now.len());
    }
    for id in missing {
        let reply = api.get(&format!("/api/aggregates/{POST}/{id}/events")).await?;
        reply.check_error(404, &["aggregate_not_found"]).with_context(|| format!("stream {id} appeared"))?;
    }
    Ok(())
}

/// Each case is answered `status` with `code`, and leaves every stream as it was.
async fn refused(
    api: &Api,
    (status, code): (u16, &str),
    cases: Vec<(&str, Request)>,
    known: &BTreeMap<String, Vec<Value>>,
    missing: &[&str],
) -> Result<()> {
    for (what, Request { method, path, body }) in cases {
        let request = api.request(method.clone(), &path);
        let request = match body {
            Body::None => request,
            Body::Json(body) => request.json(&body),
            Body::Raw(text) => request.header(reqwest::header::CONTENT_TYPE, "application/json").body(text),
        };
        let reply = api.send(request).await?;
        let context = || format!("{what} ({method} {path})");
        reply.check_error(status, &[code]).with_context(context)?;
        streams_unchanged(api, known, missing).await.with_context(context)?;
    }
    Ok(())
}

const REJECTED: (u16, &str) = (400, "rejected");
const INVALID: (u16, &str) = (400, "invalid_command");
const INVALID_JSON: (u16, &str) = (400, "invalid_json");
const NO_SUCH_POST: (u16, &str) = (404, "aggregate_not_found");
const NO_SUCH_COMMENT: (u16, &str) = (404, "not_found");

/// Every refusal of the post domain, each with its exact status and code, each appending nothing.
async fn every_refusal_appends_nothing(backends: &Backends) -> Result<()> {
    let host = start(POST_PLUGINS, backends).await?;
    let mut flow = Flow::new(host.api());

    // A live post with Grace's comment and a comment Alan made and removed; a deleted post.
    let live = flow.new_post("Ada", "Still here").await?;
    let grace_comment = flow.comment(&live, "Grace", "Nice post!", 2).await?;
    let removed_comment = flow.comment(&live, "Alan", "First!", 3).await?;
    let body = json!({ "commentId": removed_comment, "username": "Alan" });
    flow.command(Method::DELETE, &format!("/api/v1/removeComment/{live}"), Some(body), Some(&live), 4).await?;
    let gone = flow.new_post("Ada", "Soon gone").await?;
    let gone_comment = flow.comment(&gone, "Grace", "Bye!", 2).await?;
    let body = json!({ "username": "Ada" });
    flow.command(Method::DELETE, &format!("/api/v1/deletePost/{gone}"), Some(body), Some(&gone), 3).await?;

    let unknown = Uuid::new_v4().to_string();
    let never = Uuid::new_v4().to_string();
    let stray = Uuid::new_v4().to_string();
    let missing = [unknown.as_str(), never.as_str(), "not-a-post"];
    let mut known = BTreeMap::new();
    for id in [&live, &gone] {
        known.insert(id.clone(), host.events(POST, id).await?);
    }
    let (live, gone, grace_comment) = (live.as_str(), gone.as_str(), grace_comment.as_str());

    let cases = vec![
        // Someone else's comment or post.
        ("Alan edits Grace's comment", put("editComment", live, edit(grace_comment, "Mine now", "Alan"))),
        ("the post's author edits Grace's comment", put("editComment", live, edit(grace_comment, "Mine", "Ada"))),
        ("Alan removes Grace's comment", delete("removeComment", live, remove(grace_comment, "Alan"))),
        ("the post's author removes Grace's comment", delete("removeComment", live, remove(grace_comment, "Ada"))),
        ("Grace deletes Ada's post", delete("deletePost", live, js(json!({"username": "Grace"})))),
        ("a look-alike name deletes Ada's post", delete("deletePost", live, js(json!({"username": "Ada "})))),
        // Every command on a deleted post, each otherwise valid.
        ("editMessage on a deleted post", put("editMessage", gone, js(json!({"message": "Back"})))),
        ("likePost on a deleted post", put("likePost", gone, Body::None)),
        ("addComment on a deleted post", put("addComment", gone, js(json!({"comment": "Hi?", "username": "Bob"})))),
        ("editComment on a deleted post", put("editComment", gone, edit(&gone_comment, "Edited", "Grace"))),
        ("removeComment on a deleted post", delete("removeComment", gone, remove(&gone_comment, "Grace"))),
        ("deletePost on a deleted post", delete("deletePost", gone, js(json!({"username": "Ada"})))),
        ("NewPost on a deleted post's id", generic(gone, "NewPost", js(json!({"author": "Ada", "message": "Again"})))),
        ("NewPost on a live post's id", generic(live, "NewPost", js(json!({"author": "Ada", "message": "Again"})))),
    ];
    refused(&host, REJECTED, cases, &known, &missing).await?;

    let cases = vec![
        // Empty or blank text.
        ("newPost with an empty message", new_post(js(json!({"author": "Ada", "message": ""})))),
        ("newPost with a blank message", new_post(js(json!({"author": "Ada", "message": " \t\n "})))),
        ("newPost with an empty author", new_post(js(json!({"author": "", "message": "Hi"})))),
        (
            "NewPost with an empty message, chosen id",
            generic(&never, "NewPost", js(json!({"author": "A", "message": ""}))),
        ),
        ("editMessage with an empty message", put("editMessage", live, js(json!({"message": ""})))),
        ("editMessage with a blank message", put("editMessage", live, js(json!({"message": "   "})))),
        ("addComment with an empty comment", put("addComment", live, js(json!({"comment": "", "username": "Bob"})))),
        ("addComment with a blank comment", put("addComment", live, js(json!({"comment": "  ", "username": "Bob"})))),
        ("addComment with an empty username", put("addComment", live, js(json!({"comment": "Hi", "username": ""})))),
        ("editComment with an empty comment", put("editComment", live, edit(grace_comment, "", "Grace"))),
        ("editComment with a blank comment", put("editComment", live, edit(grace_comment, "\t", "Grace"))),
        ("editComment with a comment id that is no UUID", put("editComment", live, edit("not-a-uuid", "Hi", "Grace"))),
        // Missing fields and wrong types.
        ("newPost without a message", new_post(js(json!({"author": "Ada"})))),
        ("newPost without an author", new_post(js(json!({"message": "Hi"})))),
        ("newPost without a body", new_post(Body::None)),
        ("editMessage without a message", put("editMessage", live, js(json!({})))),
        ("editMessage with a null message", put("editMessage", live, js(json!({"message": null})))),
        ("editMessage with a number", put("editMessage", live, js(json!({"message": 42})))),
        ("addComment without a username", put("addComment", live, js(json!({"comment": "Hi"})))),
        ("addComment without a comment", put("addComment", live, js(json!({"username": "Grace"})))),
        (
            "editComment without a comment id",
            put("editComment", live, js(json!({"comment": "Hi", "username": "Grace"}))),
        ),
        ("editComment without a comment", put("editComment", live, remove(grace_comment, "Grace"))),
        ("removeComment without a username", delete("removeComment", live, js(json!({"commentId": grace_comment})))),
        ("removeComment without a comment id", delete("removeComment", live, js(json!({"username": "Grace"})))),
        ("removeComment without a body", delete("removeComment", live, Body::None)),
        ("deletePost without a body", delete("deletePost", live, Body::None)),
        ("deletePost with a null username", delete("deletePost", live, js(json!({"username": null})))),
    ];
    refused(&host, INVALID, cases, &known, &missing).await?;

    let cases = vec![
        ("editMessage on an unknown post", put("editMessage", &unknown, js(json!({"message": "Hi"})))),
        ("likePost on an unknown post", put("likePost", &unknown, Body::None)),
        ("addComment on an unknown post", put("addComment", &unknown, js(json!({"comment": "Hi", "username": "B"})))),
        ("editComment on an unknown post", put("editComment", &unknown, edit(grace_comment, "Hi", "Grace"))),
        ("removeComment on an unknown post", delete("removeComment", &unknown, remove(grace_comment, "Grace"))),
        ("deletePost on an unknown post", delete("deletePost", &unknown, js(json!({"username": "Ada"})))),
        ("likePost on an id that is no UUID", put("likePost", "not-a-post", Body::None)),
        ("LikePost on an unknown post, generic route", generic(&unknown, "LikePost", Body::None)),
    ];
    refused(&host, NO_SUCH_POST, cases, &known, &missing).await?;

    // A comment the post does not have: never made, removed, or on another post.
    let cases = vec![
        ("editComment of an unknown comment", put("editComment", live, edit(&stray, "Hi", "Grace"))),
        ("removeComment of an unknown comment", delete("removeComment", live, remove(&stray, "Grace"))),
        ("editComment of a removed comment", put("editComment", live, edit(&removed_comment, "Again", "Alan"))),
        ("removeComment of a removed comment", delete("removeComment", live, remove(&removed_comment, "Alan"))),
        ("editComment of another post's comment", put("editComment", live, edit(&gone_comment, "Hi", "Grace"))),
    ];
    refused(&host, NO_SUCH_COMMENT, cases, &known, &missing).await?;

    let cases = vec![
        ("newPost with truncated JSON", new_post(Body::Raw(r#"{"author": "Ada", "message": "#))),
        ("editMessage with unclosed JSON", put("editMessage", live, Body::Raw(r#"{"message": "Hi""#))),
        ("addComment with JavaScript, not JSON", put("addComment", live, Body::Raw("{comment: 'Hi', username: 'B'}"))),
        ("deletePost with a form, not JSON", delete("deletePost", live, Body::Raw("username=Ada"))),
        ("editMessage with a JSON array", put("editMessage", live, Body::Raw(r#"["message"]"#))),
        ("editMessage with a JSON string", put("editMessage", live, Body::Raw(r#""Hi""#))),
        ("editMessage with malformed JSON on an unknown post", put("editMessage", &unknown, Body::Raw("{"))),
    ];
    refused(&host, INVALID_JSON, cases, &known, &missing).await?;

    // A stale If-Match is a conflict, and appends nothing either.
    let reply = host.command(POST, live, "LikePost", &json!({}), Some(1)).await?;
    reply.check_error(409, &["conflict"])?;
    ensure!(reply.u64_field("expectedVersion")? == 1 && reply.u64_field("actualVersion")? == 4, "{reply}");
    streams_unchanged(&host, &known, &missing).await?;

    // The read model saw none of it: one post (no stray new one), as the events say.
    flow.like(live, 5).await?;
    flow.check().await?;
    let model_live = flow.model.post(live)?.clone();
    expect_posts(&host, "/api/v1/postLookup/", flow.position, &[&model_live]).await?;
    let read = flow.read_post(live).await?;
    ensure!(read["message"] == "Still here" && read["likes"] == 1, "{read}");
    ensure!(comment_ids(&read) == [grace_comment], "{read}");
    let comment = comment_of(&read, grace_comment)?;
    ensure!(
        comment["comment"] == "Nice post!" && comment["edited"] == false && comment["username"] == "Grace",
        "{read}"
    );
    expect_posts(&host, &format!("/api/v1/postLookup/byId/{gone}"), flow.position, &[]).await?;
    Ok(())
}

#[tokio::test]
async fn every_refusal_appends_nothing_on_sqlite() -> Result<()> {
    every_refusal_appends_nothing(&Backends::Embedded(None)).await
}

#[tokio::test]
async fn every_refusal_appends_nothing_on_postgres() -> Result<()> {
    let Some(backends) = Backends::postgres()? else { return Ok(()) };
    every_refusal_appends_nothing(&backends).await
}

#[tokio::test]
async fn every_refusal_appends_nothing_on_the_stack() -> Result<()> {
    let Some(backends) = Backends::stack()? else { return Ok(()) };
    every_refusal_appends_nothing(&backends).await
}

/// An answer with its lists sorted by id, so two answers compare whatever order rows come in.
fn comparable(reply: &Reply) -> (u16, Value) {
    let mut body = reply.body.clone();
    for (list, key) in [("posts", "postId"), ("accounts", "id")] {
        if let Some(items) = body.get_mut(list).and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                *item = normal(item);
            }
            items.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
        }
    }
    (reply.status.as_u16(), body)
}

/// Each of `paths` answered at `position`, comparable.
async fn answers(api: &Api, paths: &[String], position: u64) -> Result<Vec<(String, u16, Value)>> {
    let mut all = Vec::with_capacity(paths.len());
    for path in paths {
        let (status, body) = comparable(&lookup(api, path, position).await?);
        ensure!(status == 200 || status == 204, "GET {path}: {status} {body}");
        all.push((path.clone(), status, body));
    }
    Ok(all)
}

/// Account balances (exact decimals) of a bank lookup answer, by id.
fn balances(reply: &Reply) -> Result<BTreeMap<String, String>> {
    let list = reply.body["accounts"].as_array().with_context(|| format!("no accounts list: {reply}"))?;
    let mut by_id = BTreeMap::new();
    for account in list {
        by_id.insert(text(account, "id")?.to_owned(), decimal(&account["balance"])?);
    }
    Ok(by_id)
}

/// The bank and post domains on one host: their routes live side by side, their streams are
/// apart, and one restoreReadDb rebuilds both read models to the same answers.
async fn both_domains_share_a_host(backends: &Backends) -> Result<()> {
    let host = start(BOTH_DOMAINS, backends).await?;
    let mut flow = Flow::new(host.api());

    // Bank: two accounts live, one closed.
    let ada_account = host.open_account("Ada", "50.00").await?;
    let bob_account = host.open_account("Bob", "10").await?;
    let closed = host.open_account("Ada", "1").await?;
    let deposit = json!({ "amount": number("0.25") });
    host.put_json(&format!("/api/v1/depositFunds/{ada_account}"), &deposit).await?.expect_status(200)?;
    let reply = host.delete(&format!("/api/v1/closeBankAccount/{closed}")).await?.expect_status(200)?;
    let bank_position = reply.u64_field("position")?;

    // Posts: one liked and commented, one edited, one deleted.
    let post = flow.new_post("Ada", "Banking is fun").await?;
    flow.like(&post, 2).await?;
    flow.like(&post, 3).await?;
    let comment = flow.comment(&post, "Bob", "Is it?", 4).await?;
    let edited = flow.new_post("Bob", "Typo hree").await?;
    let body = json!({ "message": "Typo here" });
    flow.command(Method::PUT, &format!("/api/v1/editMessage/{edited}"), Some(body), Some(&edited), 2).await?;
    let deleted = flow.new_post("Grace", "Short-lived").await?;
    flow.command(
        Method::DELETE,
        &format!("/api/v1/deletePost/{deleted}"),
        Some(json!({"username": "grace"})),
        Some(&deleted),
        2,
    )
    .await?;
    ensure!(flow.position > bank_position, "one global order: post positions follow bank positions");
    let position = flow.position;

    // Both domains answer, each with its own rows.
    let bank = lookup(&host, "/api/v1/bankAccountLookup/", position).await?.expect_status(200)?;
    let listed = balances(&bank)?;
    let expected: BTreeMap<String, String> =
        [(ada_account.clone(), "50.25".to_owned()), (bob_account.clone(), "10".to_owned())].into();
    ensure!(listed == expected, "bank accounts {listed:?}, expected {expected:?}: {bank}");
    flow.check().await?;
    let read = flow.read_post(&post).await?;
    ensure!(read["likes"] == 2 && comment_ids(&read) == [comment.clone()], "{read}");

    // Streams are per aggregate type: neither domain sees the other's ids.
    for (aggregate_type, id) in [("Post", &ada_account), ("BankAccount", &post)] {
        let reply = host.get(&format!("/api/aggregates/{aggregate_type}/{id}/events")).await?;
        reply.check_error(404, &["aggregate_not_found"]).with_context(|| format!("{aggregate_type} {id}"))?;
    }
    host.put_json(&format!("/api/v1/likePost/{ada_account}"), &json!({}))
        .await?
        .check_error(404, &["aggregate_not_found"])?;
    host.put_json(&format!("/api/v1/depositFunds/{post}"), &deposit)
        .await?
        .check_error(404, &["aggregate_not_found"])?;
    host.state("BankAccount", &ada_account, None).await?.expect_status(200)?;
    host.state(POST, &post, None).await?.expect_status(200)?;

    let paths: Vec<String> = [
        "/api/v1/bankAccountLookup/".to_owned(),
        format!("/api/v1/bankAccountLookup/byId/{ada_account}"),
        format!("/api/v1/bankAccountLookup/byId/{closed}"),
        "/api/v1/bankAccountLookup/byHolder/Ada".to_owned(),
        "/api/v1/bankAccountLookup/byHolder/Bob".to_owned(),
        "/api/v1/bankAccountLookup/withBalance/GREATER_THAN/10".to_owned(),
        "/api/v1/bankAccountLookup/withBalance/LESS_THAN/10".to_owned(),
        "/api/v1/postLookup/".to_owned(),
        format!("/api/v1/postLookup/byId/{post}"),
        format!("/api/v1/postLookup/byId/{edited}"),
        format!("/api/v1/postLookup/byId/{deleted}"),
        "/api/v1/postLookup/byAuthor/Ada".to_owned(),
        "/api/v1/postLookup/byAuthor/Bob".to_owned(),
        "/api/v1/postLookup/byAuthor/Grace".to_owned(),
        "/api/v1/postLookup/withComments".to_owned(),
        "/api/v1/postLookup/withLikes/2".to_owned(),
        "/api/v1/postLookup/withLikes/3".to_owned(),
    ]
    .into();
    let before = answers(&host, &paths, position).await?;
    ensure!(before.iter().any(|(_, status, _)| *status == 204), "some lookups are empty (204) by design");

    // One restore rebuilds both read models: the same answers after it (twice, the second time
    // through the route spelled in upper case).
    for route in ["/api/v1/restoreReadDb", "/API/V1/RESTOREREADDB"] {
        let reply = host.send_raw(Method::POST, route, Vec::new()).await?.expect_status(201)?;
        ensure!(reply.str_field("message").is_ok_and(|m| !m.trim().is_empty()), "no message: {reply}");
        let after = answers(&host, &paths, position).await?;
        for ((path, status, body), (_, was_status, was)) in after.iter().zip(&before) {
            ensure!(
                status == was_status && body == was,
                "after {route}, GET {path}: {status} {body}\n  before: {was_status} {was}"
            );
        }
        flow.check().await?;
    }

    // Both projections keep following after the rebuild.
    let reply =
        host.put_json(&format!("/api/v1/withdrawFunds/{bob_account}"), &json!({"amount": number("2.5")})).await?;
    let bank_position = reply.expect_status(200)?.u64_field("position")?;
    let bank = lookup(&host, &format!("/api/v1/bankAccountLookup/byId/{bob_account}"), bank_position).await?;
    let listed = balances(&bank.expect_status(200)?)?;
    ensure!(listed.get(&bob_account).map(String::as_str) == Some("7.5"), "Bob after the rebuild: {listed:?}");
    flow.like(&post, 5).await?;
    flow.check().await?;
    Ok(())
}

#[tokio::test]
async fn both_domains_share_a_host_on_sqlite() -> Result<()> {
    both_domains_share_a_host(&Backends::Embedded(None)).await
}

#[tokio::test]
async fn both_domains_share_a_host_on_postgres() -> Result<()> {
    let Some(backends) = Backends::postgres()? else { return Ok(()) };
    both_domains_share_a_host(&backends).await
}

#[tokio::test]
async fn both_domains_share_a_host_on_the_stack() -> Result<()> {
    let Some(backends) = Backends::stack()? else { return Ok(()) };
    both_domains_share_a_host(&backends).await
}
