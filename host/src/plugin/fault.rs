//! How a plugin call can fail on the plugin's side: a trap, a time or memory limit, or a broken
//! contract. These are the plugin's bugs; the host carries on and reports them.

/// How a guest call went wrong. Traps are bugs in the plugin; the host carries on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginFault {
    #[error("plugin {plugin} trapped: {detail}")]
    Trapped { plugin: String, detail: String },
    #[error("plugin {plugin} ran past its time limit")]
    Timeout { plugin: String },
    #[error("plugin {plugin} ran out of memory")]
    OutOfMemory { plugin: String },
    #[error("plugin {plugin} broke the contract: {detail}")]
    Contract { plugin: String, detail: String },
}

impl PluginFault {
    /// The metrics' reason for the fault: `trap`, `contract`, or the limit hit (`time`, `memory`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Trapped { .. } => "trap",
            Self::Timeout { .. } => "time",
            Self::OutOfMemory { .. } => "memory",
            Self::Contract { .. } => "contract",
        }
    }
}
