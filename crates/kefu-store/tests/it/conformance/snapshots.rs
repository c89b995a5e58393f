//! The conformance checks of a replace that issues tickets with its document.

use kefu_store::IssuedTicket;

use super::*;

conformance!(
    a_replace_issues_its_tickets_in_the_same_transaction,
    a_replace_with_a_ticket_it_cannot_issue_writes_nothing,
);

fn document() -> Snapshot {
    Snapshot {
        version: Snapshot::VERSION,
        components: vec![component()],
        ..Snapshot::default()
    }
}

fn ticket(n: u8, expires_at: i64) -> IssuedTicket {
    IssuedTicket {
        component_appid: component().component_appid,
        hash: hash(n),
        expires_at,
    }
}

async fn a_replace_issues_its_tickets_in_the_same_transaction(backend: Backend) {
    let store = backend.open().await;
    let cid = component().component_appid;
    store.create_component(component()).await.unwrap();
    store.add_ticket(&cid, hash(1), 1000).await.unwrap();

    store
        .replace(document(), vec![ticket(2, 5000)], 0)
        .await
        .unwrap();
    let check = |store: Arc<dyn Store>| {
        let cid = cid.clone();
        async move {
            assert_eq!(store.ticket(&hash(2)).await.unwrap(), Some((cid, 5000)));
            assert_eq!(
                store.ticket(&hash(1)).await.unwrap(),
                None,
                "the tickets held before went"
            );
            store
        }
    };
    let store = check(store).await;
    drop(store);
    // As it was committed.
    check(backend.open().await).await;
}

async fn a_replace_with_a_ticket_it_cannot_issue_writes_nothing(backend: Backend) {
    let store = backend.open().await;
    let cid = component().component_appid;
    store.create_component(component()).await.unwrap();
    store.add_ticket(&cid, hash(1), 1000).await.unwrap();
    let before = store.snapshot().await.unwrap();

    // A ticket for a platform the document lacks.
    let empty = Snapshot {
        version: Snapshot::VERSION,
        ..Snapshot::default()
    };
    assert!(matches!(
        store.replace(empty, vec![ticket(2, 5000)], 60).await,
        Err(StoreError::Invalid(_))
    ));
    // A ticket given twice.
    assert!(matches!(
        store
            .replace(document(), vec![ticket(2, 5000), ticket(2, 6000)], 60)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(store.snapshot().await.unwrap(), before);
    assert_eq!(store.ticket(&hash(1)).await.unwrap(), Some((cid, 1000)));
    assert_eq!(store.ticket(&hash(2)).await.unwrap(), None);
    assert_eq!(store.clock_offset().await.unwrap(), 0);
}
