//! Groups as operators save them, and the copy registrations read.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use cohort_model::{Group, Timestamp};

use cohort_store::Store;

use crate::plugins::Purpose;
use crate::{Engine, EngineError, Result, schedule};

/// The groups as last read, with the store's stamp they were read at: registration
/// must not parse every definition for every customer.
#[derive(Default)]
pub(crate) struct GroupsCache(Mutex<Option<(i64, Arc<Vec<Group>>)>>);

impl GroupsCache {
    /// Every group, parsed again only when a definition has changed, whoever changed
    /// it; and whether it was.
    fn current(&self, store: &dyn Store) -> Result<(Arc<Vec<Group>>, bool)> {
        let stamp = store.groups_stamp()?;
        let mut cached = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*cached {
            Some((at, groups)) if *at == stamp => Ok((groups.clone(), false)),
            _ => {
                let groups = Arc::new(store.groups()?);
                *cached = Some((stamp, groups.clone()));
                Ok((groups, true))
            }
        }
    }
}

impl Engine {
    /// Every group, as the store has them now.
    pub(crate) fn groups(&self) -> Result<Arc<Vec<Group>>> {
        let (groups, read) = self.groups.current(self.store.as_ref())?;
        if read {
            // A group deleted since, here or by another process, takes what the caches
            // keep of it along: its decisions are megabytes at a million customers.
            let live: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
            self.forget_groups_but(&live);
        }
        Ok(groups)
    }

    /// Drop what the caches keep of every group not in `live`.
    fn forget_groups_but(&self, live: &HashSet<&str>) {
        self.decided.retain(live);
        self.holdings.retain(live);
    }

    /// Save a group after checking its shape, its schedule, and every condition's
    /// configuration through its plugin. Nothing is saved if anything is wrong.
    pub fn save_group(&self, group: &Group, now: Timestamp) -> Result<()> {
        self.save_group_if(group, now, &|_| true).map(|_| ())
    }

    /// As `save_group`, if `precondition` holds of the group as stored (`None` if
    /// there is none) when it is written; whether it was written.
    pub fn save_group_if(
        &self,
        group: &Group,
        now: Timestamp,
        precondition: &dyn Fn(Option<&Group>) -> bool,
    ) -> Result<bool> {
        group.check()?;
        if let Some(s) = &group.auto.triggers.schedule {
            schedule::parse(&group.id, s)?;
        }
        drop(self.prepare(group, Purpose::Save)?);
        self.check_references(group)?;
        Ok(self.store.put_group_if(group, now, precondition)?)
    }

    /// Record that a platform entity refers to a group (or no longer does).
    pub fn use_group(&self, group: &str, kind: &str, entity: &str, used: bool) -> Result<()> {
        self.group(group)?;
        if !cohort_model::is_slug(kind) {
            return Err(EngineError::UseKind(kind.to_string()));
        }
        self.store.set_use(group, kind, entity, used)?;
        Ok(())
    }

    /// Who uses a group: the platform's entities that refer to it, as `(kind,
    /// entity)`, and the groups whose rules refer to it, as `("group", id)`.
    pub fn uses(&self, id: &str) -> Result<Vec<(String, String)>> {
        let mut uses = self.store.uses(id)?;
        uses.extend(
            self.referring(id)?
                .into_iter()
                .map(|g| ("group".to_string(), g)),
        );
        Ok(uses)
    }

    /// Delete a group. A group the platform still uses, or another group's rule refers
    /// to, is refused unless `force`; the rules that refer to a group deleted by force
    /// fail to run, naming it, until they are changed.
    pub fn delete_group(&self, id: &str, force: bool) -> Result<()> {
        self.group(id)?;
        let uses = self.uses(id)?;
        if !uses.is_empty() && !force {
            return Err(EngineError::InUse {
                group: id.to_string(),
                uses,
            });
        }
        self.store.delete_group(id)?;
        self.groups()?;
        Ok(())
    }

    pub fn group(&self, id: &str) -> Result<Group> {
        self.store.group(id)?.ok_or_else(|| EngineError::NotFound {
            what: "group",
            id: id.to_string(),
        })
    }
}
