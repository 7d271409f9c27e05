//! What a group's rule would do before it is saved: a dry run of a definition that
//! need not be stored, over every customer, with how many would be added, removed and
//! left undecided and a few of each. Nothing is recorded: it is not a run.

use cohort_evaluator::Decision;
use cohort_model::{Group, Timestamp};
use cohort_planner::Change;
use serde::Serialize;

use crate::plugins::Purpose;
use crate::run::new_run;
use crate::{Engine, Result, Trigger, schedule};

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
    /// stored memberships, as of `as_of`, as a dry run does; checks it as saving would
    /// first.
    pub fn preview(&self, group: &Group, as_of: Timestamp) -> Result<Preview> {
        group.check()?;
        if let Some(s) = &group.auto.triggers.schedule {
            schedule::parse(&group.id, s)?;
        }
        // Never recorded, so never running: nothing can cancel it.
        let mut run = new_run(group, Trigger::Manual, true, "", as_of, as_of);
        let mut undecided_sample = Vec::new();
        let evaluated = self.evaluate_group(
            group,
            &mut run,
            usize::MAX,
            Vec::new(),
            Purpose::Save,
            &mut |_, _| {},
            |id, decision| {
                if decision == Decision::Undecided && undecided_sample.len() < SAMPLE {
                    undecided_sample.push(id.to_string());
                }
            },
        )?;
        let (mut added_sample, mut removed_sample) = (Vec::new(), Vec::new());
        for change in &evaluated.changes {
            let (sample, customer) = match change {
                Change::Add {
                    group: g, customer, ..
                } if **g == *group.id => (&mut added_sample, customer),
                Change::Add { .. } => continue,
                Change::End { customer, .. } => (&mut removed_sample, customer),
            };
            if sample.len() < SAMPLE {
                sample.push(customer.to_string());
            }
        }
        Ok(Preview {
            customers: run.customers,
            matched: run.matched,
            added: run.added,
            removed: run.removed,
            undecided: run.undecided,
            added_sample,
            removed_sample,
            undecided_sample,
            failures: run.failures,
        })
    }
}
