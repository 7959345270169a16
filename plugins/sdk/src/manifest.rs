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
}

impl CommandSpec {
    /// A command that starts a stream.
    pub fn creating(name: &str) -> Self {
        Self { name: name.to_owned(), creates: true }
    }
    /// A command on an existing stream.
    pub fn updating(name: &str) -> Self {
        Self { name: name.to_owned(), creates: false }
    }
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
