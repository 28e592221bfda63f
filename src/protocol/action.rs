//! The actions a request may ask for, by their wire names.
//!
//! Pure and dependency-free, so the client shares it without the parser.

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Lock,
    Unlock,
    TestLock,
    Get,
    Put,
    Erase,
    Version,
    Stats,
    /// Cluster administration (extensions of ours; see the README's
    /// "Changing the members of a cluster"): add the member `FileName`
    /// names as `ID=HOST:PORT`, remove member `FileName`, list them.
    AddMember,
    RemoveMember,
    Members,
}

impl Action {
    /// Every action, for tests and tools.
    pub const ALL: [Action; 11] = [
        Action::Lock,
        Action::Unlock,
        Action::TestLock,
        Action::Get,
        Action::Put,
        Action::Erase,
        Action::Version,
        Action::Stats,
        Action::AddMember,
        Action::RemoveMember,
        Action::Members,
    ];

    /// Whether the action administers a cluster (only an admin Name may).
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            Action::AddMember | Action::RemoveMember | Action::Members
        )
    }

    /// The action's name as clients spell it on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Action::Lock => "Lock",
            Action::Unlock => "Unlock",
            Action::TestLock => "TestLock",
            Action::Get => "Get",
            Action::Put => "Put",
            Action::Erase => "Erase",
            Action::Version => "Version",
            Action::Stats => "Stats",
            Action::AddMember => "AddMember",
            Action::RemoveMember => "RemoveMember",
            Action::Members => "Members",
        }
    }

    /// The action named `name`, compared without regard to ASCII case.
    #[inline]
    pub fn from_name(name: &str) -> Option<Action> {
        // Clients spell the names exactly almost always: try that first.
        match name {
            "Lock" => Some(Action::Lock),
            "Unlock" => Some(Action::Unlock),
            "Get" => Some(Action::Get),
            "Put" => Some(Action::Put),
            _ => Action::from_name_any_case(name),
        }
    }

    #[cold]
    fn from_name_any_case(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// How a `Lock` holds (`Mode`, an extension): alone, or beside other
/// holders up to a limit (PROTOCOL.md, "Shared locks and semaphores").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// One holder (the default, and all an old client ever asks for).
    #[default]
    Exclusive,
    /// Any number of holders up to the lock's limit.
    Shared,
}

impl Mode {
    /// The mode's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Exclusive => "Exclusive",
            Mode::Shared => "Shared",
        }
    }

    /// The mode named exactly `name` (PROTOCOL.md makes only `Action`
    /// case-insensitive).
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "Exclusive" => Some(Mode::Exclusive),
            "Shared" => Some(Mode::Shared),
            _ => None,
        }
    }
}
