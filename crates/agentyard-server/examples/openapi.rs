//! Prints the OpenAPI document (`cargo run -p agentyard-server --example openapi`).

fn main() {
    let doc = agentyard_server::api::openapi();
    println!("{}", doc.to_pretty_json().unwrap_or_default());
}
