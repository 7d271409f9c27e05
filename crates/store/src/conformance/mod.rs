//! The behaviour every backend shows, as one suite a backend's tests run:
//! `cohort_store::conformance::suite(&|| Box::new(MyStore::new()))`. Each case gets a
//! store of its own, empty; the suite runs every case and names each that failed.
//! What only one backend can show (its schema's history, its files, its locks) stays
//! in that backend's own tests.

use std::panic::AssertUnwindSafe;

use cohort_model::{Source, Timestamp};
use cohort_planner::Change;

use crate::{Cause, Store, Trigger};

mod cases;
mod erasure;
mod imports;
mod records;
mod scope;
mod staff;
mod webhooks;

/// A case: what it shows, and the check.
type Case = (&'static str, fn(&dyn Store));

/// Every case, by name.
pub const CASES: &[Case] = &[
    (
        "apply_writes_memberships_audit_and_outbox_together",
        cases::apply_writes_memberships_audit_and_outbox_together,
    ),
    (
        "a_registration_stores_the_customer_and_its_memberships_once",
        cases::a_registration_stores_the_customer_and_its_memberships_once,
    ),
    (
        "a_batch_longer_than_a_statement_keeps_its_order_and_references",
        cases::a_batch_longer_than_a_statement_keeps_its_order_and_references,
    ),
    (
        "a_mixed_batch_writes_every_membership_entry_and_event_as_told",
        cases::a_mixed_batch_writes_every_membership_entry_and_event_as_told,
    ),
    (
        "batches_for_several_causes_keep_each_cause_and_every_event",
        cases::batches_for_several_causes_keep_each_cause_and_every_event,
    ),
    (
        "a_groups_history_is_its_entries_newest_first_page_by_page",
        cases::a_groups_history_is_its_entries_newest_first_page_by_page,
    ),
    (
        "plugins_are_listed_without_their_bytes_and_replaced_by_id_and_version",
        cases::plugins_are_listed_without_their_bytes_and_replaced_by_id_and_version,
    ),
    (
        "windows_opening_and_closing_by_the_clock_are_announced_once",
        cases::windows_opening_and_closing_by_the_clock_are_announced_once,
    ),
    (
        "membership_pages_follow_ids_and_filter_by_state",
        cases::membership_pages_follow_ids_and_filter_by_state,
    ),
    (
        "the_groups_stamp_moves_with_definitions_only",
        cases::the_groups_stamp_moves_with_definitions_only,
    ),
    (
        "tokens_are_found_by_digest_until_revoked_and_names_are_reusable_after",
        cases::tokens_are_found_by_digest_until_revoked_and_names_are_reusable_after,
    ),
    (
        "a_webhook_starts_at_the_newest_event_and_lags_until_delivered",
        cases::a_webhook_starts_at_the_newest_event_and_lags_until_delivered,
    ),
    (
        "idempotency_keys_belong_to_a_token_and_expire",
        cases::idempotency_keys_belong_to_a_token_and_expire,
    ),
    (
        "active_counts_and_exclusions_agree_with_the_model",
        cases::active_counts_and_exclusions_agree_with_the_model,
    ),
    (
        "a_guarded_apply_writes_only_while_what_it_read_holds",
        cases::a_guarded_apply_writes_only_while_what_it_read_holds,
    ),
    (
        "customers_page_in_id_order",
        cases::customers_page_in_id_order,
    ),
    (
        "staff_sign_in_with_sessions_that_end_on_password_change_and_removal",
        staff::staff_sign_in_with_sessions_that_end_on_password_change_and_removal,
    ),
    (
        "customers_are_kept_whole_and_handed_over_in_write_order",
        records::customers_are_kept_whole_and_handed_over_in_write_order,
    ),
    (
        "groups_are_kept_by_id_with_what_refers_to_them",
        records::groups_are_kept_by_id_with_what_refers_to_them,
    ),
    (
        "a_customer_s_memberships_in_some_groups_and_pins",
        records::a_customer_s_memberships_in_some_groups_and_pins,
    ),
    (
        "runs_are_recorded_as_they_start_and_end",
        records::runs_are_recorded_as_they_start_and_end,
    ),
    (
        "a_webhook_removed_is_gone_and_failures_are_counted",
        records::a_webhook_removed_is_gone_and_failures_are_counted,
    ),
    (
        "a_rule_s_own_words_read_back_as_written",
        records::a_rule_s_own_words_read_back_as_written,
    ),
    (
        "an_ended_membership_says_who_ended_it_and_why",
        records::an_ended_membership_says_who_ended_it_and_why,
    ),
    (
        "a_scheduled_run_is_claimed_once",
        records::a_scheduled_run_is_claimed_once,
    ),
    (
        "a_webhook_is_leased_to_one_holder_at_a_time",
        records::a_webhook_is_leased_to_one_holder_at_a_time,
    ),
    (
        "conditional_writes_look_at_what_is_stored",
        records::conditional_writes_look_at_what_is_stored,
    ),
    (
        "an_erased_customer_leaves_ids_and_no_reasons",
        erasure::an_erased_customer_leaves_ids_and_no_reasons,
    ),
    (
        "an_erasure_ends_what_a_late_writer_added",
        erasure::an_erasure_ends_what_a_late_writer_added,
    ),
    (
        "a_webhook_changes_only_as_read_and_each_change_starts_a_generation",
        webhooks::a_webhook_changes_only_as_read_and_each_change_starts_a_generation,
    ),
    (
        "a_webhook_keeps_its_latest_delivery_attempts",
        webhooks::a_webhook_keeps_its_latest_delivery_attempts,
    ),
    (
        "an_event_carries_its_membership_as_stored",
        webhooks::an_event_carries_its_membership_as_stored,
    ),
    (
        "an_import_checks_its_rows_and_applies_the_valid_ones",
        imports::an_import_checks_its_rows_and_applies_the_valid_ones,
    ),
    (
        "clashes_are_found_in_any_order_and_rows_apply_group_by_group",
        imports::clashes_are_found_in_any_order_and_rows_apply_group_by_group,
    ),
    (
        "a_whole_import_with_a_late_problem_writes_nothing",
        imports::a_whole_import_with_a_late_problem_writes_nothing,
    ),
    (
        "a_whole_import_of_new_rows_adds_each_in_key_order",
        imports::a_whole_import_of_new_rows_adds_each_in_key_order,
    ),
    (
        "finishing_one_import_keeps_another_imports_rows",
        imports::finishing_one_import_keeps_another_imports_rows,
    ),
    (
        "import_problems_page_by_line_then_as_found",
        imports::import_problems_page_by_line_then_as_found,
    ),
    (
        "history_narrows_by_groups_actor_and_time",
        scope::history_narrows_by_groups_actor_and_time,
    ),
    (
        "a_groups_customers_are_those_it_ever_held_or_pinned_in_id_order",
        scope::a_groups_customers_are_those_it_ever_held_or_pinned_in_id_order,
    ),
];

/// Run every case on a fresh store from `open`; panics naming each case that failed
/// (each failure's own message is printed as it happens).
pub fn suite(open: &dyn Fn() -> Box<dyn Store>) {
    let failed: Vec<&str> = CASES
        .iter()
        .filter(|(_, case)| {
            let store = open();
            std::panic::catch_unwind(AssertUnwindSafe(|| case(&*store))).is_err()
        })
        .map(|(name, _)| *name)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} conformance cases failed: {}",
        failed.len(),
        CASES.len(),
        failed.join(", ")
    );
}

pub fn add(customer: &str, group: &str) -> Change {
    Change::Add {
        customer: customer.into(),
        group: group.into(),
        source: Source::Rule,
        reason: "the rule matches".into(),
        start: 10,
        end: None,
    }
}

pub const CAUSE: Cause<'static> = Cause {
    trigger: Trigger::Manual,
    actor: "rule:g",
    run: Some(1),
};

pub fn window(customer: &str, start: Timestamp, end: Option<Timestamp>) -> Change {
    Change::Add {
        customer: customer.into(),
        group: "g".into(),
        source: Source::Import,
        reason: "imported".into(),
        start,
        end,
    }
}

pub fn events(store: &dyn Store, after: i64) -> Vec<(String, String, Timestamp)> {
    store
        .events_after(after, 100)
        .expect("events")
        .into_iter()
        .map(|e| (e.customer, e.event, e.at))
        .collect()
}

#[cfg(test)]
mod tests {
    /// A case written but left out of `CASES` would never run: every case function of
    /// the suite's files is listed.
    #[test]
    fn every_case_is_in_the_suite() {
        let sources = [
            include_str!("cases.rs"),
            include_str!("erasure.rs"),
            include_str!("imports.rs"),
            include_str!("records.rs"),
            include_str!("scope.rs"),
            include_str!("staff.rs"),
            include_str!("webhooks.rs"),
        ];
        let listed: Vec<&str> = super::CASES.iter().map(|(name, _)| *name).collect();
        let mut written = 0;
        for source in sources {
            // Each function's name and signature, up to its body.
            for item in source.split("\npub(super) fn ").skip(1) {
                let signature = item.split('{').next().unwrap_or_default();
                let name = signature.split('(').next().unwrap_or_default();
                if signature.contains("store: &dyn Store") {
                    written += 1;
                    assert!(listed.contains(&name), "case `{name}` is not in CASES");
                }
            }
        }
        assert_eq!(written, listed.len(), "every listed case is written once");
    }
}
