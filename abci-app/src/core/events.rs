//! Events as plain data; the shell turns them into ABCI events (all attributes indexed).

/// One attribute of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Attribute key, e.g. `id`.
    pub key: &'static str,
    /// Attribute value.
    pub value: String,
}

/// An event such as `directive` with attributes `id`, `pool`, `group`, `kind`, `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event type, e.g. `directive` or `vote`.
    pub kind: &'static str,
    /// Its attributes, in a fixed order.
    pub attrs: Vec<Attr>,
}

impl Event {
    /// A new event with no attributes.
    #[must_use]
    pub fn new(kind: &'static str) -> Self {
        Self { kind, attrs: Vec::new() }
    }

    /// Add an attribute.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attrs.push(Attr { key, value: value.into() });
        self
    }

    /// The value of attribute `key`, if present.
    #[must_use]
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.key == key).map(|a| a.value.as_str())
    }
}
