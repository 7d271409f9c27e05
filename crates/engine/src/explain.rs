//! Why a customer is or is not a member of a group.

use cohort_evaluator::explain;
use cohort_model::{Mode, Timestamp};

use crate::{Engine, Result, Why};

impl Engine {
    /// Why `customer` is or is not a member of `group` as of `as_of`: the rule
    /// condition by condition, each with its plugin's sentence, and what else decides
    /// (a pin, an exclusive set's group ahead, a disabled rule, the memberships'
    /// windows).
    pub fn explain(&self, customer: &str, group: &str, as_of: Timestamp) -> Result<Why> {
        let g = self.group(group)?;
        let record = self.customer(customer)?;
        let facts = record.intern(self.host.interner())?;
        // The customer's memberships of the groups the rule refers to, read once (and
        // not at all for a rule that refers to none).
        let referred = g.referred();
        let held = if referred.is_empty() {
            Vec::new()
        } else {
            self.store.customer_memberships_in(customer, &referred)?
        };
        let member_of = |x: &str| held.iter().any(|m| m.group == x && m.is_active(as_of));
        let (columns, reasons) = self.explain_one(&g, &facts, as_of, &member_of)?;
        let mut explanation = explain(&g, &columns, 0);
        let conditions = explanation
            .clauses
            .iter_mut()
            .flat_map(|clause| clause.conditions.iter_mut());
        for (condition, because) in conditions.zip(reasons) {
            condition.because = because;
        }
        let memberships = self
            .store
            .customer_memberships_in(customer, &[group])?
            .into_iter()
            .map(|m| {
                let state = m.state(as_of);
                (m, state)
            })
            .collect();
        Ok(Why {
            customer: customer.to_string(),
            group: group.to_string(),
            as_of,
            explanation,
            memberships,
            pinned_out: self
                .store
                .excluded_from(customer)?
                .iter()
                .any(|g| g == group),
            ahead: self.held_ahead(customer, &g, as_of)?,
            disabled: g.auto.mode == Mode::Disabled,
        })
    }

    /// The group of `group`'s exclusive set, ahead of it by priority, that holds
    /// `customer` at `at`: what keeps the rule from adding the customer here.
    pub(crate) fn held_ahead(
        &self,
        customer: &str,
        group: &cohort_model::Group,
        at: Timestamp,
    ) -> Result<Option<String>> {
        let Some(mine) = &group.exclusive else {
            return Ok(None);
        };
        for rival in self.store.groups()? {
            let ahead = rival.id != group.id
                && rival
                    .exclusive
                    .as_ref()
                    .is_some_and(|x| x.set == mine.set && x.priority < mine.priority);
            if ahead
                && self
                    .store
                    .customer_memberships_in(customer, &[&rival.id])?
                    .iter()
                    .any(|m| m.is_active(at))
            {
                return Ok(Some(rival.id));
            }
        }
        Ok(None)
    }
}
