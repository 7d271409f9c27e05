//! The column form against the records it is made from.

use super::*;
use cohort_model::{CustomerRecord, Interner};

fn full_customer(interner: &Interner) -> Customer {
    serde_json::from_str::<CustomerRecord>(
        r#"{"id":"1","country":"DE","registration_ip":"2001:db8::1",
            "registration_params":{"fromsite":"true"},
            "payers":[{"kind":"individual"}],"provider":"main","auth_methods":["phone"],
            "verification_status":"passed","verification_methods":["email"],
            "subscriptions":[{"product":"tower","start":"2026-01-01T00:00:00Z"}],
            "tags":["vip"],"attributes":{"segment":"b2b","balance":12.5},
            "registered_at":"2025-06-01T00:00:00Z"}"#,
    )
    .expect("parses")
    .intern(interner)
    .expect("valid")
}

fn filled(customers: &[Customer], reads: FieldSet) -> Batch {
    let mut batch = Batch::default();
    fill(&mut batch, customers, reads);
    batch
}

#[test]
fn unread_columns_are_left_empty() {
    let interner = Interner::new();
    let c = full_customer(&interner);
    let b = filled(&[c.clone(), c], FieldSet::empty().with(Field::Country));
    assert_eq!(b.count, 2);
    let de = interner.lookup("DE").map(|s| s.as_u32()).expect("interned");
    assert_eq!(b.country, vec![de, de]);
    assert!(b.registration_ip.is_empty());
    assert!(b.registration_params.offsets.is_empty() && b.registration_params.items.is_empty());
    assert!(b.payers.offsets.is_empty());
    assert!(b.provider.is_empty());
    assert!(b.auth_methods.offsets.is_empty());
    assert!(b.verification_status.is_empty());
    assert!(b.verification_methods.offsets.is_empty());
    assert!(b.subscriptions.offsets.is_empty());
    assert!(b.tags.offsets.is_empty());
    assert!(b.attributes.offsets.is_empty());
    assert!(b.registered.is_empty());
}

/// Customers with lists of different lengths, empty ones among them.
fn assorted(interner: &Interner) -> Vec<Customer> {
    let parse = |json: &str| {
        serde_json::from_str::<CustomerRecord>(json)
            .expect("parses")
            .intern(interner)
            .expect("valid")
    };
    vec![
        full_customer(interner),
        parse(r#"{"id":"2","tags":["a","b","c"],"country":"FR","attributes":{"n":7}}"#),
        parse(r#"{"id":"3"}"#),
        parse(
            r#"{"id":"4","payers":[{"kind":"legal_entity"},{"kind":"individual","active":false}],
                "subscriptions":[{"product":"p1","start":"2026-01-01T00:00:00Z"},
                                 {"product":"p2","status":"suspended","start":"2026-02-01T00:00:00Z",
                                  "end":"2026-03-01T00:00:00Z"}],
                "registration_ip":"192.0.2.7"}"#,
        ),
        full_customer(interner),
    ]
}

fn shown(batch: &Batch) -> String {
    format!("{batch:?}")
}

/// Every column of `page` is as if made from `expected`.
#[track_caller]
fn assert_reads_as(page: &Columns, expected: &[Customer], case: impl std::fmt::Display) {
    let all = FieldSet::all();
    let mut read = Batch::default();
    fill_from(&mut read, page, 0..page.len(), all);
    assert_eq!(shown(&read), shown(&filled(expected, all)), "{case}");
}

#[test]
fn a_batch_copied_from_columns_is_the_batch_filled_from_records() {
    let interner = Interner::new();
    let customers = assorted(&interner);
    let page = Columns::new(&customers);
    assert_eq!(page.len(), customers.len());
    let reads: Vec<FieldSet> = vec![
        FieldSet::all(),
        FieldSet::empty().with(Field::Tags).with(Field::Country),
        FieldSet::empty().with(Field::Subscriptions),
    ];
    for reads in reads {
        for start in 0..customers.len() {
            for end in start..=customers.len() {
                let mut copied = Batch::default();
                fill_from(&mut copied, &page, start..end, reads);
                let filled = filled(&customers[start..end], reads);
                assert_eq!(shown(&copied), shown(&filled), "rows {start}..{end}");
            }
        }
    }
}

#[test]
fn rows_replaced_and_added_to_columns_read_as_new_columns() {
    let interner = Interner::new();
    let customers = assorted(&interner);
    let page = Columns::new(&customers[..3]);
    let changed = page.with_rows([(1, &customers[3]), (3, &customers[4]), (4, &customers[1])]);
    let expected = [
        customers[0].clone(),
        customers[3].clone(),
        customers[2].clone(),
        customers[4].clone(),
        customers[1].clone(),
    ];
    let all = FieldSet::all();
    let mut copied = Batch::default();
    fill_from(&mut copied, &changed, 0..changed.len(), all);
    assert_eq!(shown(&copied), shown(&filled(&expected, all)));
    assert_eq!(page.len(), 3, "the original is left as it was");

    // Into a spare that held other rows: the same page, in the spare's room.
    let mut spare = Columns::new(&customers);
    let room = spare.all.tags.items.capacity();
    page.with_rows_into(
        [(1, &customers[3]), (3, &customers[4]), (4, &customers[1])],
        &mut spare,
    );
    let mut reused = Batch::default();
    fill_from(&mut reused, &spare, 0..spare.len(), all);
    assert_eq!(shown(&reused), shown(&filled(&expected, all)));
    assert!(spare.all.tags.items.capacity() >= room, "room kept");
}

/// A refresh writes the new copy of a page into the memory of the page it replaced
/// (`with_rows_into`): a page keeps room for rows that grow, so that a customer
/// with one more subscription, say, costs no new memory.
#[test]
fn a_page_rewritten_into_one_with_room_takes_no_new_memory() {
    let interner = Interner::new();
    let customers: Vec<Customer> = (0..8).flat_map(|_| assorted(&interner)).collect();
    let mut grown = customers[3].clone();
    grown.subscriptions.push(grown.subscriptions[0]);
    let page = Columns::new(&customers);
    let mut spare = Columns::new(&customers);
    spare.trim();
    let items = spare.all.subscriptions.items.len();
    assert!(
        spare.all.subscriptions.items.capacity() >= items + items / 32,
        "a trimmed page keeps room"
    );
    let before = spare.all.subscriptions.items.as_ptr();
    page.with_rows_into([(3, &grown)], &mut spare);
    assert_eq!(spare.all.subscriptions.items.len(), items + 1);
    assert_eq!(
        spare.all.subscriptions.items.as_ptr(),
        before,
        "rewritten in the memory it had"
    );
    let mut expected = customers.clone();
    expected[3] = grown;
    assert_reads_as(&spare, &expected, "");
}

/// A refresh replaces rows in place (`replace_rows`): whatever rows change, and
/// whether their lists grow, shrink or keep their lengths, the page reads as one made
/// from the new records.
#[test]
fn rows_replaced_in_place_read_as_a_page_of_the_new_records() {
    let interner = Interner::new();
    let customers = assorted(&interner);
    let n = customers.len();
    // Every set of rows, each replaced by another customer (lengths change) or by the
    // same one (lengths kept).
    for set in 0u32..1 << n {
        for shift in [0, 1, 3] {
            let rows: Vec<(usize, &Customer)> = (0..n)
                .filter(|i| set & (1 << i) != 0)
                .map(|i| (i, &customers[(i + shift) % n]))
                .collect();
            let mut expected = customers.clone();
            for &(i, c) in &rows {
                expected[i] = c.clone();
            }
            let mut page = Columns::new(&customers);
            let mut spare = Columns::new(&customers[..2]);
            page.replace_rows(rows.iter().copied(), &mut spare);
            assert_reads_as(&page, &expected, format_args!("{set:b} by {shift}"));
        }
    }
}

/// A list's column whose replaced rows keep their lengths is written over where it is;
/// one whose rows grow is written into the spare's memory, and the page's old column
/// becomes the spare's.
#[test]
fn only_the_columns_whose_rows_change_length_are_written_again() {
    let interner = Interner::new();
    let customers: Vec<Customer> = (0..8).flat_map(|_| assorted(&interner)).collect();
    // Row 0 has one tag and one subscription: another tag, and one more subscription.
    let mut changed = customers[0].clone();
    changed.tags = vec![interner.intern("other")];
    changed.subscriptions.push(changed.subscriptions[0]);
    let mut page = Columns::new(&customers);
    page.trim();
    let mut spare = Columns::new(&customers);
    spare.trim();
    let tags = page.all.tags.items.as_ptr();
    let subscriptions = page.all.subscriptions.items.as_ptr();
    let spare_subscriptions = spare.all.subscriptions.items.as_ptr();
    page.replace_rows([(0, &changed)], &mut spare);
    assert_eq!(
        page.all.tags.items.as_ptr(),
        tags,
        "kept lengths: written over"
    );
    assert_eq!(
        page.all.subscriptions.items.as_ptr(),
        spare_subscriptions,
        "a grown row: written into the spare's memory"
    );
    assert_eq!(spare.all.subscriptions.items.as_ptr(), subscriptions);
    let mut expected = customers.clone();
    expected[0] = changed;
    assert_reads_as(&page, &expected, "");
}

#[test]
fn ragged_columns_give_each_customer_its_slice() {
    let interner = Interner::new();
    let parse = |json: &str| {
        serde_json::from_str::<CustomerRecord>(json)
            .expect("parses")
            .intern(&interner)
            .expect("valid")
    };
    let customers = [
        parse(r#"{"id":"1","tags":["a","b"]}"#),
        parse(r#"{"id":"2"}"#),
        parse(r#"{"id":"3","tags":["c"]}"#),
    ];
    let b = filled(&customers, FieldSet::empty().with(Field::Tags));
    assert_eq!(b.tags.offsets, vec![0, 2, 2, 3]);
    let sym = |t: &str| interner.lookup(t).map(|s| s.as_u32()).expect("interned");
    assert_eq!(b.tags.items, vec![sym("a"), sym("b"), sym("c")]);
}

#[test]
fn read_columns_are_all_carried() {
    let interner = Interner::new();
    let c = full_customer(&interner);
    let all = FieldSet::all();
    let b = filled(&[c], all);
    assert!(matches!(
        b.registration_ip[..],
        [Some(wit::IpAddress::Ipv6((0x2001_0db8_0000_0000, 1)))]
    ));
    assert_eq!(b.registration_params.offsets, vec![0, 1]);
    assert_eq!(b.payers.offsets, vec![0, 1]);
    assert_eq!(
        b.provider,
        vec![
            interner
                .lookup("main")
                .map(|s| s.as_u32())
                .expect("interned")
        ]
    );
    assert_eq!(b.auth_methods.offsets, vec![0, 1]);
    assert!(matches!(
        b.verification_status[..],
        [wit::VerificationStatus::Passed]
    ));
    assert_eq!(b.verification_methods.offsets, vec![0, 1]);
    assert_eq!(b.subscriptions.items[0].start, 1_767_225_600);
    assert_eq!(b.tags.offsets, vec![0, 1]);
    assert_eq!(b.attributes.offsets, vec![0, 2]);
    let balance = interner.lookup("balance").map(|s| s.as_u32());
    assert!(matches!(
        b.attributes.items[..],
        [
            wit::Attribute { key, value: wit::Value::Decimal(wit::Decimal { units: 125, scale: 1 }) },
            wit::Attribute { value: wit::Value::Text(_), .. },
        ] if Some(key) == balance
    ));
    assert_eq!(b.registered, vec![1_748_736_000]);
}

#[test]
fn an_unknown_registration_time_is_the_least_timestamp() {
    let interner = Interner::new();
    let c = serde_json::from_str::<CustomerRecord>(r#"{"id":"1"}"#)
        .expect("parses")
        .intern(&interner)
        .expect("valid");
    let b = filled(&[c], FieldSet::empty().with(Field::Registered));
    assert_eq!(b.registered, vec![UNREGISTERED]);
}

#[test]
fn ipv4_is_big_endian() {
    let addr: IpAddr = "81.2.69.142".parse().expect("ip");
    assert!(matches!(ip(addr), wit::IpAddress::Ipv4(0x5102_458e)));
}

#[test]
fn a_call_is_lent_the_read_columns_in_field_order_and_gives_them_back() {
    let interner = Interner::new();
    let customers = assorted(&interner);
    let reads = FieldSet::empty()
        .with(Field::Tags)
        .with(Field::Country)
        .with(Field::Subscriptions);
    let mut batch = filled(&customers, reads);
    let before = shown(&batch);
    let capacity = batch.tags.items.capacity();
    let sent = batch.lend(reads);
    assert_eq!(sent.count, 5);
    assert!(
        matches!(
            &sent.columns[..],
            [
                wit::Column::Country(c),
                wit::Column::Subscriptions(s),
                wit::Column::Tags(t),
            ] if c.len() == 5 && s.offsets.len() == 6 && t.items.len() == 5
        ),
        "{:?}",
        sent.columns
    );
    assert!(batch.tags.items.is_empty(), "moved, not copied");
    batch.take_back(sent);
    assert_eq!(shown(&batch), before);
    assert_eq!(
        batch.tags.items.capacity(),
        capacity,
        "room kept for the next call"
    );
    assert!(batch.lent.is_empty() && batch.lent.capacity() >= 3);
    let list = batch.lent.as_ptr();
    let again = batch.lend(reads);
    assert_eq!(
        again.columns.as_ptr(),
        list,
        "the list is reused, not allocated"
    );
    batch.take_back(again);
    assert_eq!(shown(&batch), before);
}
