//! The hooks around the wait: a callback run just before the loop sleeps and one run just
//! after it wakes (Redis's `beforeSleep`/`afterSleep`, libuv's prepare and check handles).
//!
//! One of each, as Redis has: a program that needs several calls them from its hook. A hook
//! is taken out of its slot while it runs (it receives the loop, and may replace or clear
//! itself), and put back afterwards unless it was replaced or cleared meanwhile. `L` is the
//! loop the hooks receive.

/// A hook: called with the loop, on the loop thread.
pub(crate) type Hook<L> = Box<dyn FnMut(&mut L)>;

/// When a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    BeforeWait = 0,
    AfterWait = 1,
}

impl Phase {
    /// What a slow-callback warning calls it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Phase::BeforeWait => "before_wait hook",
            Phase::AfterWait => "after_wait hook",
        }
    }
}

/// The two hooks of one loop.
pub(crate) struct Hooks<L> {
    before: Option<Hook<L>>,
    after: Option<Hook<L>>,
    /// Per phase, bumped by every `set` and `clear` of it: a hook that ran is put back only if
    /// its slot did not change meanwhile.
    changes: [u64; 2],
}

impl<L> Default for Hooks<L> {
    fn default() -> Self {
        Hooks {
            before: None,
            after: None,
            changes: [0, 0],
        }
    }
}

impl<L> Hooks<L> {
    /// True if a hook is set: the loop's one test when there is none.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.before.is_some() || self.after.is_some()
    }

    fn slot(&mut self, phase: Phase) -> &mut Option<Hook<L>> {
        match phase {
            Phase::BeforeWait => &mut self.before,
            Phase::AfterWait => &mut self.after,
        }
    }

    pub(crate) fn set(&mut self, phase: Phase, hook: Hook<L>) {
        self.changes[phase as usize] += 1;
        *self.slot(phase) = Some(hook);
    }

    pub(crate) fn clear(&mut self) {
        self.changes = self.changes.map(|c| c + 1);
        (self.before, self.after) = (None, None);
    }

    /// The hook of `phase`, taken out to run, with the mark that `put_back` needs.
    pub(crate) fn take(&mut self, phase: Phase) -> Option<(Hook<L>, u64)> {
        let changes = self.changes[phase as usize];
        self.slot(phase).take().map(|hook| (hook, changes))
    }

    /// Puts back a hook that ran, unless a hook was set or the hooks cleared while it ran.
    pub(crate) fn put_back(&mut self, phase: Phase, (hook, changes): (Hook<L>, u64)) {
        if self.changes[phase as usize] == changes {
            *self.slot(phase) = Some(hook);
        }
    }
}
