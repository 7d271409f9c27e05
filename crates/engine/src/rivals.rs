//! Exclusive sets: the memberships a group's plan must reckon with in the other groups
//! of its set. One rule for runs, registrations and additions by hand: a rival is a
//! membership active at the time in another group of the same set, with that group's
//! priority.

use std::sync::Arc;

use cohort_model::{Group, Held, Membership, Timestamp};
use cohort_planner::Rival;

use crate::facts::Facts;
use crate::{Engine, FastMap, Result};

/// The other groups of `group`'s exclusive set: each one's id (shared by every rival
/// in it) and priority. None for a group outside any set.
pub(crate) fn rival_groups<'g>(
    group: &Group,
    groups: &'g [Group],
) -> Vec<(&'g Group, Arc<str>, u32)> {
    let Some(set) = &group.exclusive else {
        return Vec::new();
    };
    groups
        .iter()
        .filter(|other| other.id != group.id)
        .filter_map(|other| {
            let other_set = other.exclusive.as_ref()?;
            (other_set.set == set.set)
                .then(|| (other, other.id.as_str().into(), other_set.priority))
        })
        .collect()
}

/// `m` as a rival, if it is active at `as_of` in one of `rivals`.
pub(crate) fn rival(
    m: &Membership,
    rivals: &[(&Group, Arc<str>, u32)],
    as_of: Timestamp,
) -> Option<Rival> {
    let held = Held {
        id: m.id,
        source: m.source,
        start: m.start,
        end: m.end,
    };
    rival_held(&m.group, &held, rivals, as_of)
}

/// A membership of `group`, as a rival, if it is active at `as_of` in one of `rivals`.
pub(crate) fn rival_held(
    group: &str,
    held: &Held,
    rivals: &[(&Group, Arc<str>, u32)],
    as_of: Timestamp,
) -> Option<Rival> {
    if !held.is_active(as_of) {
        return None;
    }
    let (_, id, priority) = rivals.iter().find(|(g, _, _)| g.id == group)?;
    Some(Rival {
        membership: held.id,
        group: id.clone(),
        priority: *priority,
    })
}

/// Of one customer's `memberships`, the rivals of `group` at `as_of`.
pub(crate) fn among(
    group: &Group,
    groups: &[Group],
    memberships: &[Membership],
    as_of: Timestamp,
) -> Vec<Rival> {
    let rivals = rival_groups(group, groups);
    memberships
        .iter()
        .filter_map(|m| rival(m, &rivals, as_of))
        .collect()
}

impl Engine {
    /// Every customer's rivals of `group` at `as_of`, by the customer's position in
    /// `index`: what a run plans against.
    pub(crate) fn rivals_by_position(
        &self,
        group: &Group,
        as_of: Timestamp,
        facts: &Facts,
    ) -> Result<FastMap<usize, Vec<Rival>>> {
        let mut by_position: FastMap<usize, Vec<Rival>> = FastMap::default();
        // Most groups are in no set: they must not read the groups (on the writer's
        // connection, behind whatever run is writing) to find no rivals.
        if group.exclusive.is_none() {
            return Ok(by_position);
        }
        let groups = self.groups()?;
        let rivals = rival_groups(group, &groups);
        // From the rivals' memberships as runs keep them, by position: reading every
        // membership of every rival from the store was most of a rescan of a set.
        for (other, _, _) in &rivals {
            let holdings = self
                .holdings
                .current(self.store.as_ref(), &other.id, facts)?;
            for (at, held) in holdings.iter() {
                if let Some(r) = rival_held(&other.id, held, &rivals, as_of) {
                    by_position.entry(at).or_default().push(r);
                }
            }
        }
        Ok(by_position)
    }
}
