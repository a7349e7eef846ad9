//! The mouse jiggler (kvmd's `hid.jiggler`): after a spell without HID activity it moves
//! the mouse a little, so the host does not fall asleep.
//!
//! The HID thread ([`crate::hid`]) owns one `Jiggler` and, every tick, plays its next
//! move (`Jiggler::next_step`) and lets it decide whether a new round is due
//! (`Jiggler::check`). Nothing here touches the devices: moves are ordinary
//! [`Event`]s that the HID thread dispatches like any other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::hid::Event;

/// How often the jiggler looks at the activity (kvmd's `systask` period).
const CHECK: Duration = Duration::from_secs(1);

/// The jiggler's progress, kept by the HID thread.
pub(crate) struct Jiggler {
    /// The configured interval, in seconds.
    base: u64,
    last_check: Instant,
    /// The first interval is 0: a jiggler switched on moves at its next check.
    interval: Duration,
    /// When the last round ended.
    last: Instant,
    steps: VecDeque<Event>,
}

impl Jiggler {
    /// A jiggler with kvmd's `interval` (seconds), started at `now`.
    pub(crate) fn new(interval: u64, now: Instant) -> Self {
        Self { base: interval, last_check: now, interval: Duration::ZERO, last: now, steps: VecDeque::new() }
    }

    /// The move to play now, if a round is under way (one per tick).
    pub(crate) fn next_step(&mut self) -> Option<Event> {
        let step = self.steps.pop_front()?;
        if self.steps.is_empty() {
            self.last = Instant::now();
        }
        Some(step)
    }

    /// Once a second: stops when switched off (`active` false); otherwise starts a round
    /// when both the HID activity (`idle` ago) and the last round are an interval old.
    /// `relative` and `pos` (the last absolute position, read only when a round starts)
    /// shape the round.
    pub(crate) fn check(&mut self, active: bool, idle: Duration, relative: bool, pos: impl FnOnce() -> (i64, i64)) {
        if self.last_check.elapsed() < CHECK {
            return;
        }
        self.last_check = Instant::now();
        if !active {
            self.interval = Duration::ZERO;
            self.steps.clear();
        } else if self.steps.is_empty() && idle >= self.interval && self.last.elapsed() >= self.interval {
            self.steps = steps(relative, pos);
            self.interval = next_interval(self.base);
        }
    }
}

/// kvmd's jiggler moves: absolute, 11 moves around the last position ending on it;
/// relative, 10 moves of (±10, ±10).
fn steps(relative: bool, pos: impl FnOnce() -> (i64, i64)) -> VecDeque<Event> {
    if relative {
        (0..10).map(|i| if i % 2 == 0 { Event::Relative(10, 10) } else { Event::Relative(-10, -10) }).collect()
    } else {
        let (x, y) = pos();
        (0..11)
            .map(|i| {
                let d = if i == 10 {
                    0
                } else if i % 2 == 0 {
                    100
                } else {
                    -100
                };
                Event::MoveTo(x + d, y + d)
            })
            .collect()
    }
}

/// The next interval: a random whole number of seconds within ±25 % of `base`, at least
/// 1 (kvmd's `systask`).
fn next_interval(base: u64) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let base = base.max(1);
    let spread = base / 4;
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    let secs = if spread == 0 { base } else { base - spread + r % (2 * spread + 1) };
    Duration::from_secs(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_like_kvmds() {
        let abs: Vec<Event> = steps(false, || (5, -5)).into();
        assert_eq!(abs.len(), 11);
        assert_eq!(abs[0], Event::MoveTo(105, 95));
        assert_eq!(abs[1], Event::MoveTo(-95, -105));
        assert_eq!(abs[10], Event::MoveTo(5, -5), "ends where it started");
        let rel: Vec<Event> = steps(true, || unreachable!("no position for the relative mouse")).into();
        assert_eq!(rel.len(), 10);
        assert_eq!((rel[0].clone(), rel[1].clone()), (Event::Relative(10, 10), Event::Relative(-10, -10)));
    }

    #[test]
    fn intervals_stay_within_a_quarter() {
        for _ in 0..200 {
            let s = next_interval(60).as_secs();
            assert!((45..=75).contains(&s), "{s}");
        }
        assert_eq!(next_interval(0), Duration::from_secs(1));
        assert_eq!(next_interval(3), Duration::from_secs(3));
    }

    #[test]
    fn a_round_starts_once_idle_and_stops_when_switched_off() {
        let long_ago = Instant::now() - Duration::from_secs(10);
        let mut j = Jiggler::new(60, long_ago);
        j.last = long_ago;
        // Off: nothing.
        j.check(false, Duration::from_secs(100), false, || (0, 0));
        assert_eq!(j.next_step(), None);
        // On and idle: a round, played one step at a time.
        j.last_check = long_ago;
        j.check(true, Duration::from_secs(100), false, || (0, 0));
        assert_eq!(j.next_step(), Some(Event::MoveTo(100, 100)));
        // Switched off mid-round: the rest is dropped.
        j.last_check = long_ago;
        j.check(false, Duration::ZERO, false, || (0, 0));
        assert_eq!(j.next_step(), None);
        // Checked at most once a second.
        j.check(true, Duration::from_secs(100), false, || (0, 0));
        assert_eq!(j.next_step(), None);
    }
}
