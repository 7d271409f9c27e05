//! Membership by hand: adding, removing and pinning out.

use cohort_model::{Source, State, Timestamp};
use cohort_planner::Change;
use cohort_store::{Cause, PlanRead, StoreError};

use crate::{Engine, EngineError, Result, Trigger, rivals};

/// How many times an addition by hand is planned before giving up as busy: each retry
/// means another writer changed the same customer's memberships in the meantime.
const PLANS: usize = 8;

impl Engine {
    /// Add a customer to a group by hand, optionally for a window `[start, end)`.
    pub fn add_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        window: (Timestamp, Option<Timestamp>),
        now: Timestamp,
    ) -> Result<bool> {
        let g = self.group(group)?;
        self.customer(customer)?;
        if let Some(end) = window.1
            && end <= window.0
        {
            return Err(EngineError::Window {
                start: window.0,
                end,
            });
        }
        // The groups whose memberships the plan reads: this one and its set's.
        let groups = match &g.exclusive {
            Some(_) => self.groups()?,
            None => Default::default(),
        };
        let mut read: Vec<&str> = vec![group];
        if let Some(set) = &g.exclusive {
            read.extend(
                groups
                    .iter()
                    .filter(|o| o.id != group)
                    .filter(|o| o.exclusive.as_ref().is_some_and(|s| s.set == set.set))
                    .map(|o| o.id.as_str()),
            );
        }
        let cause = Cause {
            trigger: Trigger::Manual,
            actor,
            run: None,
        };
        // Another server on the same store may change these memberships between the
        // reads and the write: the write goes through only if they are still as read,
        // else it is planned again from fresh reads.
        for _ in 0..PLANS {
            let memberships = self.store.customer_memberships_in(customer, &read)?;
            let overlapping = memberships.iter().any(|m| {
                m.group == group
                    && m.end.is_none_or(|end| end > window.0)
                    && window.1.is_none_or(|end| m.start < end)
            });
            if overlapping {
                return Ok(false);
            }
            let mut changes = Vec::new();
            if let Some(set) = &g.exclusive {
                // By hand the operator's choice wins: leave the other groups of the set.
                for rival in rivals::among(&g, &groups, &memberships, now) {
                    changes.push(Change::End {
                        membership: rival.membership,
                        customer: customer.into(),
                        group: rival.group,
                        at: window.0.max(now),
                        reason: format!(
                            "added by hand to `{group}` of exclusive set `{}`",
                            set.set
                        )
                        .into(),
                    });
                }
            }
            changes.push(Change::Add {
                customer: customer.into(),
                group: group.into(),
                source: Source::Manual,
                reason: reason.to_string().into(),
                start: window.0,
                end: window.1,
            });
            let planned_from = PlanRead {
                customer,
                groups: &read,
                memberships: &memberships,
            };
            if self
                .store
                .apply_guarded(&changes, &cause, now, &planned_from)?
                .is_some()
            {
                return Ok(true);
            }
        }
        Err(StoreError::Busy(
            format!(
                "the memberships of `{customer}` kept changing while an addition to \
                 `{group}` was planned; try again"
            )
            .into(),
        )
        .into())
    }

    fn apply_by_hand(&self, changes: &[Change], actor: &str, now: Timestamp) -> Result<(u64, u64)> {
        let cause = Cause {
            trigger: Trigger::Manual,
            actor,
            run: None,
        };
        Ok(self.store.apply(changes, &cause, now)?.counts())
    }

    /// Remove a customer from a group by hand: every active or pending membership ends
    /// now. Returns how many ended. A rule may add the customer again at its next run
    /// unless [`Engine::pin_exclusion`] says otherwise.
    pub fn remove_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.group(group)?;
        let changes: Vec<Change> = self
            .store
            .customer_memberships_in(customer, &[group])?
            .into_iter()
            .filter(|m| m.state(now) != State::Expired)
            .map(|m| Change::End {
                membership: m.id,
                customer: customer.into(),
                group: group.into(),
                // A pending membership ends before it starts: its window becomes empty.
                at: now.max(m.start),
                reason: reason.to_string().into(),
            })
            .collect();
        let (_, ended) = self.apply_by_hand(&changes, actor, now)?;
        Ok(ended)
    }

    /// Pin a customer out of a group (the rule never adds it again) or lift the pin.
    /// Pinning also removes the customer now.
    pub fn pin_exclusion(
        &self,
        customer: &str,
        group: &str,
        pinned: bool,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        self.group(group)?;
        self.customer(customer)?;
        self.store
            .set_exclusion(customer, group, pinned, actor, reason, now)?;
        if pinned {
            self.remove_member(customer, group, actor, reason, now)?;
        }
        Ok(())
    }
}
