//! Product images: an admin gets a presigned PUT URL, uploads straight to
//! object storage (the fake verifies the SigV4 signature on its own), then
//! attaches the object to the product, reorders and removes images.

use api_tests::{ApiResponse, TestApp, TestUser, IMAGE_UPLOAD_MAX_BYTES};
use serde_json::{json, Value};

/// PUT `body` to an absolute URL (the presigned one) with these headers.
fn put(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder().method("PUT").uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = agent.run(req.body(body).expect("request")).unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap_or_default())
}

fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (resp.status().as_u16(), resp.body_mut().read_to_vec().unwrap_or_default())
}

fn request_upload(app: &TestApp, admin: &TestUser, product: &str, content_type: &str, len: usize) -> ApiResponse {
    app.send_as(
        &admin.access_token,
        "POST",
        &format!("/api/products/{product}/images/uploads"),
        Some(&json!({ "content_type": content_type, "content_length": len })),
    )
}

/// Upload `bytes` through a fresh presigned URL; returns the upload JSON.
fn upload(app: &TestApp, admin: &TestUser, product: &str, content_type: &str, bytes: &[u8]) -> Value {
    let r = request_upload(app, admin, product, content_type, bytes.len());
    assert_eq!(r.status, 201, "{}", r.body);
    let u = r.json();
    let (status, body) = put(
        u["upload_url"].as_str().unwrap(),
        &[("content-type", u["headers"]["content-type"].as_str().unwrap())],
        bytes.to_vec(),
    );
    assert_eq!(status, 200, "the storage accepts the presigned upload: {body}");
    u
}

fn attach(app: &TestApp, admin: &TestUser, product: &str, body: Value) -> ApiResponse {
    app.send_as(&admin.access_token, "POST", &format!("/api/products/{product}/images"), Some(&body))
}

#[test]
fn an_admin_uploads_through_a_presigned_url_and_attaches_the_image() {
    let app = TestApp::get();
    let admin = app.admin();
    let product = app.new_product(&admin, "Camera Strap", 3);
    let id = product["id"].as_str().unwrap();
    assert_eq!(product["images"], json!([]));

    let png = b"\x89PNG\r\n\x1a\nnot really a picture".to_vec();
    let r = request_upload(app, &admin, id, "image/png", png.len());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let u = r.json();
    let key = u["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("products/{id}/")) && key.ends_with(".png"), "{key}");
    assert_eq!(u["method"], "PUT");
    assert_eq!(u["headers"], json!({ "content-type": "image/png", "content-length": png.len().to_string() }));
    let url = u["upload_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/{key}?", app.object_storage.public_url())), "{url}");
    assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"), "{url}");

    // The signature binds the type and the exact size: anything else is refused by the storage.
    let (status, body) = put(url, &[("content-type", "image/jpeg")], png.clone());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    let mut bigger = png.clone();
    bigger.extend_from_slice(b"and then some");
    let (status, body) = put(url, &[("content-type", "image/png")], bigger);
    assert_eq!(status, 403, "{body}");
    assert!(app.object_storage.object(&key).is_none(), "nothing stored by refused uploads");
    let tampered = url.replace(&key, &key.replace(".png", "-x.png"));
    assert_eq!(put(&tampered, &[("content-type", "image/png")], png.clone()).0, 403, "the key is signed too");

    let (status, body) = put(url, &[("content-type", "image/png")], png.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.object_storage.object(&key), Some(("image/png".to_string(), png.clone())));

    let r = attach(app, &admin, id, json!({ "key": key, "alt": "  The strap, rolled up " }));
    assert_eq!(r.status, 200, "{}", r.body);
    let image = &r.json()["images"][0];
    let public_url = format!("{}/{key}", app.object_storage.public_url());
    assert_eq!(image["url"], public_url.as_str());
    assert_eq!(image["alt"], "The strap, rolled up");
    assert_eq!(image["id"], u["image_id"]);
    assert_eq!(u["url"], public_url.as_str(), "the upload said where the image would be served");

    // Everyone sees it, and the URL serves the uploaded bytes.
    let public = app.public_product(id).json();
    assert_eq!(public["images"], json!([{ "id": u["image_id"], "key": key, "url": public_url, "alt": "The strap, rolled up" }]));
    assert_eq!(get_bytes(&public_url), (200, png));
    let listed = app.all_products("sort=newest").into_iter().find(|p| p["id"] == id).expect("listed");
    assert_eq!(listed["images"][0]["url"], public_url.as_str());

    // Attaching the same object twice is refused.
    attach(app, &admin, id, json!({ "key": key })).assert_error(422, "validation_failed");
}

#[test]
fn images_keep_their_order_and_can_be_moved_relabelled_and_removed() {
    let app = TestApp::get();
    let admin = app.admin();
    let id = app.new_product(&admin, "Tripod", 1)["id"].as_str().unwrap().to_string();
    let a = upload(app, &admin, &id, "image/jpeg", b"jpeg-a");
    let b = upload(app, &admin, &id, "image/webp", b"webp-b");
    let c = upload(app, &admin, &id, "image/png", b"png-c");
    assert_eq!(attach(app, &admin, &id, json!({ "key": a["key"], "alt": "A" })).status, 200);
    assert_eq!(attach(app, &admin, &id, json!({ "key": b["key"], "alt": "B" })).status, 200);
    let r = attach(app, &admin, &id, json!({ "key": c["key"], "alt": "C", "position": 0 }));
    assert_eq!(r.status, 200, "{}", r.body);
    let order = |p: &Value| -> Vec<String> { p["images"].as_array().unwrap().iter().map(|i| i["alt"].as_str().unwrap().to_string()).collect() };
    assert_eq!(order(&r.json()), ["C", "A", "B"]);

    let path = |img: &Value| format!("/api/products/{id}/images/{}", img["image_id"].as_str().unwrap());
    let r = app.send_as(&admin.access_token, "PUT", &path(&b), Some(&json!({ "position": 0, "alt": "B, front" })));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(order(&r.json()), ["B, front", "C", "A"]);
    assert_eq!(order(&app.public_product(&id).json()), ["B, front", "C", "A"]);

    app.send_as(&admin.access_token, "PUT", &path(&a), Some(&json!({ "position": 3 }))).assert_error(422, "validation_failed");
    let r = app.send_as(&admin.access_token, "DELETE", &path(&c), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(order(&r.json()), ["B, front", "A"]);
    app.send_as(&admin.access_token, "DELETE", &path(&c), None).assert_error(404, "not_found");
    // A removed image can be attached again (the object is still in the bucket).
    let r = attach(app, &admin, &id, json!({ "key": c["key"], "alt": "C again", "position": 1 }));
    assert_eq!(order(&r.json()), ["B, front", "C again", "A"]);
}

/// Objects no product shows, for an operator to remove: listed only once
/// their upload URL has expired (unit-tested in `catalog_core::images`),
/// and forgotten only then, only if still unattached; the answer names
/// exactly the keys that may be deleted from the bucket. Admins only.
#[test]
fn unused_objects_are_listed_and_forgotten_only_when_nothing_can_use_them() {
    let app = TestApp::get();
    let admin = app.admin();
    let id = app.new_product(&admin, "Lens Cap", 1)["id"].as_str().unwrap().to_string();
    let fresh = upload(app, &admin, &id, "image/png", b"png-fresh");
    let listed = app.send_as(&admin.access_token, "GET", "/api/catalog/images/unused?limit=100", None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.json()["objects"].as_array().unwrap().iter().all(|o| o["key"] != fresh["key"]), "its upload URL still works: {}", listed.body);
    let forget = |keys: Value| app.send_as(&admin.access_token, "POST", "/api/catalog/images/unused/forget", Some(&json!({ "keys": keys })));
    let r = forget(json!([fresh["key"], "products/not/issued.png"]));
    assert_eq!((r.status, r.json()["forgotten"].clone()), (200, json!([])), "{}", r.body);
    assert_eq!(attach(app, &admin, &id, json!({ "key": fresh["key"] })).status, 200, "still attachable");
    forget(json!([])).assert_error(422, "validation_failed");
    let customer = app.register_customer();
    app.send_as(&customer.access_token, "GET", "/api/catalog/images/unused", None).assert_error(403, "forbidden");
    app.send_as(&customer.access_token, "POST", "/api/catalog/images/unused/forget", Some(&json!({ "keys": [fresh["key"]] }))).assert_error(403, "forbidden");
}

#[test]
fn uploads_are_limited_to_images_of_bounded_size_for_admins_only() {
    let app = TestApp::get();
    let admin = app.admin();
    let id = app.new_product(&admin, "Lens Cap", 1)["id"].as_str().unwrap().to_string();
    for (content_type, len, field) in [
        ("image/gif", 10, "content_type"),
        ("text/html", 10, "content_type"),
        ("image/png", 0, "content_length"),
        ("image/png", IMAGE_UPLOAD_MAX_BYTES as usize + 1, "content_length"),
    ] {
        let v = request_upload(app, &admin, &id, content_type, len).assert_error(422, "validation_failed");
        assert!(v["error"]["details"]["fields"][field].is_string(), "{v}");
    }
    let r = request_upload(app, &admin, &id, "IMAGE/JPEG", IMAGE_UPLOAD_MAX_BYTES as usize);
    assert_eq!(r.status, 201, "the largest allowed size, type in any case: {}", r.body);
    assert_eq!(r.json()["headers"]["content-type"], "image/jpeg");
    request_upload(app, &admin, "a0000000-0000-4000-8000-00000000dead", "image/png", 10).assert_error(404, "not_found");
    request_upload(app, &admin, "not-a-uuid", "image/png", 10).assert_error(400, "invalid_parameter");

    // Keys issued for another product, or never issued, cannot be attached.
    let other = app.new_product(&admin, "Other", 1)["id"].as_str().unwrap().to_string();
    let foreign = upload(app, &admin, &other, "image/png", b"png");
    let v = attach(app, &admin, &id, json!({ "key": foreign["key"] })).assert_error(422, "validation_failed");
    assert!(v["error"]["details"]["fields"]["key"].is_string(), "{v}");
    attach(app, &admin, &id, json!({ "key": format!("products/{id}/made-up.png") })).assert_error(422, "validation_failed");
    attach(app, &admin, &id, json!({ "key": foreign["key"], "colour": "red" })).assert_error(400, "invalid_json");

    let customer = app.register_customer();
    let t = &customer.access_token;
    let body = json!({ "content_type": "image/png", "content_length": 10 });
    app.send_as(t, "POST", &format!("/api/products/{id}/images/uploads"), Some(&body)).assert_error(403, "forbidden");
    app.request("POST", &format!("/api/products/{id}/images/uploads"), &[], Some(&body)).assert_error(401, "unauthorized");
    app.send_as(t, "POST", &format!("/api/products/{id}/images"), Some(&json!({ "key": "x" }))).assert_error(403, "forbidden");
    app.send_as(t, "DELETE", &format!("/api/products/{id}/images/x"), None).assert_error(403, "forbidden");
    app.send_as(&admin.access_token, "GET", &format!("/api/products/{id}/images/uploads"), None).assert_error(405, "method_not_allowed");
}

/// Without object storage configured, uploads answer 503 and nothing else
/// changes. Starts its own app; not applicable against `SHOP_BASE_URL`.
#[test]
fn without_object_storage_uploads_answer_503() {
    if std::env::var("SHOP_BASE_URL").is_ok_and(|u| !u.is_empty()) {
        eprintln!("not applicable against SHOP_BASE_URL: the app there has object storage");
        return;
    }
    let keys = jwt_simple::prelude::Ed25519KeyPair::generate();
    let host = api_tests::launch_host(&keys, &[]);
    let app = TestApp::for_host(&host, keys);
    let admin = app.admin();
    let id = app.new_product(&admin, "Bag", 1)["id"].as_str().unwrap().to_string();
    request_upload(&app, &admin, &id, "image/png", 10).assert_error(503, "image_storage_not_configured");
    attach(&app, &admin, &id, json!({ "key": "k" })).assert_error(503, "image_storage_not_configured");
    assert_eq!(app.public_product(&id).json()["images"], json!([]));
}
