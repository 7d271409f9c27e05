//! Why a customer is or is not a member of a group.

use cohort_evaluator::explain;
use cohort_model::Timestamp;

use crate::{Engine, Result, Why};

impl Engine {
    /// Why `customer` is or is not a member of `group` as of `as_of`.
    pub fn explain(&self, customer: &str, group: &str, as_of: Timestamp) -> Result<Why> {
        let g = self.group(group)?;
        let record = self.customer(customer)?;
        let facts = record.intern(self.host.interner())?;
        let columns = self.evaluate_one(&g, &facts, as_of)?;
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
            explanation: explain(&g, &columns, 0),
            memberships,
            pinned_out: self
                .store
                .excluded_from(customer)?
                .iter()
                .any(|g| g == group),
        })
    }
}
