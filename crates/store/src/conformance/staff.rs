//! Staff accounts and their sessions: names are unique, a password change or a removal
//! ends sessions, failed sign-ins lock a member out, sessions expire.

use crate::*;

fn member(name: &str, groups: Option<&[&str]>) -> StaffMember {
    StaffMember {
        name: name.into(),
        role: Role::Operator,
        groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        created_at: 10,
        password_changed_at: 10,
    }
}

fn session(staff: &str, at: i64) -> StaffSession {
    StaffSession {
        staff: staff.into(),
        csrf: format!("csrf-{staff}-{at}"),
        created_at: at,
        expires_at: at + 100,
    }
}

pub(super) fn staff_sign_in_with_sessions_that_end_on_password_change_and_removal(
    store: &dyn Store,
) {
    assert!(
        store
            .create_staff(&member("ana", Some(&["vip", "b2b"])), "hash-1")
            .expect("create")
    );
    assert!(
        !store
            .create_staff(&member("ana", None), "other")
            .expect("create"),
        "a name is taken once"
    );
    store
        .create_staff(&member("ben", None), "hash-2")
        .expect("create");
    assert_eq!(
        store.staff().expect("list"),
        [member("ana", Some(&["vip", "b2b"])), member("ben", None)]
    );
    let login = store.staff_login("ana").expect("login").expect("ana");
    assert_eq!(login.password_hash, "hash-1");
    assert_eq!((login.failed_sign_ins, login.locked_until), (0, None));
    assert_eq!(store.staff_login("nobody").expect("login"), None);

    // Sessions: found by digest until they expire or end.
    store.open_session("d1", &session("ana", 20)).expect("open");
    store.open_session("d2", &session("ana", 30)).expect("open");
    store.open_session("d3", &session("ben", 30)).expect("open");
    assert_eq!(
        store.session("d1", 50).expect("read"),
        Some(session("ana", 20))
    );
    assert_eq!(store.session("d1", 120).expect("read"), None, "expired");
    assert!(store.close_session("d2").expect("close"));
    assert!(!store.close_session("d2").expect("close"));
    assert_eq!(store.session("d2", 50).expect("read"), None);

    // A new password ends every session of that member only.
    assert!(store.set_staff_password("ana", "hash-3", 60).expect("set"));
    assert!(!store.set_staff_password("nobody", "x", 60).expect("set"));
    assert_eq!(store.session("d1", 61).expect("read"), None);
    assert!(store.session("d3", 61).expect("read").is_some());
    let login = store.staff_login("ana").expect("login").expect("ana");
    assert_eq!(
        (
            login.password_hash.as_str(),
            login.member.password_changed_at
        ),
        ("hash-3", 60)
    );

    // Failed sign-ins count up to the lock, which starts the count again.
    for i in 1..SIGN_IN_FAILURES {
        assert_eq!(store.record_failed_sign_in("ana", 70).expect("fail"), None);
        assert_eq!(
            store
                .staff_login("ana")
                .expect("login")
                .expect("ana")
                .failed_sign_ins,
            i
        );
    }
    assert_eq!(
        store.record_failed_sign_in("ana", 70).expect("fail"),
        Some(70 + SIGN_IN_LOCK_SECONDS)
    );
    let login = store.staff_login("ana").expect("login").expect("ana");
    assert_eq!(
        (login.failed_sign_ins, login.locked_until),
        (0, Some(70 + SIGN_IN_LOCK_SECONDS))
    );
    assert_eq!(
        store.record_failed_sign_in("nobody", 70).expect("fail"),
        None
    );
    // A success forgets the failures; a new password lifts the lock.
    store.record_failed_sign_in("ben", 70).expect("fail");
    store.open_session("d4", &session("ben", 80)).expect("open");
    assert_eq!(
        store
            .staff_login("ben")
            .expect("login")
            .expect("ben")
            .failed_sign_ins,
        0
    );
    store.set_staff_password("ana", "hash-4", 90).expect("set");
    assert_eq!(
        store
            .staff_login("ana")
            .expect("login")
            .expect("ana")
            .locked_until,
        None
    );

    // Removing a member ends their sessions.
    assert!(store.delete_staff("ben").expect("delete"));
    assert!(!store.delete_staff("ben").expect("delete"));
    assert_eq!(store.session("d4", 81).expect("read"), None);
    assert_eq!(store.staff().expect("list").len(), 1);
}
