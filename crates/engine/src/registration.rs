//! A new customer checked against every on-registration group, and stored with the
//! memberships it gets in one transaction.

use std::collections::HashSet;

use cohort_evaluator::{Compiled, Decision, explain};
use cohort_model::{CustomerRecord, Group, Held, Membership, Mode, State, Timestamp, state};
use cohort_planner::{Change, Standing, plan, rule_actor};
use cohort_store::{Cause, Erasure};

use crate::run::policy;
use crate::{Engine, EngineError, Registration, Result, Trigger, rivals};

/// One customer's standing as the store has it.
struct Known {
    memberships: Vec<Membership>,
    excluded: HashSet<String>,
}

impl Engine {
    /// Update a stored customer if `precondition` holds of the stored record when it
    /// is written; whether it was written (never, for a customer not stored). No
    /// trigger runs, as for any update.
    pub fn update_customer_if(
        &self,
        record: &CustomerRecord,
        now: Timestamp,
        precondition: &dyn Fn(&CustomerRecord) -> bool,
    ) -> Result<bool> {
        record.intern(self.host.interner())?;
        Ok(self.store.update_customer_if(record, now, precondition)?)
    }

    /// Insert or update a customer. A new customer is checked at once against every
    /// group with the on-registration trigger, and stored together with the memberships
    /// it gets, in one transaction.
    pub fn upsert_customer(&self, record: &CustomerRecord, now: Timestamp) -> Result<Registration> {
        let customer = record.intern(self.host.interner())?;
        let mut registration = Registration {
            customer: record.id.clone(),
            new: false,
            joined: Vec::new(),
            undecided: Vec::new(),
        };
        if self.store.customer_exists(&record.id)? {
            self.store.upsert_customer(record, now)?;
            return Ok(registration);
        }
        registration.new = true;
        let groups = self.groups()?;
        // Every group's changes go to the store with the customer; only a group of an
        // exclusive set needs the earlier groups' changes stored before it plans, since
        // it plans against the customer's memberships in its rivals.
        let mut pending: Vec<(Vec<Change>, String)> = Vec::new();
        let mut stored = false;
        let mut known = self.known(&record.id, &groups)?;
        // A group the rule of another refers to is decided first, so that the other's
        // group condition sees whether the customer just joined it.
        let checked: Vec<&Group> = groups
            .iter()
            .filter(|g| g.auto.mode != Mode::Disabled && g.auto.triggers.on_registration)
            .collect();
        for group in crate::order::referred_first(&checked)
            .into_iter()
            .map(|i| checked[i])
        {
            // Whether the customer is a member of `g` now, with the changes of the
            // groups decided before (not yet stored) applied.
            let member_of = |g: &str| {
                let pending = || pending.iter().flat_map(|(changes, _)| changes);
                let joining = pending().any(|c| {
                    matches!(c, Change::Add { group: x, start, end, .. }
                        if **x == *g && state(*start, *end, now) == State::Active)
                });
                let ended = |id: i64| {
                    pending().any(|c| {
                        matches!(c, Change::End { membership, at, .. } if *membership == id && *at <= now)
                    })
                };
                joining
                    || known
                        .memberships
                        .iter()
                        .any(|m| m.group == g && m.is_active(now) && !ended(m.id))
            };
            let columns = self.evaluate_one(group, &customer, now, &member_of)?;
            let decision = Compiled::new(group).decide(&columns, 0);
            if decision == Decision::Undecided {
                let why = explain(group, &columns, 0).to_string();
                registration.undecided.push((group.id.clone(), why));
                continue;
            }
            if group.exclusive.is_some() && !pending.is_empty() {
                if !stored && !self.store.upsert_customer(record, now)? {
                    return Ok(registered_meanwhile(registration));
                }
                stored = true;
                self.store.apply_batches(&batches(&pending), now)?;
                pending.clear();
                known = self.known(&record.id, &groups)?;
            }
            let changes = self.plan_one(group, &groups, &record.id, &known, decision, now);
            if changes
                .iter()
                .any(|c| matches!(c, Change::Add { group: g, .. } if **g == *group.id))
            {
                registration.joined.push(group.id.clone());
            }
            if !changes.is_empty() {
                pending.push((changes, rule_actor(&group.id)));
            }
        }
        if stored {
            self.store.apply_batches(&batches(&pending), now)?;
        } else if self
            .store
            .register(record, now, &batches(&pending))?
            .is_none()
        {
            return Ok(registered_meanwhile(registration));
        }
        // A later group of an exclusive set may have taken the customer from an earlier
        // one: report where it ended up. Without exclusive sets, nothing was taken.
        if groups.iter().any(|g| g.exclusive.is_some()) {
            let joined: Vec<&str> = registration.joined.iter().map(String::as_str).collect();
            let active: HashSet<String> = self
                .store
                .customer_memberships_in(&record.id, &joined)?
                .into_iter()
                .filter(|m| m.is_active(now))
                .map(|m| m.group)
                .collect();
            registration.joined.retain(|g| active.contains(g));
        }
        Ok(registration)
    }

    /// What the store knows of one customer's standing: its memberships in `groups`
    /// (a plan looks at its own group and its rivals, never at a deleted group) and the
    /// groups it is pinned out of. Read once per registration, not per group.
    fn known(&self, customer: &str, groups: &[Group]) -> Result<Known> {
        let ids: Vec<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        Ok(Known {
            memberships: self.store.customer_memberships_in(customer, &ids)?,
            excluded: self.store.excluded_from(customer)?.into_iter().collect(),
        })
    }

    /// The plan for one customer, from its own memberships only: registration must not
    /// read every membership of a group.
    fn plan_one(
        &self,
        group: &Group,
        groups: &[Group],
        customer: &str,
        known: &Known,
        decision: Decision,
        as_of: Timestamp,
    ) -> Vec<Change> {
        let all = &known.memberships;
        let memberships: Vec<Held> = all
            .iter()
            .filter(|m| m.group == group.id)
            .map(Membership::held)
            .collect();
        let pinned_out = known.excluded.contains(&group.id);
        let rivals = rivals::among(group, groups, all, as_of);
        plan(
            policy(group, &group.id.as_str().into()),
            Standing {
                customer: &customer.into(),
                memberships: &memberships,
                pinned_out,
                rivals: &rivals,
            },
            decision,
            as_of,
        )
    }
}

impl Engine {
    /// Erase a customer (the platform's "right to erasure"): their facts and pins are
    /// deleted, each membership not ended ends now, and the history keeps its entries
    /// without the reasons typed about the customer (see `Customers::erase_customer`).
    /// The customer cache of every process loads again at its next run. A run that read
    /// the customer before and writes after may still add a membership: erasing again
    /// ends it. Not found if the store has nothing of the customer left to erase.
    pub fn erase_customer(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Erasure> {
        let cause = Cause {
            trigger: Trigger::Manual,
            actor,
            run: None,
        };
        self.store
            .erase_customer(id, &cause, reason, now)?
            .ok_or_else(|| EngineError::NotFound {
                what: "customer",
                id: id.to_string(),
            })
    }
}

/// A registration's planned changes as store batches, each group's with its own actor.
fn batches(pending: &[(Vec<Change>, String)]) -> Vec<(&[Change], Cause<'_>)> {
    pending
        .iter()
        .map(|(changes, actor)| {
            (
                changes.as_slice(),
                Cause {
                    trigger: Trigger::OnRegistration,
                    actor,
                    run: None,
                },
            )
        })
        .collect()
}

/// Another writer registered the customer first: its record was stored as an update,
/// and the registration that came first decided the memberships.
fn registered_meanwhile(registration: Registration) -> Registration {
    Registration {
        new: false,
        joined: Vec::new(),
        undecided: Vec::new(),
        ..registration
    }
}
