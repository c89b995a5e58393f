use std::collections::HashMap;

use crate::helpers::TestServer;

/// POSTs `bodies` to `path` all at once; answers the errcodes in order.
async fn post_all(
    server: &TestServer,
    path: &str,
    bodies: impl IntoIterator<Item = String>,
) -> Vec<i64> {
    let url = server.url(path);
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let request = server.http.post(&url).body(body);
            tokio::spawn(async move {
                let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                answer["errcode"].as_i64().unwrap()
            })
        })
        .collect();
    let mut codes = Vec::with_capacity(handles.len());
    for handle in handles {
        codes.push(handle.await.expect("task"));
    }
    codes
}

fn tally(codes: &[i64]) -> HashMap<i64, usize> {
    codes.iter().fold(HashMap::new(), |mut map, code| {
        *map.entry(*code).or_default() += 1;
        map
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_adds_of_one_account() {
    let server = TestServer::spawn().await;
    let app = server.app("race").await;
    let bodies = (0..50).map(|i| format!(r#"{{"kf_account":"same@race","nickname":"n{i}"}}"#));
    let codes = post_all(
        &server,
        &format!("/customservice/kfaccount/add?access_token={}", app.token),
        bodies,
    )
    .await;
    assert_eq!(tally(&codes), HashMap::from([(0, 1), (65406, 49)]));
    assert_eq!(server.list(&app.token).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_hundred_and_twenty_concurrent_adds() {
    let server = TestServer::spawn().await;
    let app = server.app("crowd").await;
    let bodies = (0..120).map(|i| format!(r#"{{"kf_account":"k{i}@crowd","nickname":"n{i}"}}"#));
    let codes = post_all(
        &server,
        &format!("/customservice/kfaccount/add?access_token={}", app.token),
        bodies,
    )
    .await;
    assert_eq!(tally(&codes), HashMap::from([(0, 100), (65405, 20)]));
    let list = server.list(&app.token).await;
    assert_eq!(list.len(), 100);
    let mut ids: Vec<i64> = list
        .iter()
        .map(|kf| kf["kf_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (2001..=2100).collect::<Vec<_>>(),
        "ids are dense and unique"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_leave_one_submitted_nickname() {
    let server = TestServer::spawn().await;
    let app = server.app("upd8").await;
    server
        .add(&app.token, &app.account("a"), "start")
        .await
        .assert_code(0);
    let bodies = (0..64).map(|i| format!(r#"{{"kf_account":"a@upd8","nickname":"nick{i}"}}"#));
    let codes = post_all(
        &server,
        &format!("/customservice/kfaccount/update?access_token={}", app.token),
        bodies,
    )
    .await;
    assert!(codes.iter().all(|code| *code == 0), "{codes:?}");
    let list = server.list(&app.token).await;
    let nick = list[0]["kf_nick"].as_str().unwrap().to_owned();
    assert!((0..64).any(|i| format!("nick{i}") == nick), "{nick}");
    // What the server answers is what is on disk.
    let (db_path, clock) = (server.db_path.clone(), std::sync::Arc::clone(&server.clock));
    let dir = server.stop().await;
    let server = TestServer::spawn_at(&db_path, clock).await;
    assert_eq!(server.list(&app.token).await[0]["kf_nick"], nick.as_str());
    drop(server.stop().await);
    drop(dir);
}
