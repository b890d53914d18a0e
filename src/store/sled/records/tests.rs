//! The write gate's unit tests: before-images, declared writes, and that
//! no other module reaches the trees.

use super::*;
use crate::store::{Kept, KeptAnswer};

fn records() -> Records {
    let db = sled::Config::new().temporary(true).open().unwrap();
    Records::new(
        db.open_tree("items").unwrap(),
        db.open_tree("carts").unwrap(),
        db.open_tree("idempotency").unwrap(),
    )
}

#[test]
fn every_write_keeps_the_before_image_for_an_open_capture() {
    let records = records();
    records
        .load(Resource::Item, &[(1, b"one".to_vec())])
        .unwrap();
    records
        .load(Resource::Cart, &[(7, b"cart".to_vec())])
        .unwrap();
    let (capture, ()) = records.open_capture(|| ());
    let old = records.get(Resource::Item, 1).unwrap().unwrap();
    assert!(records.swap(Resource::Item, 1, old, b"two").unwrap());
    let old = records.get(Resource::Item, 1).unwrap().unwrap();
    assert!(records.swap(Resource::Item, 1, old, b"three").unwrap());
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    records
        .transact(&[(Resource::Cart, 7)], |tx| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tx.put(Resource::Cart, 7, b"cart, changed")
        })
        .unwrap();
    records
        .load(Resource::Item, &[(2, b"new".to_vec())])
        .unwrap();
    records.close_capture();
    let kept = |resource, id| {
        capture
            .before(resource, id)
            .map(|old| old.map(|b| b.to_vec()))
    };
    assert_eq!(kept(Resource::Item, 1), Some(Some(b"one".to_vec())));
    assert_eq!(kept(Resource::Cart, 7), Some(Some(b"cart".to_vec())));
    assert_eq!(kept(Resource::Item, 2), Some(None));
    // After the capture closed, nothing more is kept.
    let old = records.get(Resource::Item, 2).unwrap().unwrap();
    assert!(records.swap(Resource::Item, 2, old, b"x").unwrap());
    assert_eq!(kept(Resource::Item, 2), Some(None));
}

#[test]
fn a_key_is_stored_with_its_change_or_not_at_all() {
    let records = records();
    let entry = (b"k1".to_vec(), b"answer".to_vec());
    let declared = [(Resource::Item, 1)];
    // A transaction that fails stores neither the change nor the key.
    let failed = records.transact(&declared, |tx| {
        tx.put(Resource::Item, 1, b"one")?;
        tx.keep(&entry, 0)?;
        tx.put(Resource::Item, 2, b"undeclared")
    });
    assert!(failed.is_err());
    assert_eq!(records.get(Resource::Item, 1).unwrap(), None);
    assert_eq!(records.kept(b"k1").unwrap(), None);
    let fresh = records
        .transact(&declared, |tx| {
            tx.put(Resource::Item, 1, b"one")?;
            Ok(tx.keep(&entry, 0)?)
        })
        .unwrap();
    assert_eq!(fresh, Keep::Fresh);
    records.note_kept(1);
    assert_eq!(records.kept(b"k1").unwrap().unwrap(), &b"answer"[..]);
    assert_eq!(records.kept_count(), 1);
    let pruned = records.prune_kept(10, |value| value == b"answer").unwrap();
    assert_eq!((pruned.removed, records.kept_count()), (1, 0));
    assert_eq!(records.kept(b"k1").unwrap(), None);
}

#[test]
fn a_live_key_is_not_kept_over_and_an_expired_one_is() {
    let records = records();
    let record = |expires, status| KeptRecord {
        fingerprint: [1; 32],
        expires,
        answer: KeptAnswer::Sent(Kept {
            status,
            location: None,
            etag: None,
            body: Vec::new(),
        }),
    };
    let first = (b"k".to_vec(), record(100, 201).encode());
    let second = (b"k".to_vec(), record(300, 200).encode());
    let keep = |entry: &KeptEntry, now| {
        let declared: [(Resource, Id); 0] = [];
        records
            .transact(&declared, |tx| Ok(tx.keep(entry, now)?))
            .unwrap()
    };
    assert_eq!(keep(&first, 50), Keep::Fresh);
    assert_eq!(keep(&second, 99), Keep::Taken, "live until 100");
    assert_eq!(records.kept(b"k").unwrap().unwrap(), first.1.as_slice());
    assert_eq!(keep(&second, 100), Keep::Expired, "expired at 100");
    assert_eq!(records.kept(b"k").unwrap().unwrap(), second.1.as_slice());
    assert_eq!((Keep::Fresh.counted(), Keep::Expired.counted()), (1, 0));
}

#[test]
fn pruning_goes_on_where_it_stopped_past_live_keys() {
    let records = records();
    // 40 live keys sort before 5 expired ones.
    let mut keys: Vec<(Vec<u8>, &[u8])> = (0..40)
        .map(|n| (format!("a{n:02}").into_bytes(), &b"live"[..]))
        .collect();
    keys.extend((0..5).map(|n| (format!("b{n}").into_bytes(), &b"old"[..])));
    let declared: [(Resource, Id); 0] = [];
    records
        .transact(&declared, |tx| {
            for (key, value) in &keys {
                tx.keep(&(key.clone(), value.to_vec()), 0)?;
            }
            Ok(())
        })
        .unwrap();
    records.note_kept(45);
    let mut removed = 0;
    let mut steps = 0;
    loop {
        let pruned = records.prune_kept(1, |value| value == b"old").unwrap();
        removed += pruned.removed;
        steps += 1;
        if !pruned.more {
            break;
        }
        assert!(steps < 100, "pruning never ends");
    }
    assert_eq!((removed, records.kept_count()), (5, 40));
    assert!(steps > 1, "each step looked at a bounded number of keys");
}

#[test]
fn a_cart_transaction_cannot_write_a_cart_it_did_not_declare() {
    let records = records();
    let declared = [(Resource::Cart, 1), (Resource::Cart, 2)];
    let outcome = records.transact(&declared, |tx| tx.put(Resource::Cart, 3, b"x"));
    assert!(matches!(outcome, Err(TransactionError::Abort(_))));
    assert_eq!(records.get(Resource::Cart, 3).unwrap(), None);
}

/// The item and cart trees are opened in one place and handed straight
/// to the gate; opening them anywhere else would be a write path around
/// it.
#[test]
fn only_the_gate_holds_the_item_and_cart_trees() {
    fn walk(dir: &std::path::Path, found: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                found.push((path.display().to_string(), text));
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10, "the sources were not found");
    let needles = [
        "open_tree(\"items\")",
        "open_tree(\"carts\")",
        "Records::new(",
    ];
    for (path, text) in &files {
        if path.ends_with("store/sled/records.rs") || path.ends_with("store/sled/records/tests.rs")
        {
            continue;
        }
        let allowed = usize::from(path.ends_with("store/sled/open.rs"));
        for needle in needles {
            let count = text.matches(needle).count();
            assert_eq!(
                count, allowed,
                "{path} has {needle} {count} times: the item and cart trees go only to the write gate, from open.rs"
            );
        }
    }
}
