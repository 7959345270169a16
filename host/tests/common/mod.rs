//! Shared by the host's integration tests: a fresh database on the real server a test names.

// Each test crate uses what it needs of this module.
#![allow(dead_code)]

/// A fresh database (named `sluice_t`, `tag`, `_` and a random suffix, the names
/// `scripts/servers sweep` drops) on the server in the environment variable
/// `variable`, or `None` after saying the test is skipped. Unset fails the test when
/// `SLUICE_REQUIRE_SERVERS=1`, as `scripts/test` runs it.
pub fn fresh_database(variable: &str, tag: &str) -> Option<String> {
    let base = std::env::var(variable).unwrap_or_default();
    if base.is_empty() {
        let required = std::env::var("SLUICE_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
        assert!(!required, "{variable} is not set but SLUICE_REQUIRE_SERVERS=1");
        eprintln!("skipped: set {variable} to run this test");
        return None;
    }
    let name = format!("sluice_t{tag}_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    Some(with_database(&base, &name))
}

/// `url` with its database (the path) replaced by `name`, keeping any options.
pub fn with_database(url: &str, name: &str) -> String {
    let (address, options) = url.split_once('?').map_or((url, None), |(a, o)| (a, Some(o)));
    let hosts_start = address.find("://").map_or(0, |i| i + 3);
    let hosts_end = address[hosts_start..].find('/').map_or(address.len(), |i| hosts_start + i);
    let mut url = format!("{}/{name}", &address[..hosts_end]);
    if let Some(options) = options {
        url.push('?');
        url.push_str(options);
    }
    url
}
