//! Add, rename, list and delete a customer service account.
//!
//! Against a local kefu (`cargo run --release -- serve` prints the demo app):
//!
//! ```sh
//! KEFU_BASE_URL=http://127.0.0.1:8080 KEFU_APPID=wx… KEFU_SECRET=… \
//!     cargo run -p kefu-client --example kf_roundtrip -- test1@test
//! ```
//!
//! Against WeChat, leave `KEFU_BASE_URL` unset and use a real appid, secret and account.

use kefu_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let mut builder = Client::builder().app(env("KEFU_APPID")?, env("KEFU_SECRET")?);
    if let Ok(base_url) = std::env::var("KEFU_BASE_URL") {
        builder = builder.base_url(base_url);
    }
    let client = builder.build()?;
    let account = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "test1@test".to_owned());

    client.kf_add(&account, "客服1").await?;
    client.kf_update(&account, "客服2").await?;
    for kf in client.kf_list().await? {
        println!("{:>6}  {:<24} {}", kf.kf_id, kf.kf_account, kf.kf_nick);
    }
    match client.kf_update(&account, "").await {
        Err(error) => println!("an empty nickname is refused: {error}"),
        Ok(()) => println!("an empty nickname was accepted?"),
    }
    client.kf_delete(&account).await?;
    println!("deleted {account}");
    Ok(())
}
