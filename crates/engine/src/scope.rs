//! What a caller limited to some groups may see and do: the one place the console and
//! the API ask, so that they cannot disagree.
//!
//! A scope of groups sees those groups, the customers who hold or held a membership
//! in one of them or are pinned out of one, and only those groups' part of a
//! customer's memberships and history. Anything else answers as if it did not exist
//! (`NotFound`), so that a limited caller cannot tell a hidden group or customer from
//! a missing one; a filter (history, runs) on a hidden one finds nothing, as on a
//! missing one. What spans every group (making groups, imports, customers' facts,
//! the change feed, plugins, webhooks, tokens) a limited caller is refused: the API
//! before it reaches the engine (`auth::Global*`), the console by `Within::unlimited`.

use std::collections::BTreeSet;

use cohort_model::{CustomerRecord, Group, Membership, PluginInfo, Timestamp};
use cohort_store::{AuditEntry, Ending, HistoryQuery, Listing, RunRecord};

use crate::{Begun, Cancel, Engine, EngineError, Preview, Progress, Result, Sizes, Trigger, Why};

/// What a limited caller reads in place of a group it does not see, where a group
/// must be spoken of (the group of an exclusive set that comes first).
pub const HIDDEN_GROUP: &str = "a group you do not see";

/// The groups a caller may see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every group: an account or token that is not limited.
    #[default]
    All,
    /// Only these groups, by id.
    Groups(BTreeSet<String>),
}

impl Scope {
    /// The scope of an account or token: `None` for every group.
    pub fn of(groups: Option<&[String]>) -> Scope {
        groups.map_or(Scope::All, |g| Scope::Groups(g.iter().cloned().collect()))
    }

    pub fn sees_group(&self, id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Groups(ids) => ids.contains(id),
        }
    }

    pub fn is_limited(&self) -> bool {
        matches!(self, Scope::Groups(_))
    }

    /// The groups as a list, `None` for every group.
    pub fn groups(&self) -> Option<Vec<String>> {
        match self {
            Scope::All => None,
            Scope::Groups(ids) => Some(ids.iter().cloned().collect()),
        }
    }
}

impl Engine {
    /// The engine as `scope` sees it.
    pub fn within<'e>(&'e self, scope: &'e Scope) -> Within<'e> {
        Within {
            engine: self,
            scope,
        }
    }

    /// Check the groups an account or token is to be limited to: at least one, each a
    /// group that exists (a misspelt one would quietly hide everything).
    pub fn check_scope(&self, groups: &[String]) -> Result<()> {
        if groups.is_empty() {
            return Err(EngineError::EmptyScope);
        }
        for g in groups {
            self.group(g)?;
        }
        Ok(())
    }
}

/// The engine's reads and writes about groups, customers, memberships, runs and
/// history, each checked against a scope.
pub struct Within<'e> {
    engine: &'e Engine,
    scope: &'e Scope,
}

impl Within<'_> {
    fn not_found(what: &'static str, id: &str) -> EngineError {
        EngineError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// The whole engine, for what spans every group (imports, plugins), to a caller
    /// that is not limited; `Limited` naming `what` (as "cannot <what>") to one that is.
    pub fn unlimited(&self, what: &'static str) -> Result<&Engine> {
        if self.scope.is_limited() {
            return Err(EngineError::Limited(what));
        }
        Ok(self.engine)
    }

    /// Group `id`, if the scope sees it.
    pub fn group(&self, id: &str) -> Result<Group> {
        if !self.scope.sees_group(id) {
            return Err(Self::not_found("group", id));
        }
        self.engine.group(id)
    }

    /// The groups the scope sees, in id order.
    pub fn groups(&self) -> Result<Vec<Group>> {
        let mut groups = self.engine.store().groups()?;
        groups.retain(|g| self.scope.sees_group(&g.id));
        Ok(groups)
    }

    /// Save a group the scope sees; a limited caller may change its groups but not
    /// make new ones, which it would then not see.
    pub fn save_group_if(
        &self,
        group: &Group,
        now: Timestamp,
        precondition: &dyn Fn(Option<&Group>) -> bool,
    ) -> Result<bool> {
        if self.scope.is_limited() {
            self.group(&group.id)?;
        }
        self.engine.save_group_if(group, now, precondition)
    }

    /// What uses a group: the platform's entities and the groups whose rules refer to
    /// it, as (kind, entity); a group this caller does not see is not named.
    pub fn uses(&self, group: &str) -> Result<Vec<(String, String)>> {
        self.group(group)?;
        let mut uses = self.engine.uses(group)?;
        for (kind, entity) in &mut uses {
            if kind == "group" && !self.scope.sees_group(entity) {
                *entity = HIDDEN_GROUP.to_string();
            }
        }
        Ok(uses)
    }

    /// When a group's schedule next fires, counted from its last periodic run (from
    /// `now` if it has had none); `None` without a schedule or a next time.
    pub fn next_run(&self, group: &str, now: Timestamp) -> Result<Option<Timestamp>> {
        let g = self.group(group)?;
        let Some(schedule) = &g.auto.triggers.schedule else {
            return Ok(None);
        };
        let last = self.engine.store().last_periodic_run(group)?.unwrap_or(now);
        crate::next_run(group, schedule, last)
    }

    /// What saving and running `group` would do now; a limited caller previews only
    /// its own groups.
    pub fn preview(&self, group: &Group, as_of: Timestamp) -> Result<Preview> {
        if self.scope.is_limited() {
            self.group(&group.id)?;
        }
        self.engine.preview(group, as_of)
    }

    pub fn delete_group(&self, id: &str, force: bool) -> Result<()> {
        self.group(id)?;
        self.engine.delete_group(id, force)
    }

    pub fn use_group(&self, group: &str, kind: &str, entity: &str, used: bool) -> Result<()> {
        self.group(group)?;
        self.engine.use_group(group, kind, entity, used)
    }

    /// Whether the scope sees customer `id` (who need not exist).
    pub fn sees_customer(&self, id: &str) -> Result<bool> {
        let Scope::Groups(ids) = self.scope else {
            return Ok(true);
        };
        let store = self.engine.store();
        let groups: Vec<&str> = ids.iter().map(String::as_str).collect();
        Ok(!store.customer_memberships_in(id, &groups)?.is_empty()
            || store
                .excluded_from(id)?
                .iter()
                .any(|g| self.scope.sees_group(g)))
    }

    /// Customer `id`'s facts, if the scope sees the customer.
    pub fn customer(&self, id: &str) -> Result<CustomerRecord> {
        if !self.sees_customer(id)? {
            return Err(Self::not_found("customer", id));
        }
        self.engine.customer(id)
    }

    /// Customers the scope sees, in id order after `after`, at most `limit`: for a
    /// limited scope, merged from each group's customers, so that a page costs a few
    /// index seeks per group however many customers the store holds.
    pub fn customers_after(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CustomerRecord>> {
        let store = self.engine.store();
        let Scope::Groups(ids) = self.scope else {
            return Ok(store.customers_after(after, limit)?);
        };
        let mut chosen = BTreeSet::new();
        for g in ids {
            chosen.extend(store.group_customers_after(g, after.unwrap_or(""), limit)?);
        }
        let mut out = Vec::with_capacity(limit.min(chosen.len()));
        for id in chosen.into_iter().take(limit) {
            // A membership may outlive its customer's erasure of facts.
            if let Some(c) = store.customer(&id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// A customer's memberships in the groups the scope sees.
    pub fn customer_memberships(&self, id: &str) -> Result<Vec<Membership>> {
        self.customer(id)?;
        let mut ms = self.engine.store().customer_memberships(id)?;
        ms.retain(|m| self.scope.sees_group(&m.group));
        Ok(ms)
    }

    /// How the customer's memberships in the groups the scope sees were ended.
    pub fn customer_endings(&self, id: &str) -> Result<Vec<Ending>> {
        let shown: std::collections::HashSet<i64> = self
            .customer_memberships(id)?
            .iter()
            .map(|m| m.id)
            .collect();
        let mut endings = self.engine.store().customer_endings(id)?;
        endings.retain(|e| shown.contains(&e.membership));
        Ok(endings)
    }

    /// The groups the customer is pinned out of, of those the scope sees.
    pub fn excluded_from(&self, id: &str) -> Result<Vec<String>> {
        self.customer(id)?;
        let mut gs = self.engine.store().excluded_from(id)?;
        gs.retain(|g| self.scope.sees_group(g));
        Ok(gs)
    }

    /// A group's memberships in id order, a page at a time.
    pub fn members_page(
        &self,
        group: &str,
        listing: Listing,
        at: Timestamp,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Membership>> {
        self.group(group)?;
        Ok(self
            .engine
            .store()
            .group_memberships_page(group, listing, at, after, limit)?)
    }

    /// How the group's memberships numbered `first` to `last` ended, where they did.
    pub fn endings_in(&self, group: &str, first: i64, last: i64) -> Result<Vec<Ending>> {
        self.group(group)?;
        Ok(self.engine.store().endings_in(group, first, last)?)
    }

    pub fn exclusions(&self, group: &str) -> Result<Vec<String>> {
        self.group(group)?;
        Ok(self.engine.store().exclusions(group)?)
    }

    /// The group's size now and over the last days (`Sizes`), kept a minute while its
    /// memberships do not change.
    pub fn sizes(&self, group: &str, now: Timestamp) -> Result<std::sync::Arc<Sizes>> {
        self.group(group)?;
        self.engine.sizes(group, now)
    }

    /// The audit history `query` asks for, narrowed to the scope. A filter on a group
    /// or customer it does not see finds nothing, as one on a missing group or
    /// customer does (a filter is not a lookup: nothing is "not found").
    pub fn history(
        &self,
        mut query: HistoryQuery,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        if let Some(customer) = &query.customer
            && !self.sees_customer(customer)?
        {
            return Ok(Vec::new());
        }
        match &mut query.groups {
            Some(asked) => asked.retain(|g| self.scope.sees_group(g)),
            None => query.groups = self.scope.groups(),
        }
        Ok(self.engine.store().history_where(&query, before, limit)?)
    }

    /// Runs newest first, of `group` if given, of the groups the scope sees; none for
    /// a group it does not see, as for a missing one.
    pub fn runs(
        &self,
        group: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let store = self.engine.store();
        if let Some(g) = group {
            if !self.scope.sees_group(g) {
                return Ok(Vec::new());
            }
            return Ok(store.runs(Some(g), before, limit)?);
        }
        if !self.scope.is_limited() {
            return Ok(store.runs(None, before, limit)?);
        }
        // Runs of other groups are skipped a page at a time.
        let mut out = Vec::with_capacity(limit);
        let mut before = before;
        loop {
            let page = store.runs(None, before, limit.max(100))?;
            let last = page.last().map(|r| r.id);
            for r in page {
                if self.scope.sees_group(&r.group) {
                    out.push(r);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            match last {
                Some(id) => before = Some(id),
                None => return Ok(out),
            }
        }
    }

    /// Run `id`, if it is of a group the scope sees.
    pub fn run(&self, id: i64) -> Result<RunRecord> {
        self.engine
            .store()
            .run(id)?
            .filter(|r| self.scope.sees_group(&r.group))
            .ok_or_else(|| Self::not_found("run", &id.to_string()))
    }

    pub fn begin_run(
        &self,
        group: &str,
        trigger: Trigger,
        dry_run: bool,
        actor: &str,
        as_of: Timestamp,
        now: Timestamp,
    ) -> Result<Begun> {
        self.group(group)?;
        self.engine
            .begin_run(group, trigger, dry_run, actor, as_of, now)
    }

    pub fn run_progress(&self, run: i64) -> Result<Option<Progress>> {
        self.run(run)?;
        self.engine.run_progress(run)
    }

    pub fn cancel_run(&self, run: i64, by: &str, now: Timestamp) -> Result<Cancel> {
        self.run(run)?;
        self.engine.cancel_run(run, by, now)
    }

    /// Why the customer is or is not in the group; both must be in sight.
    pub fn explain(&self, customer: &str, group: &str, as_of: Timestamp) -> Result<Why> {
        self.group(group)?;
        self.customer(customer)?;
        let mut why = self.engine.explain(customer, group, as_of)?;
        // A hidden group ahead is not named.
        if why
            .ahead
            .as_deref()
            .is_some_and(|g| !self.scope.sees_group(g))
        {
            why.ahead = Some(HIDDEN_GROUP.to_string());
        }
        Ok(why)
    }

    /// The installed plugins, the newest version of each, as they describe
    /// themselves; one that cannot be loaded now is left out.
    pub fn plugins(&self) -> Result<Vec<PluginInfo>> {
        let mut ids: Vec<String> = self
            .engine
            .store()
            .plugins()?
            .into_iter()
            .map(|p| p.id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids
            .iter()
            .filter_map(|id| self.engine.describe_plugin(id, None).ok())
            .map(|(_, info, _)| info)
            .collect())
    }

    /// The names of the facts plugin `id` reads, as a customer's record spells them.
    pub fn plugin_reads(&self, id: &str) -> Result<Vec<String>> {
        let (_, info, _) = self.engine.describe_plugin(id, None)?;
        Ok(info
            .reads
            .iter()
            .map(|f| f.name().replace('-', "_"))
            .collect())
    }

    /// Add a customer by hand: a limited caller may add any customer to its own
    /// groups (that is its work), and so comes to see them.
    pub fn add_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        window: (Timestamp, Option<Timestamp>),
        now: Timestamp,
    ) -> Result<bool> {
        self.group(group)?;
        self.engine
            .add_member(customer, group, actor, reason, window, now)
    }

    pub fn remove_member(
        &self,
        customer: &str,
        group: &str,
        actor: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.group(group)?;
        self.customer(customer)?;
        self.engine
            .remove_member(customer, group, actor, reason, now)
    }

    /// Pin a customer out of a group or lift the pin; as with adding, a limited
    /// caller may pin any customer out of its own groups.
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
        self.engine
            .pin_exclusion(customer, group, pinned, actor, reason, now)
    }
}
