//! Why a request of a shadowed context was not shadowed, or its shadow not compared: the
//! reasons counted per context in `/metrics` and in the catalog's rollups.

/// Why a request in a shadowed context was not shadowed (or its shadow not compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotSampled,
    /// A write on a route that does not opt writes in (or any write, in reverse).
    UnsafeMethod,
    BudgetFull,
    /// The request or an answer was over the cap.
    BodyTooLarge,
    /// The new service's breaker is open or no instance is healthy.
    NewUnhealthy,
    /// The shadow side failed (connect, timeout, broken answer …).
    ShadowFailed,
    /// The client went away before the primary exchange was complete.
    Incomplete,
    /// In canary or migrated, the new side failed and legacy answered: nothing to compare.
    FellBack,
    /// A mirrored write was refused (503, before legacy took it): the mirror's log is full
    /// or failing.
    OutboxFull,
    /// Legacy took a mirrored write that the mirror's log then could not keep (a disk error):
    /// the new side misses it. Logged as an error.
    NotDurable,
    /// The primary side gave no answer (the client got a 502/503/504 from the facade).
    PrimaryFailed,
    /// The context's translator could not translate the copy or the new service's answer: a
    /// translator problem, counted apart from the service's mismatches.
    TranslationFailed,
    /// The owner refused or failed the write (4xx, 5xx): it is not mirrored, so that the other
    /// side's data does not take a step the owner's did not.
    LegacyFailed,
    /// A mirrored write's body could not be redacted (not JSON or a form, or too deep), so it
    /// was not stored: secrets never reach the store.
    Unredactable,
    /// The exchange switched protocols (an upgrade): there is no answer to compare.
    Upgraded,
    /// The request's id names two resources (one from each side), or the id map is full: the
    /// copy was not sent rather than sent for the wrong resource.
    IdUnmapped,
}

impl Skip {
    pub const ALL: [Skip; 16] = [
        Skip::NotSampled,
        Skip::UnsafeMethod,
        Skip::BudgetFull,
        Skip::BodyTooLarge,
        Skip::NewUnhealthy,
        Skip::ShadowFailed,
        Skip::Incomplete,
        Skip::FellBack,
        Skip::OutboxFull,
        Skip::NotDurable,
        Skip::PrimaryFailed,
        Skip::TranslationFailed,
        Skip::LegacyFailed,
        Skip::Unredactable,
        Skip::Upgraded,
        Skip::IdUnmapped,
    ];

    pub fn index(self) -> usize {
        Skip::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotSampled => "not_sampled",
            Skip::UnsafeMethod => "unsafe_method",
            Skip::BudgetFull => "budget_full",
            Skip::BodyTooLarge => "body_too_large",
            Skip::NewUnhealthy => "new_unhealthy",
            Skip::ShadowFailed => "shadow_failed",
            Skip::LegacyFailed => "legacy_failed",
            Skip::Incomplete => "incomplete",
            Skip::FellBack => "fell_back",
            Skip::OutboxFull => "outbox_full",
            Skip::NotDurable => "not_durable",
            Skip::PrimaryFailed => "primary_failed",
            Skip::TranslationFailed => "translation_failed",
            Skip::Unredactable => "unredactable",
            Skip::Upgraded => "upgraded",
            Skip::IdUnmapped => "id_unmapped",
        }
    }
}
