//! What a group's rule would do before it is saved: a dry run of a definition that
//! need not be stored, over every customer, with how many would be added, removed and
//! left undecided and a few of each. Nothing is recorded: it is not a run.

use std::collections::HashSet;
use std::sync::Arc;

use cohort_evaluator::{Compiled, Decision};
use cohort_model::{Group, Timestamp, Verdicts};
use cohort_planner::{Change, Standing, plan_into};
use serde::Serialize;

use crate::plugins::Purpose;
use crate::run::{decide_row, policy};
use crate::{Engine, PAGE, Result, schedule};

/// Customers named for each kind of change: enough to recognise, few enough to read.
pub const SAMPLE: usize = 10;

/// What saving and running a definition would do now.
#[derive(Clone, Debug, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview {
    pub customers: u64,
    pub matched: u64,
    pub added: u64,
    pub removed: u64,
    pub undecided: u64,
    /// The first customers (in the store's order) of each kind.
    pub added_sample: Vec<String>,
    pub removed_sample: Vec<String>,
    pub undecided_sample: Vec<String>,
    /// Each plugin failure and how many customers it left undecided.
    #[serde(serialize_with = "cohort_store::failures_as_objects")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<cohort_store::FailureCount>))]
    pub failures: Vec<(String, u64)>,
}

impl Engine {
    /// Evaluate `group` as written, saved or not, against every customer and its
    /// stored memberships, as of `as_of`; checks it as saving would first.
    pub fn preview(&self, group: &Group, as_of: Timestamp) -> Result<Preview> {
        group.check()?;
        if let Some(s) = &group.auto.triggers.schedule {
            schedule::parse(&group.id, s)?;
        }
        let mut conditions = self.prepare(group, Purpose::Save)?;
        let compiled = Compiled::new(group);
        let facts = self.facts()?;
        let holdings = self
            .holdings
            .current(self.store.as_ref(), &group.id, &facts)?;
        let mut held = holdings.cursor();
        let pinned: HashSet<usize> = self
            .store
            .exclusions(&group.id)?
            .iter()
            .filter_map(|c| facts.index.get(c.as_str()).copied())
            .collect();
        let rivals = self.rivals_by_position(group, as_of, &facts.index)?;
        let group_id: Arc<str> = group.id.as_str().into();
        let policy = policy(group, &group_id);
        let mut preview = Preview::default();
        let mut failures = std::collections::HashMap::new();
        let mut changes = Vec::new();
        for (page, (ids, customers)) in facts.ids.chunks(PAGE).zip(&facts.pages).enumerate() {
            let columns: Vec<Verdicts> = conditions
                .iter_mut()
                .map(|c| {
                    let evaluation = c.evaluate_columns(as_of, customers);
                    self.tally(c.plugin().info(), evaluation)
                })
                .collect();
            crate::run::count_errors(&columns, &mut failures);
            for (i, id) in ids.iter().enumerate() {
                let at = page * PAGE + i;
                let decision = decide_row(
                    &compiled,
                    &columns,
                    i,
                    facts.invalid.get(&at),
                    &mut failures,
                    (&mut preview.matched, &mut preview.undecided),
                );
                if decision == Decision::Undecided && preview.undecided_sample.len() < SAMPLE {
                    preview.undecided_sample.push(id.to_string());
                }
                plan_into(
                    policy,
                    Standing {
                        customer: id,
                        memberships: held.of(at),
                        pinned_out: pinned.contains(&at),
                        rivals: rivals.get(&at).map(Vec::as_slice).unwrap_or(&[]),
                    },
                    decision,
                    as_of,
                    &mut changes,
                );
                // Only counts and samples are kept: a preview of a million additions
                // holds ten.
                for change in changes.drain(..) {
                    let (count, sample, customer) = match &change {
                        Change::Add {
                            group: g, customer, ..
                        } if **g == *group.id => {
                            (&mut preview.added, &mut preview.added_sample, customer)
                        }
                        Change::Add { .. } => continue,
                        Change::End { customer, .. } => {
                            (&mut preview.removed, &mut preview.removed_sample, customer)
                        }
                    };
                    *count += 1;
                    if sample.len() < SAMPLE {
                        sample.push(customer.to_string());
                    }
                }
            }
            preview.customers += ids.len() as u64;
        }
        let mut failures: Vec<(String, u64)> = failures.into_iter().collect();
        failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        preview.failures = failures;
        Ok(preview)
    }
}
