//! The exact bytes of answers (rids masked: their random groups differ each time).

use crate::helpers::TestServer;

fn mask_rid(raw: &str) -> String {
    match raw.rsplit_once(" rid: ") {
        Some((head, tail)) => {
            let rid = &tail[..26];
            assert!(rid.parse::<kefu_api::Rid>().is_ok(), "{rid}");
            format!("{head} rid: <rid>{}", &tail[26..])
        }
        None => raw.to_owned(),
    }
}

#[tokio::test]
async fn exact_answers() {
    let server = TestServer::spawn().await;
    let app = server.app("snap").await;
    let t = &app.token;
    let ok = server.add(t, &app.account("test1"), "客服1").await;
    assert_eq!(ok.raw, r#"{"errcode":0,"errmsg":"ok"}"#);
    let list = server
        .get(&format!(
            "/cgi-bin/customservice/getkflist?access_token={t}"
        ))
        .await;
    assert_eq!(
        list.raw,
        r#"{"kf_list":[{"kf_account":"test1@snap","kf_nick":"客服1","kf_id":2001,"kf_headimgurl":""}]}"#
    );

    let cases = [
        (
            server.update(t, "x@snap", "n").await,
            r#"{"errcode":65401,"errmsg":"invalid custom service account rid: <rid>"}"#,
        ),
        (
            server.update(t, "test1@snap", "").await,
            r#"{"errcode":65403,"errmsg":"illegal nickname rid: <rid>"}"#,
        ),
        (
            server.add(t, "x@elsewhere", "n").await,
            r#"{"errcode":65404,"errmsg":"illegal custom service account rid: <rid>"}"#,
        ),
        (
            server.add(t, "test1@snap", "n").await,
            r#"{"errcode":65406,"errmsg":"custom service account exists rid: <rid>"}"#,
        ),
        (
            server
                .get("/cgi-bin/customservice/getkflist?access_token=bad")
                .await,
            r#"{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: <rid>"}"#,
        ),
        (
            server.get("/cgi-bin/customservice/getkflist").await,
            r#"{"errcode":41001,"errmsg":"access_token missing rid: <rid>"}"#,
        ),
        (
            server.get("/customservice/kfaccount/update").await,
            r#"{"errcode":43002,"errmsg":"require POST method rid: <rid>"}"#,
        ),
        (
            server.get("/nowhere").await,
            r#"{"errcode":40066,"errmsg":"invalid url rid: <rid>"}"#,
        ),
        (
            server
                .post(
                    &format!("/customservice/kfaccount/update?access_token={t}"),
                    "",
                )
                .await,
            r#"{"errcode":44002,"errmsg":"empty post data rid: <rid>"}"#,
        ),
        (
            server
                .post(
                    &format!("/customservice/kfaccount/update?access_token={t}"),
                    "x",
                )
                .await,
            r#"{"errcode":47001,"errmsg":"data format error rid: <rid>"}"#,
        ),
    ];
    for (answer, expected) in cases {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "application/json; encoding=utf-8");
        assert_eq!(mask_rid(&answer.raw), expected);
    }
}

#[tokio::test]
async fn the_rid_starts_with_the_request_time() {
    let server = TestServer::spawn().await;
    let before = server.clock.now();
    let answer = server.get("/nowhere").await;
    let after = server.clock.now();
    let rid = kefu_api::Rid::from_errmsg(answer.errmsg()).unwrap();
    let time = i64::from(rid.unix_secs());
    assert!(
        before <= time && time <= after,
        "{time} not in {before}..={after}"
    );
    assert!(answer.errmsg().ends_with(&rid.to_string()));
    // Two errors get two rids.
    let other = kefu_api::Rid::from_errmsg(server.get("/nowhere").await.errmsg()).unwrap();
    assert_ne!(rid, other);
}
