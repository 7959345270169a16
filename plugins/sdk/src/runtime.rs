//! The JSON glue between envelopes and typed commands and events.
//!
//! Both the component exports and native callers (tests, the host's benchmark) go through
//! these functions, so what is tested natively is what runs in the sandbox.

use serde::Serialize;

use crate::aggregate::{Aggregate, CommandContext, CommandError, DomainEvent, NewEvent, StoredEvent};

/// Rebuild the state: `state` (or the default) with `events` applied in order.
pub fn evolve<A: Aggregate>(state: Option<&[u8]>, events: &[StoredEvent]) -> Result<Vec<u8>, String> {
    let mut aggregate = load::<A>(state)?;
    for event in events {
        aggregate.apply(read_event::<A>(event)?);
    }
    save(&aggregate)
}

/// A stored event as the aggregate's typed event, upcast first if it is older.
fn read_event<A: Aggregate>(event: &StoredEvent) -> Result<A::Event, String> {
    let data = A::Event::upcast(&event.event_type, event.schema_version, event.data.clone())?;
    from_tagged(&event.event_type, &data)
        .map_err(|e| format!("event {} v{} cannot be read: {e}", event.event_type, event.version))
}

/// Decide on a command given as its type and JSON body.
pub fn decide<A: Aggregate>(
    state: Option<&[u8]>,
    command_type: &str,
    data: &str,
    ctx: &CommandContext,
) -> Result<Vec<NewEvent>, CommandError> {
    // A state the host got from `evolve` always loads; failing here is a plugin bug.
    let aggregate = load::<A>(state).unwrap_or_else(|e| panic!("{e}"));
    let command: A::Command = from_tagged(command_type, data).map_err(CommandError::Invalid)?;
    let events = aggregate.handle(command, ctx)?;
    Ok(events.iter().map(to_new_event).collect())
}

/// What [`execute`] made of a command: WIT 0.3.0's `decision`, in the SDK's types.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The state the command was decided on, when events were applied to get it (`None`: the
    /// state given, unchanged).
    pub decided_on: Option<Vec<u8>>,
    /// The events to append, or why not.
    pub verdict: Result<Vec<NewEvent>, CommandError>,
    /// The state with the verdict's events applied (`None` on a refusal).
    pub after: Option<Vec<u8>>,
}

/// [`evolve`] `state` with `events`, decide on the command given as its type and JSON body,
/// and apply the events decided to the state: one pass over a loaded state where an evolve and
/// a decide load and save it twice. The state after is what [`evolve`] makes of the decided
/// events as stored, since [`Aggregate::apply`] sees only the typed event, which is what the
/// stored data reads as again. Fails as [`evolve`] does, on events the plugin cannot read.
pub fn execute<A: Aggregate>(
    state: Option<&[u8]>,
    events: &[StoredEvent],
    command_type: &str,
    data: &str,
    ctx: &CommandContext,
) -> Result<Execution, String> {
    let mut aggregate = load::<A>(state)?;
    for event in events {
        aggregate.apply(read_event::<A>(event)?);
    }
    let decided_on = if events.is_empty() { None } else { Some(save(&aggregate)?) };
    let decided = from_tagged::<A::Command>(command_type, data)
        .map_err(CommandError::Invalid)
        .and_then(|command| aggregate.handle(command, ctx));
    let (verdict, after) = match decided {
        Ok(decided) => {
            let new_events = decided.iter().map(to_new_event).collect();
            for event in decided {
                aggregate.apply(event);
            }
            (Ok(new_events), Some(save(&aggregate)?))
        }
        Err(refusal) => (Err(refusal), None),
    };
    Ok(Execution { decided_on, verdict, after })
}

/// The state as JSON text.
pub fn render<A: Aggregate>(state: &[u8]) -> Result<String, String> {
    let aggregate = load::<A>(Some(state))?;
    serde_json::to_string(&aggregate).map_err(|e| e.to_string())
}

/// An event as the envelope the host stores, at its type's current schema version.
pub fn to_new_event<E: DomainEvent>(event: &E) -> NewEvent {
    let (event_type, data) = to_tagged(event).unwrap_or_else(|e| panic!("event cannot be written: {e}"));
    NewEvent { schema_version: E::current_schema_version(&event_type), event_type, data }
}

/// Bring stored events to their type's current schema version (what the host asks of a 0.2.0
/// plugin before anything sees them): one result per event, in order. The upcast data must read
/// as the current event, so a broken upcaster fails here, not in a projection. Fails on a
/// version older than the oldest the plugin reads, or newer than the current one.
pub fn upcast<A: Aggregate>(events: &[StoredEvent]) -> Result<Vec<NewEvent>, String> {
    events
        .iter()
        .map(|event| {
            let event_type = &event.event_type;
            let current = A::Event::current_schema_version(event_type);
            let oldest = A::Event::oldest_schema_version(event_type);
            let what = format!("event {event_type} v{} (schema {})", event.version, event.schema_version);
            if !(oldest..=current).contains(&event.schema_version) {
                return Err(format!("{what}: this plugin reads schema versions {oldest}..={current}"));
            }
            let data = A::Event::upcast(event_type, event.schema_version, event.data.clone())
                .map_err(|e| format!("{what} cannot be upcast: {e}"))?;
            from_tagged::<A::Event>(event_type, &data)
                .map_err(|e| format!("{what} upcast to schema {current} does not read as one: {e}"))?;
            Ok(NewEvent { event_type: event_type.clone(), schema_version: current, data })
        })
        .collect()
}

/// Read `data` as the variant `tag` of an externally tagged enum. The enum's derived visitor is
/// handed the tag and a JSON reader over `data` ([`Tagged`]), as serde_json hands it the two
/// halves of `{"tag":data}`; building that text and parsing it whole cost an allocation, a
/// format and a second pass on every command and every event, paid about four times over in
/// the sandbox.
pub fn from_tagged<T: serde::de::DeserializeOwned>(tag: &str, data: &str) -> Result<T, String> {
    let mut reader = serde_json::Deserializer::from_str(data);
    let value = T::deserialize(Tagged { tag, data: &mut reader }).map_err(|e| without_position(&e))?;
    reader.end().map_err(|e| without_position(&e))?;
    Ok(value)
}

/// Split an externally tagged enum value into its variant name and JSON data. serde_json writes
/// such a value as `{"tag":data}`: the tag is read off the front and the data kept in place,
/// checked to be one JSON value, where parsing the text into a map would copy both.
pub fn to_tagged<T: Serialize>(value: &T) -> Result<(String, String), String> {
    let mut text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    let split = || -> Option<(String, usize)> {
        let entry = text.strip_prefix('{')?.strip_suffix('}')?;
        let mut key = serde_json::Deserializer::from_str(entry).into_iter::<String>();
        let tag = key.next()?.ok()?;
        let data = entry[key.byte_offset()..].strip_prefix(':')?;
        let mut one = serde_json::Deserializer::from_str(data).into_iter::<serde::de::IgnoredAny>();
        one.next()?.ok()?;
        (one.byte_offset() == data.len()).then(|| (tag, text.len() - 1 - data.len()))
    };
    let (tag, data_start) = split().ok_or_else(|| format!("{text} is not a single variant with data"))?;
    text.truncate(text.len() - 1);
    text.drain(..data_start);
    Ok((tag, text))
}

/// An externally tagged enum's variant, as its tag and the JSON reader of its data.
struct Tagged<'a, 'de> {
    tag: &'a str,
    data: &'a mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
}

impl<'de> serde::Deserializer<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> serde::de::EnumAccess<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;
    type Variant = Self;

    fn variant_seed<S: serde::de::DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Self::Error> {
        use serde::de::IntoDeserializer;
        let variant = seed.deserialize(self.tag.into_deserializer())?;
        Ok((variant, self))
    }
}

impl<'de> serde::de::VariantAccess<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        serde::Deserialize::deserialize(self.data)
    }

    fn newtype_variant_seed<S: serde::de::DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Self::Error> {
        seed.deserialize(self.data)
    }

    fn tuple_variant<V: serde::de::Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_seq(self.data, visitor)
    }

    fn struct_variant<V: serde::de::Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_struct(self.data, "", fields, visitor)
    }
}

fn load<A: Aggregate>(state: Option<&[u8]>) -> Result<A, String> {
    match state {
        None => Ok(A::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| format!("state cannot be read: {e}")),
    }
}

fn save<A: Aggregate>(aggregate: &A) -> Result<Vec<u8>, String> {
    serde_json::to_vec(aggregate).map_err(|e| format!("state cannot be written: {e}"))
}

/// serde_json's positions point into the wrapper we built, not the caller's body.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{from_tagged, to_tagged};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        #[serde(rename = "Odd \"name\"")]
        Struct {
            text: String,
            items: Vec<u32>,
        },
        Newtype(String),
        Tuple(u32, u32),
        Empty {},
        Unit,
    }

    #[test]
    fn every_kind_of_variant_goes_to_its_tag_and_data_and_back() {
        let values = [
            Shape::Struct { text: "a \"quoted\" } brace".into(), items: vec![1, 2] },
            Shape::Newtype("x".into()),
            Shape::Tuple(1, 2),
            Shape::Empty {},
        ];
        for value in values {
            let (tag, data) = to_tagged(&value).expect("split");
            assert_eq!(from_tagged::<Shape>(&tag, &data).expect("read back"), value, "{tag} {data}");
        }
        let (tag, data) = to_tagged(&Shape::Struct { text: "}".into(), items: vec![] }).expect("split");
        assert_eq!((tag.as_str(), data.as_str()), ("Odd \"name\"", r#"{"text":"}","items":[]}"#));
        assert_eq!(from_tagged::<Shape>("Unit", "null").expect("unit"), Shape::Unit);
    }

    #[test]
    fn what_is_not_one_variant_with_data_is_refused() {
        #[derive(Serialize)]
        struct Plain {
            a: u32,
            b: u32,
        }
        assert!(to_tagged(&Plain { a: 1, b: 2 }).is_err());
        assert!(to_tagged(&Shape::Unit).is_err());
        let trailing = from_tagged::<Shape>("Newtype", r#""x", "Unit": null"#);
        assert!(trailing.is_err_and(|e| e.contains("trailing characters")));
        let unknown = from_tagged::<Shape>("Circle", "{}");
        assert!(unknown.is_err_and(|e| e.contains("unknown variant `Circle`")));
        let missing = from_tagged::<Shape>("Odd \"name\"", r#"{"text": "t"}"#);
        assert!(missing.is_err_and(|e| e == "missing field `items`"), "positions are not the caller's");
    }
}
