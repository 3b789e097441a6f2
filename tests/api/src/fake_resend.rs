//! A fake Resend API on loopback: records every `POST /emails` and answers
//! with scripted statuses (default 200), so tests can assert bodies,
//! idempotency keys, retries and the number of emails. `POST /emails/batch`
//! records each email of the batch (with the batch's headers) and the
//! batch itself, and answers 200 with one id per email.

use crate::fake_stripe::{read_request, serve_loopback, write_json};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One email request the fake received.
#[derive(Debug, Clone)]
pub struct EmailCall {
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
}

impl EmailCall {
    pub fn idempotency_key(&self) -> &str {
        self.headers.get("idempotency-key").map(String::as_str).unwrap_or("")
    }
}

#[derive(Default)]
struct State {
    calls: Vec<EmailCall>,
    /// Scripted answers per recipient; others get 200.
    script: HashMap<String, VecDeque<(u16, Option<u64>)>>,
    /// Answer emails to these recipients only after this many milliseconds.
    delays: HashMap<String, u64>,
    /// Each batch request: (arrival, number of emails).
    batches: Vec<(std::time::Instant, usize)>,
    /// Recipients a batch refuses to create an email for (an address
    /// Resend does not take): every batch, single sends untouched.
    refused_in_batches: std::collections::HashSet<String>,
}

#[derive(Clone)]
pub struct FakeResend {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeResend {
    pub fn start(addr: &str) -> FakeResend {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let url = serve_loopback("Resend", addr, move |stream| {
            let state = &shared;
            let Some((method, path, headers, body)) = read_request(&stream) else { return };
            if method == "POST" && path == "/emails/batch" {
                let emails = serde_json::from_slice::<Value>(&body).ok().and_then(|b| b.as_array().cloned()).unwrap_or_default();
                let permissive = headers.get("x-batch-validation").is_some_and(|v| v == "permissive");
                let mut st = state.lock().unwrap();
                st.batches.push((std::time::Instant::now(), emails.len()));
                // An email to a refused recipient is one Resend will not
                // create: strict mode refuses the whole batch for it,
                // permissive mode creates the others and names it in `errors`.
                let refused: Vec<usize> = emails
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| st.refused_in_batches.contains(e["to"][0].as_str().unwrap_or("")))
                    .map(|(i, _)| i)
                    .collect();
                if !refused.is_empty() && !permissive {
                    drop(st);
                    return write_json(stream, 422, "", &json!({ "name": "validation_error", "message": "an email of the batch is invalid", "statusCode": 422 }));
                }
                let mut ids = Vec::new();
                for (i, email) in emails.iter().enumerate() {
                    let status = if refused.contains(&i) { 422 } else { 200 };
                    st.calls.push(EmailCall { headers: headers.clone(), body: email.clone(), status });
                    if status == 200 {
                        ids.push(json!({ "id": format!("email_{}", st.calls.len()) }));
                    }
                }
                drop(st);
                let mut answer = json!({ "data": ids });
                if permissive {
                    answer["errors"] = Value::Array(refused.iter().map(|i| json!({ "index": i, "message": "The `to` field is invalid." })).collect());
                }
                return write_json(stream, 200, "", &answer);
            }
            if method != "POST" || path != "/emails" {
                return write_json(stream, 404, "", &json!({ "name": "not_found", "message": "unknown endpoint", "statusCode": 404 }));
            }
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let recipient = body["to"][0].as_str().unwrap_or("").to_string();
            let delay = state.lock().unwrap().delays.get(&recipient).copied();
            if let Some(ms) = delay {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            let (status, retry_after) = state
                .lock()
                .unwrap()
                .script
                .get_mut(&recipient)
                .and_then(|q| q.pop_front())
                .unwrap_or((200, None));
            let n = {
                let mut st = state.lock().unwrap();
                st.calls.push(EmailCall { headers, body, status });
                st.calls.len()
            };
            let extra = retry_after.map(|s| format!("retry-after: {s}\r\n")).unwrap_or_default();
            let answer = match status {
                200 => json!({ "id": format!("email_{n}") }),
                429 => json!({ "name": "rate_limit_exceeded", "message": "Too many requests", "statusCode": 429 }),
                s => json!({ "name": "validation_error", "message": "rejected by the fake", "statusCode": s }),
            };
            write_json(stream, status, &extra, &answer);
        });
        FakeResend { url, state }
    }

    /// Answer the next emails to `recipient` with these statuses (and Retry-After seconds).
    pub fn script(&self, recipient: &str, answers: &[(u16, Option<u64>)]) {
        self.state.lock().unwrap().script.entry(recipient.to_string()).or_default().extend(answers.iter().copied());
    }

    /// Make every batch refuse to create an email to `recipient`.
    pub fn refuse_in_batches(&self, recipient: &str) {
        self.state.lock().unwrap().refused_in_batches.insert(recipient.to_string());
    }

    /// Make emails to `recipient` hang for `ms` before any answer (`None`: answer at once).
    pub fn delay(&self, recipient: &str, ms: Option<u64>) {
        let mut st = self.state.lock().unwrap();
        match ms {
            Some(ms) => st.delays.insert(recipient.to_string(), ms),
            None => st.delays.remove(recipient),
        };
    }

    /// Each batch request so far: (arrival, number of emails).
    pub fn batches(&self) -> Vec<(std::time::Instant, usize)> {
        self.state.lock().unwrap().batches.clone()
    }

    pub fn calls(&self) -> Vec<EmailCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls to this recipient.
    pub fn to(&self, email: &str) -> Vec<EmailCall> {
        self.calls().into_iter().filter(|c| c.body["to"].as_array().is_some_and(|t| t.iter().any(|x| x == email))).collect()
    }

    /// The emails to `email` once at least `n` have arrived, or after 5 s
    /// whatever did. Without sweeping: for emails a request sends itself,
    /// which a sweep another test runs at that moment may be sending
    /// instead (in the same trace) when the request returns.
    pub fn wait_for(&self, email: &str, n: usize) -> Vec<EmailCall> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let calls = self.to(email);
            if calls.len() >= n || std::time::Instant::now() >= deadline {
                return calls;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
