//! `/openapi.json` and `/docs` against the real binary: the document is valid OpenAPI 3.1 by a
//! real validator (`openapi-spec-validator`, which scripts/test installs into a venv under
//! ~/.cache/sluice/), lists the seed routes of the reference plugins with the body schemas
//! their commands declare, follows plugins as they are added and removed (its ETag with it),
//! and the docs page is served from the binary.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use reqwest::Method;
use reqwest::header::{ETAG, IF_NONE_MATCH};
use serde_json::Value;
use sluice_e2e::{Api, Host, HostOptions, Plugin};

const TOKEN: &str = "openapi-test-token";

/// The Python venv scripts/test fills (`SLUICE_API_TOOLS` overrides it).
fn api_tools() -> PathBuf {
    match std::env::var_os("SLUICE_API_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice/api-tools"),
    }
}

/// `GET /openapi.json`: the document and its ETag.
async fn document(api: &Api) -> Result<(Value, String)> {
    let reply = api.get("/openapi.json").await?.expect_status(200)?;
    let etag = reply.headers.get(ETAG).and_then(|v| v.to_str().ok()).context("no ETag")?.to_owned();
    ensure!(reply.body.is_object(), "not a JSON document: {reply}");
    Ok((reply.body, etag))
}

/// The document checked by `openapi-spec-validator` (it tells the version from `openapi`).
fn validate(document: &Value) -> Result<()> {
    let validator = api_tools().join("bin/openapi-spec-validator");
    ensure!(
        validator.exists(),
        "{} is missing: scripts/test installs it (python3 -m venv ~/.cache/sluice/api-tools && \
         ~/.cache/sluice/api-tools/bin/pip install openapi-spec-validator)",
        validator.display()
    );
    let file = tempfile::Builder::new().suffix(".json").tempfile().context("failed to create a temporary file")?;
    std::fs::write(file.path(), serde_json::to_vec_pretty(document)?).context("failed to write the document")?;
    let output = Command::new(&validator).arg(file.path()).output().context("failed to run the validator")?;
    ensure!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The operation at `path` and `method`, if the document lists it.
fn operation<'a>(document: &'a Value, path: &str, method: &str) -> Option<&'a Value> {
    document["paths"].get(path)?.get(method)
}

/// The JSON Schema of an operation's JSON body, with a `$ref` to a component followed.
fn body_schema<'a>(document: &'a Value, operation: &'a Value) -> Result<&'a Value> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.strip_prefix("#/components/schemas/").context("a $ref outside the components")?;
            document["components"]["schemas"].get(name).with_context(|| format!("{reference} is not in the document"))
        }
        None => Ok(schema),
    }
}

/// A schema's required properties, sorted.
fn required(schema: &Value) -> Vec<&str> {
    let mut names: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_the_seed_routes_and_their_body_schemas() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[
        Plugin::BankAccount,
        Plugin::AccountsProjection,
        Plugin::Post,
        Plugin::PostsProjection,
        Plugin::Faulty,
    ]))
    .await?;
    let (document, _) = document(&host).await?;
    ensure!(document["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")), "not 3.1: {}", document["openapi"]);
    validate(&document)?;

    // The host's own routes.
    for (path, method) in [
        ("/api/aggregates/{aggregate_type}/{id}/commands/{command}", "post"),
        ("/api/aggregates/{aggregate_type}/{id}", "get"),
        ("/api/aggregates/{aggregate_type}/{id}/events", "get"),
        ("/api/projections/{name}/queries/{query}", "get"),
        ("/healthz", "get"),
        ("/openapi.json", "get"),
    ] {
        ensure!(operation(&document, path, method).is_some(), "{method} {path} is not listed");
    }

    // The bank's seed routes, with the schemas its commands declare.
    let open = operation(&document, "/api/v1/openBankAccount", "post").context("openBankAccount is not listed")?;
    let schema = body_schema(&document, open)?;
    ensure!(schema["type"] == "object", "openBankAccount's body is not an object: {schema}");
    ensure!(required(schema) == ["accountHolder", "accountType"], "openBankAccount requires {:?}", required(schema));
    ensure!(open["responses"]["201"].is_object(), "openBankAccount does not answer 201: {open}");
    let deposit = operation(&document, "/api/v1/depositFunds/{id}", "put").context("depositFunds is not listed")?;
    ensure!(required(body_schema(&document, deposit)?) == ["amount"], "depositFunds: {deposit}");
    let id = deposit["parameters"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "id"));
    ensure!(id.is_some_and(|p| p["in"] == "path" && p["required"] == true), "depositFunds has no id parameter");

    // The post's (0.2.0 since it declares schemas): a comment id is a UUID.
    let edit = operation(&document, "/api/v1/editComment/{id}", "put").context("editComment is not listed")?;
    let schema = body_schema(&document, edit)?;
    ensure!(required(schema) == ["comment", "commentId", "username"], "editComment requires {:?}", required(schema));

    // Projection query routes document their template's parameters; the rebuild route is there.
    let by_author =
        operation(&document, "/api/v1/postLookup/byAuthor/{author}", "get").context("byAuthor is not listed")?;
    let names: Vec<&str> =
        by_author["parameters"].as_array().into_iter().flatten().filter_map(|p| p["name"].as_str()).collect();
    ensure!(names.contains(&"author") && names.contains(&"sluice-position"), "byAuthor's parameters: {names:?}");
    ensure!(operation(&document, "/api/v1/restoreReadDb", "post").is_some(), "restoreReadDb is not listed");

    // The admin routes are listed behind the bearer token.
    let plugins = operation(&document, "/admin/plugins/{name}", "put").context("the upload is not listed")?;
    ensure!(plugins["security"][0].get("admin_token").is_some(), "the upload has no security: {plugins}");
    ensure!(document["components"]["securitySchemes"]["admin_token"]["scheme"] == "bearer", "no bearer scheme");

    // Faulty is a 0.1.0 component, which declares no schemas: it loads and runs beside them.
    host.post_json("/api/aggregates/Faulty/f1/commands/Ok", &serde_json::json!({})).await?.expect_status(200)?;
    Ok(())
}

#[tokio::test]
async fn the_document_follows_plugins_added_and_removed_and_its_etag_with_it() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount]).admin_token(TOKEN)).await?;
    let (before, etag) = document(&host).await?;
    ensure!(operation(&before, "/api/v1/newPost", "post").is_none(), "newPost is listed before Post is loaded");

    let unchanged = host.send(host.request(Method::GET, "/openapi.json").header(IF_NONE_MATCH, &etag)).await?;
    ensure!(unchanged.status == 304, "If-None-Match with the current ETag: {unchanged}");
    ensure!(unchanged.text.is_empty(), "a 304 with a body: {unchanged}");

    host.admin_put_wasm("Post", Plugin::Post.bytes()?).await?.expect_status(201)?;
    let (with_post, etag_with_post) = document(&host).await?;
    ensure!(etag_with_post != etag, "the ETag did not change when Post was added");
    let new_post = operation(&with_post, "/api/v1/newPost", "post").context("newPost is not listed once loaded")?;
    ensure!(required(body_schema(&with_post, new_post)?) == ["author", "message"], "newPost: {new_post}");
    validate(&with_post)?;
    let stale = host.send(host.request(Method::GET, "/openapi.json").header(IF_NONE_MATCH, &etag)).await?;
    ensure!(stale.status == 200, "an old ETag must get the new document: {stale}");

    host.admin_delete("/admin/plugins/Post").await?.expect_status(200)?;
    let (after, etag_after) = document(&host).await?;
    ensure!(operation(&after, "/api/v1/newPost", "post").is_none(), "newPost is still listed after removal");
    if etag_after != etag {
        bail!("the same plugins give another document: {etag} before, {etag_after} after");
    }
    Ok(())
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() -> Result<()> {
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount])).await?;
    let page = host.get("/docs/").await?.expect_status(200)?;
    ensure!(page.text.contains("swagger-ui"), "not the docs page: {}", &page.text[..page.text.len().min(400)]);
    let script = host.get("/docs/swagger-ui-bundle.js").await?.expect_status(200)?;
    ensure!(script.text.len() > 100_000, "the bundle is {} bytes", script.text.len());
    let config = host.get("/docs/swagger-initializer.js").await?.expect_status(200)?;
    ensure!(config.text.contains("/openapi.json"), "the page does not load /openapi.json: {}", config.text);
    // No call to validator.swagger.io (Swagger UI's default when reached by a non-local name).
    let compact: String = config.text.chars().filter(|c| !c.is_whitespace()).collect();
    ensure!(compact.contains(r#""validatorUrl":"none""#), "the initializer sets no validatorUrl none: {}", config.text);
    // Neither the page nor its initializer names an address outside the host.
    for (what, text) in [("the docs page", &page.text), ("the initializer", &config.text)] {
        let outside = outside_addresses(text, host.base_url());
        ensure!(outside.is_empty(), "{what} names addresses outside the host: {outside:?}");
    }
    Ok(())
}

/// The `http://` and `https://` addresses in `text` that do not start with `base_url`.
fn outside_addresses<'a>(text: &'a str, base_url: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (start, _) in text.match_indices(scheme) {
            let rest = &text[start..];
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
                .unwrap_or(rest.len());
            let address = &rest[..end];
            if !address.starts_with(base_url) {
                found.push(address);
            }
        }
    }
    found
}

#[tokio::test]
async fn the_document_follows_a_plugin_replaced_by_a_version_with_another_route() -> Result<()> {
    let component = |file: &str| -> Result<Vec<u8>> {
        let path = std::path::Path::new(sluice_e2e::PLUGINS_DIR).join(file);
        std::fs::read(&path).with_context(|| format!("failed to read {} (built by tests/build.rs)", path.display()))
    };
    let host = Host::start(HostOptions::with_plugins(&[Plugin::BankAccount]).admin_token(TOKEN)).await?;
    host.admin_put_wasm("hostile", component("hostile_projection.wasm")?).await?.expect_status(201)?;
    let (first, first_etag) = document(&host).await?;
    ensure!(operation(&first, "/api/test/hostile/streams", "get").is_some(), "the hostile build's route is not listed");
    ensure!(operation(&first, "/api/test/hostile/fixed/streams", "get").is_none(), "the fixed build's route is listed");

    // The fixed build: the same projection, one more route. A replace, not a new plugin.
    let replaced = host.admin_put_wasm("hostile", component("hostile_projection_fixed.wasm")?).await?;
    let replaced = replaced.expect_status(200)?;
    ensure!(replaced.body["replaced"] == true, "not a replace: {replaced}");
    let (second, second_etag) = document(&host).await?;
    ensure!(second_etag != first_etag, "the ETag did not change when the plugin was replaced");
    ensure!(second["paths"] != first["paths"], "the paths did not change when the plugin was replaced");
    let fixed = operation(&second, "/api/test/hostile/fixed/streams", "get")
        .context("the fixed build's route is not listed once it runs")?;
    ensure!(fixed["operationId"] == "hostile.streams.2", "the second route to one query: {fixed}");
    ensure!(operation(&second, "/api/test/hostile/streams", "get").is_some(), "the shared route went");
    validate(&second)?;
    // The route is served, not only listed.
    host.get("/api/test/hostile/fixed/streams").await?.expect_status(200)?;
    Ok(())
}
