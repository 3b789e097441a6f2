//! A fake Twilio Messages API on loopback: records every
//! `POST /2010-04-01/Accounts/{sid}/Messages.json` (auth header and form
//! fields) and answers with scripted statuses per `To` number (default 201
//! with a message `sid`), in Twilio's JSON shapes.

use crate::fake_stripe::{form_urlencoded_parse, read_request, serve_loopback, write_json};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The credentials and sender the suite configures the app with.
pub const ACCOUNT_SID: &str = "ACsuite00000000000000000000000000";
pub const AUTH_TOKEN: &str = "suite-twilio-token";
pub const SMS_FROM: &str = "+15005550006";

/// One message request the fake received.
#[derive(Debug, Clone)]
pub struct SmsCall {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub form: Vec<(String, String)>,
    /// The status the fake answered.
    pub status: u16,
}

impl SmsCall {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    calls: Vec<SmsCall>,
    /// Scripted answers per `To` number: (status, Twilio error code, Retry-After).
    script: HashMap<String, VecDeque<(u16, u32, Option<u64>)>>,
}

#[derive(Clone)]
pub struct FakeTwilio {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeTwilio {
    pub fn start(addr: &str) -> FakeTwilio {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let url = serve_loopback("Twilio", addr, move |stream| {
            let Some((method, path, headers, body)) = read_request(&stream) else { return };
            let expected = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json");
            if method != "POST" || path != expected {
                return write_json(stream, 404, "", &json!({ "code": 20404, "message": "The requested resource was not found", "status": 404 }));
            }
            let form = form_urlencoded_parse(&body);
            let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone()).unwrap_or_default();
            let (status, code, retry_after) = shared.lock().unwrap().script.get_mut(&to).and_then(|q| q.pop_front()).unwrap_or((201, 0, None));
            let n = {
                let mut st = shared.lock().unwrap();
                st.calls.push(SmsCall { path, headers, form: form.clone(), status });
                st.calls.len()
            };
            let extra = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
            let answer = if status == 201 {
                json!({ "sid": format!("SM{n:032}"), "status": "queued", "to": to, "body": form.iter().find(|(k, _)| k == "Body").map(|(_, v)| v.clone()) })
            } else {
                json!({ "code": code, "message": "rejected by the fake", "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status })
            };
            write_json(stream, status, &extra, &answer);
        });
        FakeTwilio { url, state }
    }

    /// Answer the next messages to `to` with these (status, Twilio code, Retry-After seconds).
    pub fn script(&self, to: &str, answers: &[(u16, u32, Option<u64>)]) {
        self.state.lock().unwrap().script.entry(to.to_string()).or_default().extend(answers.iter().copied());
    }

    /// Messages to this number, in order.
    pub fn to(&self, phone: &str) -> Vec<SmsCall> {
        self.state.lock().unwrap().calls.iter().filter(|c| c.field("To") == Some(phone)).cloned().collect()
    }
}
