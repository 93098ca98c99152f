//! The closed vocabularies of the contract (SPEC §1): providers, event types, call
//! statuses, outcomes, contact states and event dispositions, with their wire names.

use std::fmt;
use std::str::FromStr;

/// A value that is not one of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct ParseEnumError {
    pub kind: &'static str,
    pub value: String,
}

/// Declares a fieldless enum with one wire name per variant and the
/// `as_str`/`FromStr`/`Display`/serde glue every one of them needs.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_enum!(
    /// A telephony provider whose callbacks callhook understands.
    Provider, "provider" {
        Twilio => "twilio",
        Telnyx => "telnyx",
        Vonage => "vonage",
        Plivo => "plivo",
        SignalWire => "signalwire",
    }
);

wire_enum!(
    /// The normalised domain event one provider callback turns into.
    EventType, "event type" {
        Initiated => "call.initiated",
        Ringing => "call.ringing",
        Answered => "call.answered",
        Completed => "call.completed",
        NoAnswer => "call.no_answer",
        Busy => "call.busy",
        Failed => "call.failed",
    }
);

wire_enum!(
    /// `call_attempts.status`.
    CallStatus, "call status" {
        Initiated => "initiated",
        Ringing => "ringing",
        Answered => "answered",
        Completed => "completed",
        NoAnswer => "no_answer",
        Busy => "busy",
        Failed => "failed",
    }
);

wire_enum!(
    /// `call_attempts.outcome` and `contacts.last_outcome`.
    Outcome, "outcome" {
        Completed => "completed",
        Refused => "refused",
        NoAnswer => "no_answer",
        Busy => "busy",
        Failed => "failed",
    }
);

wire_enum!(
    /// `contacts.state`.
    ContactState, "contact state" {
        Pending => "pending",
        InProgress => "in_progress",
        Completed => "completed",
        Refused => "refused",
        NotReached => "not_reached",
        Excluded => "excluded",
    }
);

wire_enum!(
    /// `telephony_events.disposition`: what happened to a stored event.
    Disposition, "disposition" {
        Applied => "applied",
        Stale => "stale",
        Deferred => "deferred",
        Ignored => "ignored",
    }
);

wire_enum!(
    /// `telephony_events.source`: how an event reached callhook — the provider's
    /// callback, the provider's REST API asked by the reconciler about a quiet call,
    /// or a callback accepted into the outage spool and applied later.
    EventSource, "event source" {
        Callback => "callback",
        Reconcile => "reconcile",
        Spool => "spool",
    }
);

wire_enum!(
    /// `campaigns.amd_mode` (SPEC §12): `off` starts the dialogue on the answer (a
    /// later machine verdict cancels it); `wait` holds it until a human verdict or
    /// the campaign's `amd_wait_timeout_ms`, and a machine verdict starts nothing.
    AmdMode, "AMD mode" {
        Off => "off",
        Wait => "wait",
    }
);

wire_enum!(
    /// `campaigns.status` (SPEC §11): only a `running` campaign is dialled; `paused`
    /// may resume; `stopped` is final.
    CampaignStatus, "campaign status" {
        Running => "running",
        Paused => "paused",
        Stopped => "stopped",
    }
);

wire_enum!(
    /// The keys of a campaign's `retry_policy` (SPEC §11): why an attempt did not
    /// reach anyone, as far as retrying is concerned.
    RetryKey, "retry policy key" {
        NoAnswer => "no_answer",
        Busy => "busy",
        Failed => "failed",
        Machine => "machine",
        NoDialogueOutcome => "no_dialogue_outcome",
    }
);

wire_enum!(
    /// `outbox.kind`: the jobs the dispatcher delivers.
    JobKind, "job kind" {
        DialogueStart => "dialogue.start",
        DialogueCancel => "dialogue.cancel",
        SurveyNotReached => "survey.not_reached",
        SurveyCompleted => "survey.completed",
        SurveyRefused => "survey.refused",
    }
);

impl EventType {
    /// The call status this event moves an attempt to.
    pub fn status(self) -> CallStatus {
        match self {
            EventType::Initiated => CallStatus::Initiated,
            EventType::Ringing => CallStatus::Ringing,
            EventType::Answered => CallStatus::Answered,
            EventType::Completed => CallStatus::Completed,
            EventType::NoAnswer => CallStatus::NoAnswer,
            EventType::Busy => CallStatus::Busy,
            EventType::Failed => CallStatus::Failed,
        }
    }
}

impl CallStatus {
    /// Progress rank of SPEC §4: `initiated < ringing < answered < terminal`.
    /// All terminal statuses share one rank, so no terminal status replaces another.
    pub fn rank(self) -> u8 {
        match self {
            CallStatus::Initiated => 0,
            CallStatus::Ringing => 1,
            CallStatus::Answered => 2,
            CallStatus::Completed | CallStatus::NoAnswer | CallStatus::Busy | CallStatus::Failed => 3,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }
}

impl ContactState {
    /// A contact a callback may still move: the dialogue's verdicts (`completed`,
    /// `refused`), an operator's `excluded` and the final `not_reached` are never
    /// overwritten by telephony.
    pub fn is_open(self) -> bool {
        matches!(self, ContactState::Pending | ContactState::InProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), *e);
        }
        for s in CallStatus::ALL {
            assert_eq!(s.as_str().parse::<CallStatus>().unwrap(), *s);
        }
        for p in Provider::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        let err = "nope".parse::<ContactState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown contact state `nope`");
    }

    #[test]
    fn terminal_statuses_share_the_top_rank() {
        let terminal: Vec<_> = CallStatus::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal.len(), 4);
        assert!(CallStatus::Initiated.rank() < CallStatus::Ringing.rank());
        assert!(CallStatus::Ringing.rank() < CallStatus::Answered.rank());
        assert!(CallStatus::Answered.rank() < CallStatus::Busy.rank());
    }
}
