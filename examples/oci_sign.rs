//! Prints the headers cloudha's OCI signer sends for one request, as JSON, so a test can
//! compare them with Oracle's own SDK on the same request, key and date.
//!
//!     oci_sign KEY_PEM_FILE KEY_ID METHOD URL DATE [BODY]

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 6 {
        eprintln!("usage: oci_sign KEY_PEM_FILE KEY_ID METHOD URL DATE [BODY]");
        std::process::exit(2);
    }
    let pem = std::fs::read_to_string(&a[1]).unwrap_or_else(|e| {
        eprintln!("{}: {e}", a[1]);
        std::process::exit(1)
    });
    let body = a.get(6).map(|b| b.as_bytes());
    match cloudha::cloud::oci::signed_headers(&pem, &a[2], &a[3], &a[4], body, &a[5]) {
        Ok(h) => {
            let map: serde_json::Map<String, serde_json::Value> = h
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            println!("{}", serde_json::Value::Object(map));
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
