//! What a plugin declares: its commands, events, seed-compatible routes and bus topic.

/// An aggregate plugin's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub aggregate_type: String,
    pub commands: Vec<CommandSpec>,
    pub events: Vec<String>,
    pub routes: Vec<Route>,
    pub topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: String,
    /// May start a new stream; other commands on an empty stream are "not found".
    pub creates: bool,
    /// JSON Schema text of the command's body, for the host's OpenAPI document (0.2.0 plugins
    /// only; see [`Manifest::with_command_schemas`]).
    pub body_schema: Option<String>,
}

impl CommandSpec {
    /// A command that starts a stream.
    pub fn creating(name: &str) -> Self {
        Self { name: name.to_owned(), creates: true, body_schema: None }
    }
    /// A command on an existing stream.
    pub fn updating(name: &str) -> Self {
        Self { name: name.to_owned(), creates: false, body_schema: None }
    }
}

impl Manifest {
    /// Declare each command's body schema from `C`, the aggregate's command enum (externally
    /// tagged, one variant per command, its fields the body), as `schemars` derives it: the
    /// variant named like a command gives that command's schema, with the definitions it uses.
    pub fn with_command_schemas<C: schemars::JsonSchema>(mut self) -> Self {
        let schemas = variant_schemas(&schemars::schema_for!(C).to_value());
        for command in &mut self.commands {
            if let Some(schema) = schemas.iter().find(|(name, _)| *name == command.name) {
                command.body_schema = Some(schema.1.to_string());
            }
        }
        self
    }
}

/// The body schema of each variant of an externally tagged enum's schema: `oneOf` holds, per
/// variant, an object whose one required property is the variant's name. The root's `$defs`
/// go along with each body (its `$ref`s point at them).
fn variant_schemas(root: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let defs = root.get("$defs").cloned();
    let variants = root.get("oneOf").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    variants
        .iter()
        .filter_map(|variant| {
            let required = variant.get("required")?.as_array()?;
            let [name] = required.as_slice() else { return None };
            let name = name.as_str()?;
            let mut body = variant.get("properties")?.get(name)?.clone();
            if let (Some(defs), Some(object)) = (&defs, body.as_object_mut()) {
                object.insert("$defs".to_owned(), defs.clone());
            }
            Some((name.to_owned(), body))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    PathParam(String),
    NewUuid,
}

/// An HTTP route that reaches one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: Method,
    pub path: String,
    pub command: String,
    pub id: IdSource,
    pub success_status: u16,
    pub success_message: String,
    pub case_insensitive: bool,
}

impl Route {
    /// A route whose aggregate id is the path parameter `{id}`, answering 200.
    pub fn new(method: Method, path: &str, command: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            command: command.to_owned(),
            id: IdSource::PathParam("id".to_owned()),
            success_status: 200,
            success_message: String::new(),
            case_insensitive: false,
        }
    }
    /// The route starts a new stream under a fresh UUID.
    pub fn with_new_id(mut self) -> Self {
        self.id = IdSource::NewUuid;
        self
    }
    /// The aggregate id is the named path parameter.
    pub fn with_id_param(mut self, name: &str) -> Self {
        self.id = IdSource::PathParam(name.to_owned());
        self
    }
    pub fn status(mut self, status: u16) -> Self {
        self.success_status = status;
        self
    }
    pub fn message(mut self, message: &str) -> Self {
        self.success_message = message.to_owned();
        self
    }
    pub fn case_insensitive(mut self) -> Self {
        self.case_insensitive = true;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(schemars::JsonSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    enum Command {
        Open { holder: String, kind: Kind },
        Close {},
    }

    #[derive(schemars::JsonSchema)]
    #[expect(dead_code, reason = "only its schema is read")]
    enum Kind {
        Plain,
    }

    fn manifest() -> Manifest {
        Manifest {
            aggregate_type: "Thing".into(),
            commands: vec![
                CommandSpec::creating("Open"),
                CommandSpec::updating("Close"),
                CommandSpec::updating("Other"),
            ],
            events: vec![],
            routes: vec![],
            topic: "things".into(),
        }
    }

    fn schema(manifest: &Manifest, command: &str) -> Option<serde_json::Value> {
        let spec = manifest.commands.iter().find(|c| c.name == command)?;
        spec.body_schema.as_deref().map(|text| serde_json::from_str(text).expect("schema text is JSON"))
    }

    #[test]
    fn each_command_gets_its_variants_body_schema_with_the_definitions_it_uses() {
        let manifest = manifest().with_command_schemas::<Command>();
        let open = schema(&manifest, "Open").expect("Open has a schema");
        assert_eq!(open["type"], "object");
        assert_eq!(open["required"], serde_json::json!(["holder", "kind"]));
        assert_eq!(open["properties"]["holder"]["type"], "string");
        let kind = open["properties"]["kind"]["$ref"].as_str().expect("kind is a reference");
        let name = kind.strip_prefix("#/$defs/").expect("a local definition");
        assert!(open["$defs"][name].is_object(), "{open}");
        let close = schema(&manifest, "Close").expect("Close has a schema");
        assert_eq!(close["type"], "object");
    }

    #[test]
    fn a_command_without_a_variant_has_no_schema() {
        assert_eq!(schema(&manifest().with_command_schemas::<Command>(), "Other"), None);
    }
}
